/// Connection, size and time limits of the HTTP server, in one place.
public struct HTTPServerLimits: Sendable, Equatable {
    /// Request-line, header and chunk-framing limits (414, 431, 400).
    public var parser = HTTPParserLimits()
    /// Open connections beyond this are accepted and closed at once (with a 503 when possible).
    public var maxConnections = 4096
    /// Time to receive a complete request head once its first byte arrived (408, then close).
    public var headerReadTimeout: Duration = .seconds(10)
    /// Time a keep-alive connection may sit idle between requests (closed silently).
    public var idleTimeout: Duration = .seconds(60)
    /// Time without any progress while reading a request body or writing a response (closed).
    public var ioTimeout: Duration = .seconds(60)
    /// How long shutdown waits for in-flight requests before closing their connections.
    public var shutdownGracePeriod: Duration = .seconds(10)
    /// Request-body bytes buffered for a handler before the server stops reading the socket.
    public var requestBodyBuffer = 256 * 1024
    /// Response bytes queued for a connection before a streaming handler's `write` suspends.
    public var responseBuffer = 256 * 1024
    /// Unread request-body bytes the server will discard to keep a connection alive after a
    /// handler answered without reading its body; larger remainders close the connection.
    public var maxDiscardedBody = 64 * 1024

    public init() {}
}

/// Where and how the HTTP server listens.
public struct HTTPServerConfiguration: Sendable {
    /// A host name or IP address to bind (`127.0.0.1`, `::1`, `0.0.0.0`).
    public var host: String
    /// The port; 0 picks a free one (read it back from `HTTPServer.port`).
    public var port: Int
    /// Event-loop threads; default one per core.
    public var eventLoops: Int
    public var limits: HTTPServerLimits
    /// TLS settings; nil serves plain HTTP.
    public var tls: TLSConfiguration?

    public init(
        host: String = "127.0.0.1", port: Int = 8080, eventLoops: Int? = nil, limits: HTTPServerLimits = HTTPServerLimits(),
        tls: TLSConfiguration? = nil
    ) {
        self.host = host
        self.port = port
        self.eventLoops = eventLoops ?? System.coreCount
        self.limits = limits
        self.tls = tls
    }
}

/// PEM files for TLS 1.2/1.3 and optional client-certificate verification.
public struct TLSConfiguration: Sendable, Equatable {
    public var certificateChainPath: String
    public var privateKeyPath: String
    /// When set, clients must present a certificate that verifies against these CAs (mutual TLS).
    public var clientCAPath: String?

    public init(certificateChainPath: String, privateKeyPath: String, clientCAPath: String? = nil) {
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
        self.clientCAPath = clientCAPath
    }

    /// Loads the files once and checks that key and certificate match (throws `TLSError`).
    public func validate() throws { _ = try TLSContext(self) }
}
