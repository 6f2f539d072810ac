/// An outbound HTTP request for `HTTPClient`.
public struct HTTPClientRequest: Sendable {
    public var method: String
    /// Absolute URL, already percent-encoded.
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: Body
    /// Whether the request may be sent again after a connection error, a 5xx or throttling.
    public var idempotent: Bool
    /// `CURLOPT_RESOLVE` entries (`host:port:address`, an IPv6 address in brackets) pinning the
    /// URL's host to addresses checked beforehand, so DNS cannot change between check and connect.
    /// A pinned request always opens a fresh connection and does not leave it for reuse. The
    /// entries stay in the worker's DNS cache: send pinned requests on a dedicated client.
    public var resolve: [String] = []
    /// Ignore `http_proxy`/`https_proxy`/`all_proxy` from the environment (`CURLOPT_NOPROXY "*"`),
    /// so a proxy cannot route the request around a pinned address.
    public var bypassProxy: Bool = false

    /// A request body: none, bytes in memory (replayable, so retryable), or a stream read once.
    public enum Body: Sendable {
        case empty
        case bytes([UInt8])
        /// Bytes read in place from the buffer (no copy); replayable, so retryable. The buffer
        /// must not change until the response body has been read to its end.
        case buffer(UploadBuffer)
        /// A stream of unknown or known length; sent with `Transfer-Encoding: chunked` when
        /// `length` is nil. Never retried once started.
        case stream(ByteStream, length: Int?)
    }

    public init(
        method: String, url: String, headers: [(name: String, value: String)] = [], body: Body = .empty,
        idempotent: Bool = true, resolve: [String] = [], bypassProxy: Bool = false
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.idempotent = idempotent
        self.resolve = resolve
        self.bypassProxy = bypassProxy
    }
}

/// A response whose body is still streaming from the server.
public struct HTTPClientResponse: Sendable {
    public let status: Int
    /// Header names as received; use `header(_:)` for case-insensitive lookup.
    public let headers: [(name: String, value: String)]
    public let body: ByteStream

    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }
}

/// Why an HTTP exchange failed below the HTTP layer (or was refused by a limit).
public struct HTTPClientError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case connectionFailed, timedOut, cancelled, bodyTooLarge, invalidRequest, tls, transport
    }
    public let code: Code
    public let message: String
    /// The libcurl result code, when there is one.
    public let curlCode: Int?

    public init(_ code: Code, _ message: String, curlCode: Int? = nil) {
        self.code = code
        self.message = message
        self.curlCode = curlCode
    }

    /// Connection-level failures worth retrying for idempotent requests.
    public var isRetryable: Bool { code == .connectionFailed || code == .timedOut }

    public var description: String { "HTTP client \(code.rawValue): \(message)" }
}

/// Exponential backoff with full jitter (as AWS SDKs do): attempt `n` sleeps a random time
/// in `0 ..< min(maxDelay, baseDelay * 2^n)`.
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Double
    public var maxDelay: Double

    public init(maxAttempts: Int = 5, baseDelay: Double = 0.1, maxDelay: Double = 8) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// No retries.
    public static let none = RetryPolicy(maxAttempts: 1)

    /// The delay before retry number `attempt` (0-based), with full jitter.
    public func delay(attempt: Int) -> Double {
        let ceiling = min(maxDelay, baseDelay * Double(1 << min(attempt, 30)))
        return Double.random(in: 0..<max(ceiling, 0.001))
    }
}
