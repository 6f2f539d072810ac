/// A parsed and validated request line and header section.
///
/// The parser fills the derived framing fields (`framing`, `keepAlive`, `expectsContinue`) after
/// the RFC 9112 checks, so the connection never re-reads headers to decide framing.
public struct HTTPRequestHead: Sendable, Equatable {
    /// How the request body is delimited (RFC 9112 §6).
    public enum Framing: Sendable, Equatable {
        case none
        case contentLength(Int)
        case chunked
    }

    public var method: HTTPMethod
    /// The request-target exactly as sent (origin-form, absolute-form, authority-form or `*`).
    public var target: String
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    public var framing: Framing
    /// Whether the connection may stay open after this exchange (HTTP/1.1 default yes, HTTP/1.0
    /// only with `Connection: keep-alive`; `Connection: close` always wins).
    public var keepAlive: Bool
    /// The client sent `Expect: 100-continue`.
    public var expectsContinue: Bool

    public init(
        method: HTTPMethod, target: String, version: HTTPVersion, headers: HTTPHeaders,
        framing: Framing = .none, keepAlive: Bool = true, expectsContinue: Bool = false
    ) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.framing = framing
        self.keepAlive = keepAlive
        self.expectsContinue = expectsContinue
    }
}
