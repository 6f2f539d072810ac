/// An incremental, strict HTTP/1.1 request parser (RFC 9112) with no I/O.
///
/// Feed it bytes in any split (`feed`), then pull events (`next`) until it returns nil (needs
/// more bytes). Events for one request are `.head`, zero or more `.body`, then `.end`. After
/// `.end` the parser is ready for the next pipelined request, whose bytes may already be
/// buffered; the connection simply does not call `next()` until it wants that request.
///
/// Everything that would let two parsers disagree on message boundaries (request smuggling) is
/// refused: Transfer-Encoding with Content-Length, differing Content-Lengths, codings other than
/// a final `chunked`, obs-fold, whitespace before a colon, bare CR or LF, non-token names,
/// malformed or oversized chunk sizes, and HTTP/1.1 requests without exactly one Host.
/// Errors are terminal: every later `next()` throws the same error.
public struct HTTPRequestParser: Sendable {
    /// One step of a request.
    public enum Event: Sendable, Equatable {
        case head(HTTPRequestHead)
        case body([UInt8])
        /// The message is complete; trailer fields of a chunked body (often empty).
        case end(HTTPHeaders)
    }

    private enum State: Sendable {
        case head
        case bodyFixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case endPending
        case failed(HTTPParseError)
    }

    public let limits: HTTPParserLimits
    private var buffer: [UInt8] = []
    private var start = 0  // first unconsumed byte
    private var scan = 0  // where the search for the next LF resumes (>= start)
    private var state: State = .head

    // Head being assembled.
    private var requestLine: (method: HTTPMethod, target: String, version: HTTPVersion)?
    private var fields: [(name: String, value: String)] = []
    private var sectionBytes = 0
    private var leadingEmptyLines = 0

    public init(limits: HTTPParserLimits = HTTPParserLimits()) { self.limits = limits }

    /// Bytes received but not yet turned into events.
    public var bufferedByteCount: Int { buffer.count - start }

    /// True between requests with nothing buffered: a clean place to close the connection.
    public var isIdle: Bool {
        if case .head = state, requestLine == nil, bufferedByteCount == 0 { return true }
        return false
    }

