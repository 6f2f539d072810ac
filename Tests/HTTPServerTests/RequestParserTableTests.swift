import Testing

@testable import HTTPServer

/// The request parser against a table of raw requests. Every case is fed whole, byte by byte,
/// and split in two at every offset; all feedings must give the same outcome (the pattern of
/// swift-nio's ByteToMessageDecoderVerifier).
@Suite struct RequestParserTableTests {
    struct Message: Equatable, CustomStringConvertible {
        var method: String
        var target: String
        var minor: Int
        var keepAlive = true
        var expectsContinue = false
        var body = ""
        var trailers: [String] = []
        var headers: [String] = []  // "name: value" lookups that must hold (first value)

        var description: String { "\(method) \(target) 1.\(minor) ka=\(keepAlive) ec=\(expectsContinue) body=\(body.debugDescription) trailers=\(trailers)" }
    }

    enum Expect {
        case messages([Message])
        case error(Int, String, after: Int = 0)
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let raw: [UInt8]
        let limits: HTTPParserLimits
        let expect: ExpectBox
        var testDescription: String { name }
    }
    final class ExpectBox: Sendable {
        let messages: [Message]?
        let error: (Int, String, Int)?
        init(_ e: Expect) {
            switch e {
            case .messages(let m):
                messages = m
                error = nil
            case .error(let s, let c, let after):
                messages = nil
                error = (s, c, after)
            }
        }
    }

    static func c(_ name: String, _ raw: String, limits: HTTPParserLimits = HTTPParserLimits(), _ expect: Expect) -> Case {
        Case(name: name, raw: Array(raw.utf8), limits: limits, expect: ExpectBox(expect))
    }
    static func c(_ name: String, bytes: [UInt8], _ expect: Expect) -> Case {
        Case(name: name, raw: bytes, limits: HTTPParserLimits(), expect: ExpectBox(expect))
    }
    static func get(_ target: String = "/", minor: Int = 1, keepAlive: Bool = true) -> Message {
        Message(method: "GET", target: target, minor: minor, keepAlive: keepAlive)
    }
    static var small: HTTPParserLimits {
        var l = HTTPParserLimits()
        l.maxRequestLineLength = 32
        l.maxHeaderSectionSize = 64
        l.maxHeaderCount = 3
        l.maxChunkLineLength = 16
        l.maxChunkSize = 1000
        return l
    }

