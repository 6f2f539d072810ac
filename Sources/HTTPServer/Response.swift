import Glibc

/// What a handler returns: a status, header fields and a fixed or streamed body.
///
/// The server adds `Content-Length` (fixed bodies and streams of known length) or uses chunked
/// transfer coding (streams of unknown length on HTTP/1.1; close-delimited on HTTP/1.0), and
/// the `Date` and `Connection` fields. Do not set framing headers yourself.
public struct Response: Sendable {
    public var status: HTTPStatus
    public var headers: HTTPHeaders
    public var body: ResponseBody
    /// The route pattern that answered (`/v1/jobs/:jobId`), set by the router; nil for a request no
    /// route matched. It names the request in the access log and the server's metrics, where the
    /// path itself (ids) would not group.
    public var route: String?

    public init(status: HTTPStatus = .ok, headers: HTTPHeaders = HTTPHeaders(), body: ResponseBody = .empty) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A plain-text response (`text/plain; charset=utf-8`).
    public static func text(_ text: String, status: HTTPStatus = .ok) -> Response {
        Response(status: status, headers: ["Content-Type": "text/plain; charset=utf-8"], body: .bytes(Array(text.utf8)))
    }

    /// The project's one error shape: `{"error":{"code":"…","message":"…"}}`.
    public static func errorJSON(status: HTTPStatus, code: String, message: String) -> Response {
        var out = #"{"error":{"code":"#
        JSONText.appendString(code, to: &out)
        out += #","message":"#
        JSONText.appendString(message, to: &out)
        out += "}}"
        return Response(status: status, headers: ["Content-Type": "application/json"], body: .bytes(Array(out.utf8)))
    }

    /// Collects the whole body in memory (tests and small responses only).
    public func collectBody() async throws -> [UInt8] {
        switch body.kind {
        case .bytes(let bytes): return bytes
        case .stream(_, let produce):
            let sink = MemoryBodySink()
            try await produce(ResponseBodyWriter(sink: sink))
            return sink.bytes.withLock { $0 }
        }
    }
}

/// A response body: bytes in memory, or a stream the server pulls with backpressure.
public struct ResponseBody: Sendable {
    enum Kind: Sendable {
        case bytes([UInt8])
        case stream(length: Int?, @Sendable (ResponseBodyWriter) async throws -> Void)
    }
    let kind: Kind

    public static let empty = ResponseBody(kind: .bytes([]))

    public static func bytes(_ bytes: [UInt8]) -> ResponseBody { ResponseBody(kind: .bytes(bytes)) }
    public static func string(_ string: String) -> ResponseBody { ResponseBody(kind: .bytes(Array(string.utf8))) }

    /// A streamed body. `produce` writes chunks with `writer.write(_:)`, which suspends while the
    /// client is slower than the producer (memory stays bounded). With `length` the response
    /// carries `Content-Length` and `produce` must write exactly that many bytes; without it the
    /// body is chunked (HTTP/1.1) and may end with trailers (`writer.setTrailers`).
    /// If `produce` throws after the head was sent, the connection is closed without a clean end,
    /// so the client sees a truncated body rather than a wrong one.
    public static func stream(
        length: Int? = nil, _ produce: @escaping @Sendable (ResponseBodyWriter) async throws -> Void
    ) -> ResponseBody {
        ResponseBody(kind: .stream(length: length, produce))
    }

    /// The byte count when known in advance.
    public var knownLength: Int? {
        switch kind {
        case .bytes(let b): b.count
        case .stream(let length, _): length
        }
    }
}

/// Where a streamed response body goes. Implemented by the connection (and in memory for tests).
protocol ResponseBodySink: Sendable {
    func write(_ bytes: [UInt8]) async throws
    func setTrailers(_ trailers: HTTPHeaders)
}

/// Handed to a streamed body's producer; `write` applies backpressure.
public struct ResponseBodyWriter: Sendable {
    let sink: any ResponseBodySink

    /// Sends one chunk; suspends while the connection's send buffer is full. Throws when the
    /// client has gone away.
    public func write(_ bytes: [UInt8]) async throws {
        if bytes.isEmpty { return }
        try await sink.write(bytes)
    }

    /// Trailer fields sent after the last chunk (chunked responses only; ignored otherwise).
    public func setTrailers(_ trailers: HTTPHeaders) { sink.setTrailers(trailers) }
}

final class MemoryBodySink: ResponseBodySink {
    let bytes = Locked<[UInt8]>([])
    let trailers = Locked<HTTPHeaders>(HTTPHeaders())
    func write(_ bytes: [UInt8]) async throws { self.bytes.withLock { $0.append(contentsOf: bytes) } }
    func setTrailers(_ trailers: HTTPHeaders) { self.trailers.withLock { $0 = trailers } }
}

/// Minimal JSON text for the error shape and log lines (no Foundation on the hot path).
public enum JSONText {
    /// Appends `s` as a JSON string, quoted and escaped.
    public static func appendString(_ s: String, to out: inout String) {
        out.append("\"")
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out.append("\\\"")
            case "\\": out.append("\\\\")
            case "\n": out.append("\\n")
            case "\r": out.append("\\r")
            case "\t": out.append("\\t")
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out.append("\"")
    }

    /// A Unix time as a quoted ISO 8601 UTC timestamp with milliseconds (`"2026-11-22T09:02:35.119Z"`).
    public static func timestamp(_ t: Double) -> String {
        var seconds = time_t(t)
        var value = tm()
        gmtime_r(&seconds, &value)
        var buffer = [CChar](repeating: 0, count: 32)
        let n = strftime(&buffer, 32, "%Y-%m-%dT%H:%M:%S", &value)
        let ms = String(min(999, max(0, Int((t - Double(seconds)) * 1000))))
        return "\"" + cString(Array(buffer[0..<n]) + [0]) + "." + String(repeating: "0", count: 3 - ms.count) + ms + "Z\""
    }
}
