/// A SigV4 access key the server issued, with its secret and the principal it acts as.
/// The secret is never logged; `description` omits it.
public struct AccessKeyRecord: Sendable, CustomStringConvertible {
    public let accessKeyId: String
    public let secretAccessKey: String
    public let principal: KMSCaller

    public init(accessKeyId: String, secretAccessKey: String, principal: KMSCaller) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.principal = principal
    }

    public var description: String { "AccessKeyRecord(\(accessKeyId) → \(principal.principalArn))" }
}

/// Looks up access keys for SigV4 verification. The domain store implements it for the keys
/// parties get at registration; `StaticAccessKeyDirectory` serves the operator's key pair.
public protocol AccessKeyDirectory: Sendable {
    /// The key's record, or nil when the key id is unknown (or revoked).
    func accessKey(id: String) async throws -> AccessKeyRecord?
}

/// A fixed set of keys (the operator's key pair from `operator-credentials.json`).
public struct StaticAccessKeyDirectory: AccessKeyDirectory {
    public let records: [String: AccessKeyRecord]
    public init(_ records: [AccessKeyRecord]) {
        self.records = Dictionary(records.map { ($0.accessKeyId, $0) }, uniquingKeysWith: { a, _ in a })
    }
    public func accessKey(id: String) async throws -> AccessKeyRecord? { records[id] }
}

/// Asks several directories in order.
public struct CompositeAccessKeyDirectory: AccessKeyDirectory {
    public let directories: [any AccessKeyDirectory]
    public init(_ directories: [any AccessKeyDirectory]) { self.directories = directories }
    public func accessKey(id: String) async throws -> AccessKeyRecord? {
        for d in directories { if let r = try await d.accessKey(id: id) { return r } }
        return nil
    }
}