    static let cases: [Case] = [
        // Accepted requests.
        c("simple GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", .messages([get()])),
        c("GET with query", "GET /p/q?x=1&y=2 HTTP/1.1\r\nHost: a\r\n\r\n", .messages([get("/p/q?x=1&y=2")])),
        c("HTTP/1.0 without Host closes by default", "GET / HTTP/1.0\r\n\r\n", .messages([get(minor: 0, keepAlive: false)])),
        c("HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", .messages([get(minor: 0)])),
        c("HTTP/1.1 Connection: close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            .messages([get(keepAlive: false)])),
        c("close wins in a Connection list", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
            .messages([get(keepAlive: false)])),
        c("Content-Length body", "POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            .messages([Message(method: "POST", target: "/e", minor: 1, body: "hello")])),
        c("Content-Length 0", "POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            .messages([Message(method: "POST", target: "/e", minor: 1)])),
        c("chunked body", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            .messages([Message(method: "POST", target: "/", minor: 1, body: "hello world")])),
        c("chunk extensions", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;n=v;m=\"q\"\r\nhello\r\n0;x\r\n\r\n",
            .messages([Message(method: "POST", target: "/", minor: 1, body: "hello")])),
        c("whitespace before a chunk extension", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 ;n\r\nhello\r\n0\r\n\r\n",
            .messages([Message(method: "POST", target: "/", minor: 1, body: "hello")])),
        c("chunked with trailers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-Two: 2\r\n\r\n",
            .messages([Message(method: "POST", target: "/", minor: 1, body: "abc", trailers: ["X-Sum: 1", "X-Two: 2"])])),
        c("uppercase and leading-zero hex", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00A\r\n0123456789\r\n0\r\n\r\n",
            .messages([Message(method: "POST", target: "/", minor: 1, body: "0123456789")])),
        c("Transfer-Encoding is case-insensitive", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
            .messages([Message(method: "POST", target: "/", minor: 1, body: "x")])),
        c("identical duplicate Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
            .messages([Message(method: "POST", target: "/", minor: 1, body: "ok")])),
        c("identical Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\nok",
            .messages([Message(method: "POST", target: "/", minor: 1, body: "ok")])),
        c("one empty line before the request line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .messages([get()])),
        c("OWS around a field value is trimmed", "GET / HTTP/1.1\r\nHost: a\r\nX-A: \t v  1 \t\r\n\r\n",
            .messages([Message(method: "GET", target: "/", minor: 1, headers: ["X-A: v  1"])])),
        c("obs-text in a field value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\u{E9}\r\n\r\n",
            .messages([Message(method: "GET", target: "/", minor: 1, headers: ["X-A: caf\u{E9}"])])),
        c("empty field value", "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n",
            .messages([Message(method: "GET", target: "/", minor: 1, headers: ["X-Empty: "])])),
        c("token punctuation in a field name", "GET / HTTP/1.1\r\nHost: a\r\nX-!#$%&'*+.^_`|~: 1\r\n\r\n",
            .messages([Message(method: "GET", target: "/", minor: 1, headers: ["X-!#$%&'*+.^_`|~: 1"])])),
        c("absolute-form target", "GET http://a/b?c HTTP/1.1\r\nHost: a\r\n\r\n", .messages([get("http://a/b?c")])),
        c("asterisk-form with OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            .messages([Message(method: "OPTIONS", target: "*", minor: 1)])),
        c("authority-form with CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            .messages([Message(method: "CONNECT", target: "a:443", minor: 1)])),
        c("unknown method token", "PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n", .messages([Message(method: "PURGE", target: "/x", minor: 1)])),
        c("lowercase host field name", "GET / HTTP/1.1\r\nhost: a\r\n\r\n", .messages([get()])),
        c("empty Host value", "GET / HTTP/1.1\r\nHost:\r\n\r\n", .messages([get()])),
        c("Expect: 100-continue", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nz",
            .messages([Message(method: "POST", target: "/", minor: 1, expectsContinue: true, body: "z")])),
        c("Expect on HTTP/1.0 is ignored", "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz",
            .messages([Message(method: "POST", target: "/", minor: 0, keepAlive: false, body: "z")])),
        c("two pipelined GETs", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
            .messages([get("/1"), get("/2")])),
        c("pipelined POST then GET", "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
            .messages([Message(method: "POST", target: "/1", minor: 1, body: "abc"), get("/2")])),
        c("pipelined chunked then GET", "POST /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
            .messages([Message(method: "POST", target: "/1", minor: 1, body: "ab"), get("/2")])),
        c("HTTP/1.9 is served as 1.x", "GET / HTTP/1.9\r\nHost: a\r\n\r\n", .messages([get(minor: 9)])),

        // Framing that enables smuggling.
        c("Transfer-Encoding with Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            .error(400, "te_and_cl")),
        c("differing duplicate Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            .error(400, "conflicting_content_length")),
        c("differing Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd",
            .error(400, "conflicting_content_length")),
        c("non-numeric Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", .error(400, "bad_content_length")),
        c("negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", .error(400, "bad_content_length")),
        c("signed Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", .error(400, "bad_content_length")),
        c("empty Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", .error(400, "bad_content_length")),
        c("overlong Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999999999999\r\n\r\n",
            .error(400, "bad_content_length")),
        c("unknown coding before chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            .error(501, "unsupported_transfer_coding")),
        c("chunked not final", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            .error(400, "bad_transfer_encoding")),
        c("only an unknown coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
            .error(400, "bad_transfer_encoding")),
        c("chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            .error(400, "bad_transfer_encoding")),
        c("Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", .error(400, "te_http10")),
        c("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n", .error(400, "obs_fold")),
        c("obs-fold with a tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n", .error(400, "obs_fold")),
        c("space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", .error(400, "space_before_colon")),
        c("tab before the colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", .error(400, "space_before_colon")),
        c("bare LF ending the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", .error(400, "bare_lf")),
        c("bare LF ending a field line", "GET / HTTP/1.1\r\nHost: a\n\r\n", .error(400, "bare_lf")),
        c("bare LF ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", .error(400, "bare_lf")),
        c("bare CR in a field value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n", .error(400, "bare_cr")),
        c("bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", .error(400, "bare_cr")),
        c("invalid field-name character", "GET / HTTP/1.1\r\nHost: a\r\nX@Y: 1\r\n\r\n", .error(400, "bad_header_name")),
        c("non-ASCII field name", "GET / HTTP/1.1\r\nHost: a\r\nX-\u{E9}: 1\r\n\r\n", .error(400, "bad_header_name")),
        c("field line without colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", .error(400, "bad_header")),
        c("empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", .error(400, "bad_header_name")),
        c("control character in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\u{01}2\r\n\r\n", .error(400, "bad_header_value")),
        c("NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\u{00}2\r\n\r\n", .error(400, "bad_header_value")),
        c("DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\u{7F}\r\n\r\n", .error(400, "bad_header_value")),
        c("HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", .error(400, "bad_host")),
        c("HTTP/1.1 with two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", .error(400, "bad_host")),
        c("HTTP/1.0 with two Host fields", "GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n", .error(400, "bad_host")),

        // Request line.
        c("lowercase protocol name", "GET / http/1.1\r\nHost: a\r\n\r\n", .error(400, "bad_version")),
        c("HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", .error(505, "version_not_supported")),
        c("malformed version", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", .error(400, "bad_version")),
        c("double space after the method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", .error(400, "bad_request_target")),
        c("trailing space after the version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", .error(400, "bad_version")),
        c("no version", "GET /\r\nHost: a\r\n\r\n", .error(400, "bad_request_line")),
        c("invalid method character", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", .error(400, "bad_method")),
        c("DEL in the target", "GET /a\u{7F} HTTP/1.1\r\nHost: a\r\n\r\n", .error(400, "bad_request_target")),
        c("fragment in the target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", .error(400, "bad_request_target")),
        c("non-ASCII target", "GET /caf\u{E9} HTTP/1.1\r\nHost: a\r\n\r\n", .error(400, "bad_request_target")),
        c("relative target", "GET foo HTTP/1.1\r\nHost: a\r\n\r\n", .error(400, "bad_request_target")),
        c("asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", .error(400, "bad_request_target")),
        c("too many empty lines first", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .error(400, "bad_request_line")),

        // Limits (small limits so every split stays fast; the defaults are tested over sockets).
        c("request line too long", "GET /0123456789012345678901234567890 HTTP/1.1\r\nHost: a\r\n\r\n", limits: small,
            .error(414, "request_line_too_long")),
        c("request line at the limit", "GET /01234567890123456 HTTP/1.1\r\nHost: a\r\n\r\n", limits: small,
            .messages([get("/01234567890123456")])),
        c("header section too large", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 0123456789012345678901234567890123456789012345678901\r\n\r\n",
            limits: small, .error(431, "header_section_too_large")),
        c("too many header fields", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits: small,
            .error(431, "too_many_headers")),
        c("trailers share the header budget", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT1: 1\r\nT2: 2\r\nT3: 3\r\nT4: 4\r\n\r\n",
            limits: small, .error(431, "too_many_headers")),

        // Chunked framing.
        c("chunk size not hexadecimal", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .error(400, "bad_chunk_size")),
        c("empty chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", .error(400, "bad_chunk_size")),
        c("negative chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
            .error(400, "bad_chunk_size")),
        c("chunk size with 17 hex digits", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
            .error(400, "chunk_too_large")),
        c("chunk size that overflows 64 bits", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
            .error(400, "chunk_too_large")),
        c("chunk larger than the limit", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n", limits: small,
            .error(400, "chunk_too_large")),
        c("chunk size followed by junk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n",
            .error(400, "bad_chunk_size")),
        c("chunk size with 0x prefix", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
            .error(400, "bad_chunk_size")),
        c("chunk data longer than its size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
            .error(400, "bad_chunk")),
        c("chunk data ended by bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n",
            .error(400, "bad_chunk")),
        c("chunk-size line ended by bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
            .error(400, "bare_lf")),
        c("chunk-size line too long", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;aaaaaaaaaaaaaaaaaaaa\r\nabc\r\n0\r\n\r\n",
            limits: small, .error(400, "chunk_line_too_long")),
        c("control character in a chunk extension", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a\u{01}\r\nabc\r\n0\r\n\r\n",
            .error(400, "bad_chunk_extension")),
        c("obs-fold in trailers", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n 2\r\n\r\n",
            .error(400, "obs_fold")),
        c("unsupported expectation", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", .error(417, "unsupported_expectation")),
        c("a good request then a bad one", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
            .error(400, "bad_host", after: 1)),
    ]

    enum Outcome: Equatable {
        case messages([Message], leftover: Bool)
        case error(Int, String, after: Int)
    }

    static func run(_ raw: [UInt8], splits: [Int], limits: HTTPParserLimits) -> Outcome {
        var parser = HTTPRequestParser(limits: limits)
        var done: [Message] = []
        var current: Message?
        var bounds = [0] + splits + [raw.count]
        bounds = bounds.enumerated().filter { $0.offset == 0 || $0.element != bounds[$0.offset - 1] }.map(\.element)
        for i in 0..<(bounds.count - 1) {
            parser.feed(raw[bounds[i]..<bounds[i + 1]])
            while true {
                let event: HTTPRequestParser.Event?
                do {
                    event = try parser.next()
                } catch {
                    return .error(error.status.code, error.code, after: done.count)
                }
                guard let event else { break }
                switch event {
                case .head(let head):
                    var m = Message(
                        method: head.method.rawValue, target: head.target, minor: head.version.minor,
                        keepAlive: head.keepAlive, expectsContinue: head.expectsContinue)
                    m.headers = head.headers.fields.map { "\($0.name): \($0.value)" }
                    current = m
                case .body(let bytes):
                    current!.body += String(decoding: bytes, as: UTF8.self)
                case .end(let trailers):
                    current!.trailers = trailers.fields.map { "\($0.name): \($0.value)" }
                    done.append(current!)
                    current = nil
                }
            }
        }
        return .messages(done, leftover: current != nil || parser.bufferedByteCount > 0)
    }

    static func check(_ outcome: Outcome, _ expect: ExpectBox, feeding: String, name: String) {
        switch (outcome, expect.messages, expect.error) {
        case (.messages(let got, let leftover), let want?, nil):
            #expect(!leftover, "\(name) [\(feeding)]: unparsed bytes left")
            #expect(got.count == want.count, "\(name) [\(feeding)]: \(got) vs \(want)")
            for (g, w) in zip(got, want) {
                var gCompared = g
                gCompared.headers = []
                var wCompared = w
                wCompared.headers = []
                #expect(gCompared == wCompared, "\(name) [\(feeding)]")
                for h in w.headers { #expect(g.headers.contains(h), "\(name) [\(feeding)]: missing header \(h) in \(g.headers)") }
            }
        case (.error(let status, let code, let after), nil, let (wStatus, wCode, wAfter)?):
            #expect(status == wStatus && code == wCode && after == wAfter,
                "\(name) [\(feeding)]: got \(status) \(code) after \(after), want \(wStatus) \(wCode) after \(wAfter)")
        default:
            Issue.record("\(name) [\(feeding)]: unexpected outcome \(outcome)")
        }
    }

    @Test func theTableHasAtLeastSixtyCases() {
        #expect(Self.cases.count >= 60)
        #expect(Set(Self.cases.map(\.name)).count == Self.cases.count)
    }

    @Test(arguments: cases)
    func fedWholeByteByByteAndSplitAtEveryOffset(_ c: Case) {
        Self.check(Self.run(c.raw, splits: [], limits: c.limits), c.expect, feeding: "whole", name: c.name)
        Self.check(Self.run(c.raw, splits: Array(1..<max(1, c.raw.count)), limits: c.limits), c.expect,
            feeding: "byte by byte", name: c.name)
        for offset in 1..<max(1, c.raw.count) {
            Self.check(Self.run(c.raw, splits: [offset], limits: c.limits), c.expect, feeding: "split at \(offset)", name: c.name)
        }
    }

    @Test func defaultLimitsRefuseAnOversizedRequestLineAndHeaderSection() throws {
        var parser = HTTPRequestParser()
        parser.feed(Array(("GET /" + String(repeating: "a", count: 8 * 1024) + " HTTP/1.1\r\n").utf8))
        #expect(throws: HTTPParseError.self) { _ = try parser.next() }
        var headers = HTTPRequestParser()
        headers.feed(Array("GET / HTTP/1.1\r\nHost: a\r\n".utf8))
        for i in 0..<70 { headers.feed(Array("X-\(i): \(String(repeating: "v", count: 1000))\r\n".utf8)) }
        headers.feed(Array("\r\n".utf8))
        do {
            _ = try headers.next()
            Issue.record("a 70 KB header section was accepted")
        } catch {
            #expect(error.status.code == 431)
        }
        var many = HTTPRequestParser()
        many.feed(Array("GET / HTTP/1.1\r\nHost: a\r\n".utf8))
        for i in 0..<100 { many.feed(Array("X-\(i): 1\r\n".utf8)) }
        many.feed(Array("\r\n".utf8))
        do {
            _ = try many.next()
            Issue.record("101 header fields were accepted")
        } catch {
            #expect(error.code == "too_many_headers")
        }
    }

    @Test func errorsAreSticky() {
        var parser = HTTPRequestParser()
        parser.feed(Array("GET / HTTP/1.1\r\nHost : a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
        #expect(throws: HTTPParseError.self) { _ = try parser.next() }
        #expect(throws: HTTPParseError.self) { _ = try parser.next() }
    }
}