    /// True once a request line has begun (bytes of a request head have been received).
    public var isReadingHead: Bool {
        if case .head = state { return bufferedByteCount > 0 || requestLine != nil }
        return false
    }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        compactIfUseful()
        buffer.append(contentsOf: bytes)
    }

    public mutating func feed<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        compactIfUseful()
        buffer.append(contentsOf: bytes)
    }

    private mutating func compactIfUseful() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            scan -= start
            start = 0
        } else if start > 64 * 1024 && start > buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            scan -= start
            start = 0
        }
    }

    /// The next event, nil when more input is needed.
    public mutating func next() throws(HTTPParseError) -> Event? {
        do {
            return try step()
        } catch {
            state = .failed(error)
            throw error
        }
    }

    private mutating func step() throws(HTTPParseError) -> Event? {
        switch state {
        case .failed(let error):
            throw error
        case .head:
            return try parseHead()
        case .endPending:
            state = .head
            return .end(HTTPHeaders())
        case .bodyFixed(let remaining):
            let available = buffer.count - start
            guard available > 0 else { return nil }
            let n = min(available, remaining)
            let chunk = Array(buffer[start..<start + n])
            start += n
            scan = start
            state = remaining == n ? .endPending : .bodyFixed(remaining: remaining - n)
            return .body(chunk)
        case .chunkSize:
            guard let line = try nextLine(limit: limits.maxChunkLineLength, tooLong: .bad("chunk_line_too_long",
                "a chunk-size line is longer than \(limits.maxChunkLineLength) bytes")) else { return nil }
            let size = try parseChunkSize(line)
            state = size == 0 ? .trailers : .chunkData(remaining: size)
            sectionBytes = 0
            return try step()
        case .chunkData(let remaining):
            let available = buffer.count - start
            guard available > 0 else { return nil }
            let n = min(available, remaining)
            let chunk = Array(buffer[start..<start + n])
            start += n
            scan = start
            state = remaining == n ? .chunkDataEnd : .chunkData(remaining: remaining - n)
            return .body(chunk)
        case .chunkDataEnd:
            // chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
            guard buffer.count - start >= 2 else {
                if buffer.count - start == 1 && buffer[start] != 0x0D {
                    throw .bad("bad_chunk", "chunk data is not followed by CRLF")
                }
                return nil
            }
            guard buffer[start] == 0x0D, buffer[start + 1] == 0x0A else {
                throw .bad("bad_chunk", "chunk data is not followed by CRLF")
            }
            start += 2
            scan = start
            state = .chunkSize
            return try step()
        case .trailers:
            // trailer-section = *( field-line CRLF ) CRLF
            while true {
                guard let line = try nextLine(limit: limits.maxHeaderSectionSize, tooLong: Self.headerSectionTooLarge)
                else { return nil }
                sectionBytes += line.count + 2
                if sectionBytes > limits.maxHeaderSectionSize { throw Self.headerSectionTooLarge }
                if line.isEmpty {
                    let trailers = HTTPHeaders(fields.map { ($0.name, $0.value) })
                    fields = []
                    sectionBytes = 0
                    state = .head
                    return .end(trailers)
                }
                try parseFieldLine(line)
            }
        }
    }

    static let headerSectionTooLarge = HTTPParseError(
        .requestHeaderFieldsTooLarge, "header_section_too_large", "the header section is too large")

    /// The next line without its CRLF, or nil if no complete line is buffered yet.
    /// Bare LF (no CR before it) and bare CR (CR not followed by LF) are errors (RFC 9112 §2.2).
    private mutating func nextLine(limit: Int, tooLong: HTTPParseError) throws(HTTPParseError) -> ArraySlice<UInt8>? {
        var i = scan
        let end = buffer.count
        while i < end {
            let byte = buffer[i]
            if byte == 0x0A {
                guard i > start, buffer[i - 1] == 0x0D else {
                    throw .bad("bare_lf", "a line ends in LF without CR")
                }
                let line = buffer[start..<(i - 1)]
                if line.count > limit { throw tooLong }
                start = i + 1
                scan = start
                return line
            }
            if byte == 0x0D {
                if i + 1 == end { break }  // decide when the next byte arrives
                if buffer[i + 1] != 0x0A { throw .bad("bare_cr", "a CR is not followed by LF") }
            }
            i += 1
        }
        scan = i
        if scan - start > limit + 1 { throw tooLong }  // +1: the CR of a CRLF may sit at the limit
        return nil
    }

    // MARK: head

    private mutating func parseHead() throws(HTTPParseError) -> Event? {
        while true {
            if requestLine == nil {
                let tooLong = HTTPParseError(.uriTooLong, "request_line_too_long",
                    "the request line is longer than \(limits.maxRequestLineLength) bytes")
                guard let line = try nextLine(limit: limits.maxRequestLineLength, tooLong: tooLong) else { return nil }
                if line.isEmpty {
                    leadingEmptyLines += 1
                    if leadingEmptyLines > limits.maxLeadingEmptyLines {
                        throw .bad("bad_request_line", "too many empty lines before the request line")
                    }
                    continue
                }
                if line.count > limits.maxRequestLineLength { throw tooLong }
                requestLine = try parseRequestLine(line)
                fields = []
                sectionBytes = 0
                continue
            }
            let remainingBudget = limits.maxHeaderSectionSize - sectionBytes
            guard let line = try nextLine(limit: max(remainingBudget, 0), tooLong: Self.headerSectionTooLarge) else {
                return nil
            }
            sectionBytes += line.count + 2
            if sectionBytes > limits.maxHeaderSectionSize + 2 { throw Self.headerSectionTooLarge }
            if line.isEmpty { return .head(try finishHead()) }
            try parseFieldLine(line)
        }
    }

    /// request-line = method SP request-target SP HTTP-version
    private func parseRequestLine(_ line: ArraySlice<UInt8>) throws(HTTPParseError) -> (HTTPMethod, String, HTTPVersion) {
        guard let sp1 = line.firstIndex(of: 0x20) else {
            throw .bad("bad_request_line", "the request line is not `method SP target SP version`")
        }
        let method = line[line.startIndex..<sp1]
        guard !method.isEmpty, method.allSatisfy(HTTPGrammar.isTokenChar) else {
            throw .bad("bad_method", "the method is not a token")
        }
        let rest = line[(sp1 + 1)...]
        guard let sp2 = rest.firstIndex(of: 0x20) else {
            throw .bad("bad_request_line", "the request line is not `method SP target SP version`")
        }
        let target = rest[rest.startIndex..<sp2]
        let versionBytes = rest[(sp2 + 1)...]
        guard !target.isEmpty, target.allSatisfy(HTTPGrammar.isTargetChar) else {
            throw .bad("bad_request_target", "the request-target is empty or has a character outside RFC 3986")
        }
        // HTTP-version = HTTP-name "/" DIGIT "." DIGIT ; HTTP-name = %s"HTTP" (case-sensitive)
        let v = Array(versionBytes)
        guard v.count == 8, v[0] == 0x48, v[1] == 0x54, v[2] == 0x54, v[3] == 0x50, v[4] == 0x2F,
            HTTPGrammar.isDigit(v[5]), v[6] == 0x2E, HTTPGrammar.isDigit(v[7])
        else {
            throw .bad("bad_version", "the HTTP version is not `HTTP/DIGIT.DIGIT`")
        }
        let version = HTTPVersion(major: Int(v[5] - 0x30), minor: Int(v[7] - 0x30))
        guard version.major == 1 else {
            throw HTTPParseError(.httpVersionNotSupported, "version_not_supported", "only HTTP/1.0 and HTTP/1.1 are served")
        }
        let methodValue = HTTPMethod(String(decoding: method, as: UTF8.self))
        let targetString = String(decoding: target, as: UTF8.self)
        // request-target forms (RFC 9112 §3.2).
        let first = target.first!
        if first == 0x2F {
            // origin-form
        } else if targetString == "*" {
            guard methodValue == .options else { throw .bad("bad_request_target", "`*` is only valid with OPTIONS") }
        } else if methodValue == .connect {
            // authority-form: host:port
            guard targetString.contains(":"), !targetString.contains("/") else {
                throw .bad("bad_request_target", "CONNECT needs an authority-form target")
            }
        } else {
            let lower = targetString.lowercased()
            guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
                throw .bad("bad_request_target", "the request-target is not in origin-form or absolute-form")
            }
        }
        return (methodValue, targetString, version)
    }

    /// field-line = field-name ":" OWS field-value OWS
    private mutating func parseFieldLine(_ line: ArraySlice<UInt8>) throws(HTTPParseError) {
        let first = line.first!
        if first == 0x20 || first == 0x09 {
            throw .bad("obs_fold", "obsolete line folding is not accepted")
        }
        guard let colon = line.firstIndex(of: 0x3A) else {
            throw .bad("bad_header", "a header line has no colon")
        }
        let name = line[line.startIndex..<colon]
        guard !name.isEmpty else { throw .bad("bad_header_name", "a header field name is empty") }
        if let last = name.last, last == 0x20 || last == 0x09 {
            throw .bad("space_before_colon", "whitespace between a header field name and its colon")
        }
        guard name.allSatisfy(HTTPGrammar.isTokenChar) else {
            throw .bad("bad_header_name", "a header field name has a character that is not a token character")
        }
        var valueStart = colon + 1
        var valueEnd = line.endIndex
        while valueStart < valueEnd, line[valueStart] == 0x20 || line[valueStart] == 0x09 { valueStart += 1 }
        while valueEnd > valueStart, line[valueEnd - 1] == 0x20 || line[valueEnd - 1] == 0x09 { valueEnd -= 1 }
        let value = line[valueStart..<valueEnd]
        guard value.allSatisfy(HTTPGrammar.isFieldValueChar) else {
            throw .bad("bad_header_value", "a header field value has a control character")
        }
        if fields.count >= limits.maxHeaderCount {
            throw HTTPParseError(.requestHeaderFieldsTooLarge, "too_many_headers",
                "more than \(limits.maxHeaderCount) header fields")
        }
        fields.append((name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self)))
    }

    /// Applies the framing and connection rules of RFC 9112 §6 and §9 to a complete head.
    private mutating func finishHead() throws(HTTPParseError) -> HTTPRequestHead {
        let (method, target, version) = requestLine!
        let headers = HTTPHeaders(fields.map { ($0.name, $0.value) })
        requestLine = nil
        fields = []
        sectionBytes = 0
        leadingEmptyLines = 0

        let hosts = headers.values("host")
        if version == .http1_1 && hosts.count != 1 {
            throw .bad("bad_host", hosts.isEmpty ? "an HTTP/1.1 request needs a Host header" : "more than one Host header")
        }
        if hosts.count > 1 { throw .bad("bad_host", "more than one Host header") }

        var framing = HTTPRequestHead.Framing.none
        let transferEncodings = headers.values("transfer-encoding")
        let contentLengths = headers.values("content-length")
        if !transferEncodings.isEmpty {
            if !contentLengths.isEmpty {
                throw .bad("te_and_cl", "Transfer-Encoding and Content-Length together")
            }
            if version == .http1_0 {
                throw .bad("te_http10", "Transfer-Encoding in an HTTP/1.0 request")
            }
            let codings = headers.listElements("transfer-encoding")
            guard let last = codings.last, last == "chunked" else {
                throw .bad("bad_transfer_encoding", "the final transfer coding is not chunked")
            }
            if codings.dropLast().contains("chunked") {
                throw .bad("bad_transfer_encoding", "chunked is applied more than once")
            }
            if codings.count > 1 {
                throw HTTPParseError(.notImplemented, "unsupported_transfer_coding",
                    "only the chunked transfer coding is supported")
            }
            framing = .chunked
        } else if !contentLengths.isEmpty {
            // Content-Length = 1*DIGIT; a list of identical values is accepted (RFC 9112 §6.3 item 5).
            var length: Int?
            for value in contentLengths {
                for part in value.split(separator: ",", omittingEmptySubsequences: false) {
                    let digits = part.trimmingOWS()
                    guard !digits.isEmpty, digits.utf8.count <= 18, digits.utf8.allSatisfy(HTTPGrammar.isDigit),
                        let n = Int(digits)
                    else {
                        throw .bad("bad_content_length", "Content-Length is not a decimal number")
                    }
                    if let length, length != n { throw .bad("conflicting_content_length", "differing Content-Length values") }
                    length = n
                }
            }
            if let length, length > 0 { framing = .contentLength(length) }
        }

        let connection = headers.listElements("connection")
        let keepAlive: Bool
        if connection.contains("close") {
            keepAlive = false
        } else if version == .http1_0 {
            keepAlive = connection.contains("keep-alive")
        } else {
            keepAlive = true
        }

        var expectsContinue = false
        let expectations = headers.listElements("expect")
        if !expectations.isEmpty {
            guard expectations == ["100-continue"] else {
                throw HTTPParseError(.expectationFailed, "unsupported_expectation", "only `Expect: 100-continue` is supported")
            }
            // A 1.0 client cannot understand 100 Continue (RFC 9110 §10.1.1): ignore the expectation.
            expectsContinue = version == .http1_1
        }

        switch framing {
        case .none: state = .endPending
        case .contentLength(let n): state = .bodyFixed(remaining: n)
        case .chunked: state = .chunkSize
        }
        return HTTPRequestHead(
            method: method, target: target, version: version, headers: headers, framing: framing,
            keepAlive: keepAlive, expectsContinue: expectsContinue)
    }

    /// chunk-size [ chunk-ext ]; chunk-size = 1*HEXDIG; chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] )
    private func parseChunkSize(_ line: ArraySlice<UInt8>) throws(HTTPParseError) -> Int {
        var i = line.startIndex
        var size = 0
        var digits = 0
        while i < line.endIndex, let d = HTTPGrammar.hexValue(line[i]) {
            size = size &* 16 &+ Int(d)
            digits += 1
            if digits > 16 || size > limits.maxChunkSize {
                throw .bad("chunk_too_large", "a chunk size is larger than \(limits.maxChunkSize) bytes")
            }
            i += 1
        }
        guard digits > 0 else { throw .bad("bad_chunk_size", "a chunk size is not hexadecimal") }
        if i == line.endIndex { return size }
        // Only chunk extensions may follow: optional whitespace, then ';'.
        var j = i
        while j < line.endIndex, line[j] == 0x20 || line[j] == 0x09 { j += 1 }
        guard j < line.endIndex, line[j] == 0x3B else {
            throw .bad("bad_chunk_size", "a chunk size is followed by something other than an extension")
        }
        guard line[j...].allSatisfy(HTTPGrammar.isFieldValueChar) else {
            throw .bad("bad_chunk_extension", "a chunk extension has a control character")
        }
        return size
    }
}

