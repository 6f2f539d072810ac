import GRDB

/// One entry of the hash-chained audit log. Editing, removing or reordering any entry breaks the
/// chain from that point on.
///
/// Format 2 (every entry written now): `hash` = SHA-256 over a domain prefix, `prevHash`, the
/// entry's collaboration `tag` and the SHA-256 of the RFC 8785 form of its fields. A party's proof
/// carries other entries as links of exactly those three values, so the party can recompute every
/// link's hash, and recognise its own collaboration's tag on any link the server tried to pass off
/// as someone else's. Format 1 (entries written before tags; `format` nil): `hash` = SHA-256 over
/// another prefix and the RFC 8785 form of the fields; its links cannot be recomputed.
public struct AuditEntry: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "auditEntry"
    /// The hash that precedes the first entry.
    public static let genesisHash = String(repeating: "0", count: 64)
    static let domainPrefix = "cleanroom-audit-v1\n"
    static let linkPrefix = "cleanroom-audit-v2\n"
    static let tagPrefix = "cleanroom-audit-tag-v1\n"
    /// The format new entries are written in.
    public static let currentFormat = 2

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
    /// 2, or nil for format 1.
    public var format: Int?

    /// The canonical JSON of the entry's fields.
    public var canonicalBody: JSONValue {
        let detailsValue = (try? JSONParser.parse(details)) ?? .string(details)
        func opt(_ s: String?) -> JSONValue { s.map(JSONValue.string) ?? .null }
        return .object([
            ("seq", .number(Double(seq))), ("time", .string(RFC3339.format(time))), ("actor", .string(actor)),
            ("actorParty", opt(actorPartyId)), ("action", .string(action)), ("collaboration", opt(collaborationId)),
            ("subject", opt(subject)), ("details", detailsValue), ("prev", .string(prevHash)),
        ])
    }

    /// Marks entry `seq` as one of `collaborationId` (nil: of none) for those who know the id: SHA-256
    /// over a prefix, the id and the sequence number, so that entries of one collaboration do not
    /// look alike to anyone else.
    public static func tag(collaborationId: String?, seq: Int64) -> String {
        CryptoSupport.sha256Hex(Array("\(tagPrefix)\(collaborationId ?? "")\n\(seq)".utf8))
    }

    /// The hash of a format-2 entry from its link's values.
    static func linkHash(prevHash: String, tag: String, content: String) -> String {
        CryptoSupport.sha256Hex(Array("\(linkPrefix)\(prevHash)\n\(tag)\n\(content)".utf8))
    }

    /// The hash this entry must carry (empty for a format this code does not know, which then
    /// never verifies).
    public var computedHash: String {
        switch format {
        case nil: CryptoSupport.sha256Hex(Array(Self.domainPrefix.utf8) + CanonicalJSON.serialize(canonicalBody))
        case 2?: Self.linkHash(prevHash: prevHash, tag: Self.tag(collaborationId: collaborationId, seq: seq), content: contentDigest)
        default: ""
        }
    }

    /// SHA-256 of the fields' canonical JSON.
    var contentDigest: String { CryptoSupport.sha256Hex(CanonicalJSON.serialize(canonicalBody)) }

    /// The entry as a link of the chain: for format 2 with its tag and content digest.
    public var link: AuditVerifier.Link {
        guard format == 2 else { return AuditVerifier.Link(seq: seq, prevHash: prevHash, hash: hash) }
        return AuditVerifier.Link(
            seq: seq, prevHash: prevHash, hash: hash, tag: Self.tag(collaborationId: collaborationId, seq: seq), content: contentDigest)
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
    /// The first entry of format 2: every entry from it on is one, so no link of them can be
    /// passed off as a format-1 link (which would hide its tag). Nil in checkpoints signed before
    /// format 2.
    public var formatSince: Int64?

    /// The bytes signed: a domain prefix, the sequence number, the chain hash, the time and (since
    /// format 2) the first format-2 entry.
    public static func message(seq: Int64, hash: String, time: Int64, formatSince: Int64?) -> [UInt8] {
        guard let formatSince else {
            return Array("cleanroom-audit-checkpoint-v1\n\(seq)\n\(hash)\n\(RFC3339.format(time))".utf8)
        }
        return Array("cleanroom-audit-checkpoint-v2\n\(seq)\n\(hash)\n\(RFC3339.format(time))\n\(formatSince)".utf8)
    }

    public var message: [UInt8] { Self.message(seq: seq, hash: hash, time: time, formatSince: formatSince) }
}

/// Signs audit checkpoints with the server's key (ECDSA P-256). Implemented in the server over the
/// key in its data directory; tests use a generated key.
public protocol AuditSigner: Sendable {
    /// The signer's public key, SPKI PEM.
    var publicKeyPEM: String { get }
    /// A DER ECDSA signature over `message` (SHA-256).
    func sign(_ message: [UInt8]) throws -> [UInt8]
}
