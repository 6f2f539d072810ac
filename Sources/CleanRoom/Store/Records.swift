import GRDB

// Rows of the metadata database. Plain Codable structs; the schema belongs to `CleanRoomMigrations`.
// Times are Unix seconds (UTC).

/// An organisation taking part in collaborations.
public struct Party: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "party"
    public enum Status: String, Codable, Sendable { case active, suspended }

    public var id: String
    public var name: String
    public var status: Status
    /// Approval-signing key (ECDSA P-256, SPKI PEM).
    public var signingKey: String
    /// SHA-256 of the signing key's DER SPKI, hex: the `cleanroom:owner-key` context value.
    public var signingKeyFingerprint: String
    /// Result-encryption key (RSA ≥ 3072, SPKI PEM).
    public var resultKey: String
    public var createdAt: Int64
}

/// A person or system acting for a party (or for the operator when `partyId` is nil).
public struct Principal: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "principal"
    public enum Status: String, Codable, Sendable { case active, revoked }

    public var id: String
    public var partyId: String?
    public var name: String
    public var roles: [Role]
    public var status: Status
    public var createdAt: Int64

    /// The operator's principal belongs to no party.
    public var isOperator: Bool { partyId == nil && roles.contains(.admin) }
}

/// A bearer credential: only the SHA-256 of the 256-bit secret is stored.
public struct Credential: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "credential"
    public var id: String
    public var principalId: String
    public var secretHash: String
    public var createdAt: Int64
    public var revokedAt: Int64?
}

/// A SigV4 access key pair for the KMS endpoint. SigV4 is an HMAC scheme, so the server must
/// keep the secret itself to check signatures; it is never returned after registration.
public struct AccessKey: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "accessKey"
    public var id: String
    public var partyId: String
    public var principalId: String
    public var secret: String
    public var createdAt: Int64
    public var revokedAt: Int64?
}

/// A single-use, expiring enrollment token; only its SHA-256 is stored.
public struct EnrollmentToken: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "enrollmentToken"
    public var id: String
    public var tokenHash: String
    public var createdAt: Int64
    public var expiresAt: Int64
    public var usedAt: Int64?
    public var partyId: String?
}

/// A declared column of a dataset.
public struct DatasetColumn: Codable, Sendable, Equatable, Hashable {
    public enum ColumnType: String, Codable, Sendable, CaseIterable { case string, integer, float, boolean }
    public var name: String
    public var type: ColumnType
    public var nullable: Bool?

    public init(name: String, type: ColumnType, nullable: Bool? = nil) {
        self.name = name
        self.type = type
        self.nullable = nullable
    }
}

/// A party's dataset. Its content fields are set together, in one transaction, only when a whole
/// Encryption SDK message has been stored (`status == .available`).
public struct Dataset: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "dataset"
    public enum Status: String, Codable, Sendable { case created, available, withdrawn }

    public var id: String
    public var partyId: String
    public var name: String
    public var columns: [DatasetColumn]
    public var status: Status
    public var objectKey: String?
    public var objectVersion: String?
    public var size: Int64?
    public var sha256: String?
    /// Encryption SDK algorithm suite, e.g. 0x0478.
    public var suite: Int?
    public var encryptionContext: [String: String]?
    public var createdAt: Int64
    public var uploadedAt: Int64?
}

/// An upload in progress. A row left behind by a crash marks an object to delete at start-up.
public struct PendingUpload: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "pendingUpload"
    public var id: String
    public var datasetId: String
    public var objectKey: String
    public var startedAt: Int64
}

/// A proposed collaboration; its current policy is `currentDigest`.
public struct Collaboration: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "collaboration"
    public var id: String
    public var name: String
    public var proposerPartyId: String
    public var currentDigest: String
    public var createdAt: Int64
    public var updatedAt: Int64
}

/// One version of a collaboration's policy, stored in canonical (RFC 8785) form.
public struct PolicyVersion: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "policy"
    public var digest: String
    public var collaborationId: String
    public var version: Int
    public var canonical: String
    public var proposedBy: String
    public var createdAt: Int64
    public var supersededAt: Int64?
}

/// A party named in a collaboration's current policy.
public struct Membership: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "membership"
    public var collaborationId: String
    public var partyId: String
}

/// A party's signed approval of one policy digest. Append-only: revocation sets `revokedAt`.
public struct Approval: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "approval"
    public var id: String
    public var collaborationId: String
    public var policyDigest: String
    public var partyId: String
    public var principalId: String
    public var expiresAt: Int64
    /// ECDSA P-256 DER signature, base64.
    public var signature: String
    public var createdAt: Int64
    public var revokedAt: Int64?
}

/// A run of a collaboration's policy (driven by the job orchestrator).
public struct Job: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "job"
    public var id: String
    public var collaborationId: String
    public var policyDigest: String
    public var status: String
    public var error: String?
    public var createdAt: Int64
    public var updatedAt: Int64
}

/// An encrypted result addressed to one recipient party.
public struct Output: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "output"
    public var id: String
    public var jobId: String
    public var recipientPartyId: String
    public var name: String
    public var objectKey: String
    public var sha256: String
    public var size: Int64
    public var createdAt: Int64
}
