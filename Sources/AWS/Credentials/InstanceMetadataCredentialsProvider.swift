import Foundation

/// The EC2 instance role's credentials from the instance metadata service, IMDSv2 only:
/// `PUT /latest/api/token` for a session token, then the role name and its credentials under
/// `/latest/meta-data/iam/security-credentials/`. Credentials are cached and fetched again
/// `refreshBefore` seconds before they expire (AWS rotates them well ahead of that).
public final class InstanceMetadataCredentialsProvider: AWSCredentialsProvider {
    public let endpoint: String
    public let refreshBefore: TimeInterval
    private let client: HTTPClient
    private let now: @Sendable () -> Date
    private let cache = LockedBox<AWSCredentials?>(nil)

    /// `endpoint` defaults to `AWS_EC2_METADATA_SERVICE_ENDPOINT` or `http://169.254.169.254`.
    public init(
        endpoint: String? = nil, client: HTTPClient = .shared, refreshBefore: TimeInterval = 300,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        let env = ProcessInfo.processInfo.environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
        var e = endpoint ?? env ?? "http://169.254.169.254"
        while e.hasSuffix("/") { e.removeLast() }
        self.endpoint = e
        self.client = client
        self.refreshBefore = refreshBefore
        self.now = now
    }

    struct RoleCredentials: Decodable {
        let Code: String?
        let AccessKeyId: String
        let SecretAccessKey: String
        let Token: String?
        let Expiration: String?
    }

    public func credentials() async throws -> AWSCredentials {
        if let c = cache.withLock({ $0 }), let exp = c.expiration, exp.timeIntervalSince(now()) > refreshBefore {
            return c
        }
        let fresh = try await fetch()
        cache.withLock { $0 = fresh }
        return fresh
    }

    private func call(_ method: String, _ path: String, headers: [(name: String, value: String)]) async throws -> String {
        let retry = RetryPolicy(maxAttempts: 3, baseDelay: 0.05, maxDelay: 0.5)
        let response = try await client.execute(retry: retry) {
            HTTPClientRequest(method: method, url: self.endpoint + path, headers: headers)
        }
        let body = try await response.body.collect(limit: 64 * 1024)
        guard response.status == 200 else {
            throw AWSConfigurationError("instance metadata \(method) \(path) answered HTTP \(response.status)")
        }
        return String(decoding: body, as: UTF8.self)
    }

    private func fetch() async throws -> AWSCredentials {
        let token = try await call("PUT", "/latest/api/token", headers: [("X-aws-ec2-metadata-token-ttl-seconds", "21600")])
        let auth = [(name: "X-aws-ec2-metadata-token", value: token)]
        let roles = try await call("GET", "/latest/meta-data/iam/security-credentials/", headers: auth)
        guard let role = roles.split(separator: "\n").first.map(String.init), !role.isEmpty else {
            throw AWSConfigurationError("the instance has no IAM role")
        }
        let json = try await call("GET", "/latest/meta-data/iam/security-credentials/\(SigV4.uriEncode(role))", headers: auth)
        let rc = try JSONDecoder().decode(RoleCredentials.self, from: Data(json.utf8))
        if let code = rc.Code, code != "Success" { throw AWSConfigurationError("instance role credentials: \(code)") }
        var expiration: Date?
        if let e = rc.Expiration {
            let f = ISO8601DateFormatter()
            expiration = f.date(from: e)
        }
        return AWSCredentials(
            accessKeyId: rc.AccessKeyId, secretAccessKey: rc.SecretAccessKey, sessionToken: rc.Token, expiration: expiration)
    }
}
