import GRDB

/// One entry of the hash-chained audit log. `hash` = SHA-256 over the domain prefix and the
/// RFC 8785 form of every other field, `prevHash` included, so editing, removing or reordering
/// any entry breaks the chain from that point on.
public struct AuditEntry: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "auditEntry"
    /// The hash that precedes the first entry.
    public static let genesisHash = String(repeating: "0", count: 64)
    static let domainPrefix = "cleanroom-audit-v1\n"

    public var seq: Int64
    public var time: Int64
    /// Principal id, or `system`.
    public var actor: String
    public var actorPartyId: String?
    /// e.g. `party.registered`, `dataset.uploaded`, `approval.submitted`.
    public var action: String
    public var collaborationId: String?
    /// The id of the object acted on.
    public var subject: String?
    /// Canonical JSON object with action-specific details (never secrets).
    public var details: String
    public var prevHash: String
    public var hash: String

    /// The canonical JSON the hash covers.
    public var canonicalBody: JSONValue {
        let detailsValue = (try? JSONParser.parse(details)) ?? .string(details)
        func opt(_ s: String?) -> JSONValue { s.map(JSONValue.string) ?? .null }
        return .object([
            ("seq", .number(Double(seq))), ("time", .string(RFC3339.format(time))), ("actor", .string(actor)),
            ("actorParty", opt(actorPartyId)), ("action", .string(action)), ("collaboration", opt(collaborationId)),
            ("subject", opt(subject)), ("details", detailsValue), ("prev", .string(prevHash)),
        ])
    }

    /// The hash this entry must carry.
    public var computedHash: String {
        CryptoSupport.sha256Hex(Array(Self.domainPrefix.utf8) + CanonicalJSON.serialize(canonicalBody))
    }
}

/// A signed statement by the server's audit key that the chain up to `seq` ends in `hash`.
/// Signed periodically, so that rewriting the whole chain (not only one entry) is detected too.
public struct AuditCheckpoint: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "auditCheckpoint"
    public var seq: Int64
    public var hash: String
    public var time: Int64
    /// ECDSA P-256 DER signature over `message`, base64.
    public var signature: String
    /// SHA-256 fingerprint of the signing key's SPKI.
    public var keyFingerprint: String

    /// The bytes signed: a domain prefix, the sequence number, the chain hash and the time.
    public static func message(seq: Int64, hash: String, time: Int64) -> [UInt8] {
        Array("cleanroom-audit-checkpoint-v1\n\(seq)\n\(hash)\n\(RFC3339.format(time))".utf8)
    }

    public var message: [UInt8] { Self.message(seq: seq, hash: hash, time: time) }
}

/// Signs audit checkpoints with the server's key (ECDSA P-256). Implemented in the server over the
/// key in its data directory; tests use a generated key.
public protocol AuditSigner: Sendable {
    /// The signer's public key, SPKI PEM.
    var publicKeyPEM: String { get }
    /// A DER ECDSA signature over `message` (SHA-256).
    func sign(_ message: [UInt8]) throws -> [UInt8]
}
