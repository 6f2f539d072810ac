import Foundation

/// Signs and sends requests to one AWS service endpoint: fresh credentials and a fresh
/// signature for every attempt, retries from the HTTP client.
public struct AWSRequestSender: Sendable {
    public let scheme: String
    public let host: String
    public let port: Int?
    /// Path prefix of the endpoint URL (usually empty).
    public let basePath: String
    public let region: String
    public let service: String
    public let credentials: any AWSCredentialsProvider
    public let client: HTTPClient
    public let clock: @Sendable () -> Date

    public init(
        endpoint: String, region: String, service: String, credentials: any AWSCredentialsProvider,
        client: HTTPClient = .shared, clock: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        guard let url = URLComponents(string: endpoint), let scheme = url.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty
        else { throw AWSConfigurationError("endpoint \(endpoint) is not an http(s) URL") }
        self.scheme = scheme
        self.host = host
        self.port = url.port
        var base = url.path
        while base.hasSuffix("/") { base.removeLast() }
        self.basePath = base
        self.region = region
        self.service = service
        self.credentials = credentials
        self.client = client
        self.clock = clock
    }

    /// `host[:port]` as sent in the Host header.
    public var hostHeader: String {
        guard let port, !(scheme == "http" && port == 80) && !(scheme == "https" && port == 443) else { return host }
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The same endpoint with another host (S3 virtual-hosted buckets).
    public func withHost(_ newHost: String) -> AWSRequestSender {
        var copy = self
        copy = AWSRequestSender(
            scheme: scheme, host: newHost, port: port, basePath: basePath, region: region, service: service,
            credentials: credentials, client: client, clock: clock)
        return copy
    }

    private init(
        scheme: String, host: String, port: Int?, basePath: String, region: String, service: String,
        credentials: any AWSCredentialsProvider, client: HTTPClient, clock: @escaping @Sendable () -> Date
    ) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.basePath = basePath
        self.region = region
        self.service = service
        self.credentials = credentials
        self.client = client
        self.clock = clock
    }

    /// Sends `request` (decoded path relative to the endpoint, headers without Host) with a body
    /// whose SHA-256 hex is `payloadHash` (or `UNSIGNED-PAYLOAD` / the streaming marker).
    public func send(
        _ request: SigV4Request, body: HTTPClientRequest.Body, payloadHash: String, idempotent: Bool = true,
        retry: RetryPolicy? = nil, shouldRetry: @escaping @Sendable (Int, [UInt8]) -> Bool = { _, _ in false }
    ) async throws -> HTTPClientResponse {
        try await client.execute(retry: retry, shouldRetry: shouldRetry) {
            let creds = try await credentials.credentials()
            var r = request
            r.path = basePath + request.path
            r.setHeader("Host", hostHeader)
            let signer = SigV4(credentials: creds, region: region, service: service)
            signer.sign(&r, payloadHash: payloadHash, date: clock())
            return HTTPClientRequest(
                method: r.method, url: "\(scheme)://\(hostHeader)\(r.encodedTarget)",
                headers: r.headers.map { ($0.name, $0.value) }, body: body, idempotent: idempotent)
        }
    }
}