/// Character classes of RFC 9110 / RFC 3986 used by the parser.
enum HTTPGrammar {
    /// tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
    static let tokenTable: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for b in UInt8(ascii: "0")...UInt8(ascii: "9") { table[Int(b)] = true }
        for b in UInt8(ascii: "a")...UInt8(ascii: "z") { table[Int(b)] = true }
        for b in UInt8(ascii: "A")...UInt8(ascii: "Z") { table[Int(b)] = true }
        for c in "!#$%&'*+-.^_`|~".utf8 { table[Int(c)] = true }
        return table
    }()

    @inline(__always) static func isTokenChar(_ b: UInt8) -> Bool { tokenTable[Int(b)] }
    @inline(__always) static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    /// Request-target characters: visible ASCII (RFC 3986 characters; `#` starts a fragment,
    /// which is never sent in a request, and bytes >= 0x80 are not URI characters).
    @inline(__always) static func isTargetChar(_ b: UInt8) -> Bool { b > 0x20 && b < 0x7F && b != 0x23 }

    /// field-value = *field-content; field-vchar = VCHAR / obs-text; plus SP / HTAB inside.
    @inline(__always) static func isFieldValueChar(_ b: UInt8) -> Bool {
        b == 0x09 || (b >= 0x20 && b != 0x7F)
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: b - 0x30
        case 0x41...0x46: b - 0x41 + 10
        case 0x61...0x66: b - 0x61 + 10
        default: nil
        }
    }
}
