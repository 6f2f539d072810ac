import CleanRoom
import Foundation

// JSON bodies of the /v1 API (docs/openapi.yaml is the contract). Times are RFC 3339 UTC strings.

/// A list response: `{"items": [...]}`.
struct ItemList<Item: Encodable>: Encodable {
    let items: [Item]
}

struct PartyBody: Encodable {
    let id, name, status, signingKey, signingKeyFingerprint, resultKey, createdAt: String

    init(_ party: Party) {
        id = party.id
        name = party.name
        status = party.status.rawValue
        signingKey = party.signingKey
        signingKeyFingerprint = party.signingKeyFingerprint
        resultKey = party.resultKey
        createdAt = RFC3339.format(party.createdAt)
    }
}

struct PrincipalBody: Encodable {
    let id, name, status, createdAt: String
    let partyId: String?
    let roles: [String]

    init(_ principal: Principal) {
        id = principal.id
        name = principal.name
        status = principal.status.rawValue
        createdAt = RFC3339.format(principal.createdAt)
        partyId = principal.partyId
        roles = principal.roles.map(\.rawValue)
    }
}

struct CredentialBody: Encodable {
    /// The bearer secret: shown once, never stored in clear.
    let token: String
}

struct EnrollmentTokenRequest: Decodable {
    let expiresInSeconds: Int64?
}

struct EnrollmentTokenBody: Encodable {
    let id, token, expiresAt: String
}

struct RegisterRequest: Decodable {
    let name: String
    let partyId: String?
    let signingKey: String
    let resultKey: String
    let principalName: String?
}

struct AccessKeyBody: Encodable {
    let accessKeyId, secretAccessKey: String
}

struct RegisterResponse: Encodable {
    let party: PartyBody
    let principal: PrincipalBody
    let credential: CredentialBody
    let accessKey: AccessKeyBody
}

struct CreatePrincipalRequest: Decodable {
    let name: String
    let roles: [String]
}

struct SetRolesRequest: Decodable {
    let roles: [String]
}

struct PrincipalWithCredential: Encodable {
    let principal: PrincipalBody
    let credential: CredentialBody
}

struct ColumnBody: Codable {
    let name: String
    let type: String
    let nullable: Bool?
}

struct CreateDatasetRequest: Decodable {
    let name: String
    let columns: [ColumnBody]
}

struct DatasetBody: Encodable {
    let id, partyId, name, status, createdAt: String
    let columns: [ColumnBody]
    let size: Int64?
    let sha256, objectVersion, suite, uploadedAt: String?
    let encryptionContext: [String: String]?

    init(_ dataset: Dataset) {
        id = dataset.id
        partyId = dataset.partyId
        name = dataset.name
        status = dataset.status.rawValue
        createdAt = RFC3339.format(dataset.createdAt)
        columns = dataset.columns.map { ColumnBody(name: $0.name, type: $0.type.rawValue, nullable: $0.nullable) }
        size = dataset.size
        sha256 = dataset.sha256
        objectVersion = dataset.objectVersion
        suite = dataset.suite.map { "0x" + String(format: "%04X", $0) }
        uploadedAt = dataset.uploadedAt.map(RFC3339.format)
        encryptionContext = dataset.encryptionContext
    }
}

/// A collaboration as members see it. `policy` is the current document; `canonicalPolicy` its
/// RFC 8785 text, whose SHA-256 is `currentDigest`.
struct CollaborationBody: Encodable {
    let id, name, proposerPartyId, currentDigest, canonicalPolicy, createdAt, updatedAt: String
    let version: Int
    let members, supersededDigests: [String]
    let policy: JSONValue

    init(_ view: CollaborationView) throws {
        id = view.collaboration.id
        name = view.collaboration.name
        proposerPartyId = view.collaboration.proposerPartyId
        currentDigest = view.collaboration.currentDigest
        canonicalPolicy = view.policy.canonical
        createdAt = RFC3339.format(view.collaboration.createdAt)
        updatedAt = RFC3339.format(view.collaboration.updatedAt)
        version = view.policy.version
        members = view.members
        supersededDigests = view.supersededDigests
        policy = try JSONParser.parse(view.policy.canonical)
    }
}

struct ApprovalRequest: Decodable {
    let policyDigest: String
    let expiresAt: String
    /// Base64 DER ECDSA P-256 signature over the approval message.
    let signature: String
}

struct ApprovalBody: Encodable {
    let id, collaborationId, policyDigest, partyId, principalId, expiresAt, signature, createdAt: String
    let revokedAt: String?

    init(_ approval: Approval) {
        id = approval.id
        collaborationId = approval.collaborationId
        policyDigest = approval.policyDigest
        partyId = approval.partyId
        principalId = approval.principalId
        expiresAt = RFC3339.format(approval.expiresAt)
        signature = approval.signature
        createdAt = RFC3339.format(approval.createdAt)
        revokedAt = approval.revokedAt.map(RFC3339.format)
    }
}

struct FullAuditLog: Encodable {
    let entries: [AuditEntry]
    let checkpoints: [AuditCheckpoint]
    let publicKey: String?
}

