import Foundation
import GRDB

/// What a party receives to verify a collaboration's audit trail offline: its collaboration's
/// entries in full, every link of the chain up to a signed head (other entries reduced to their
/// links), the signed checkpoints, and the public key that signed them.
public struct AuditProof: Codable, Sendable, Equatable {
    public var entries: [AuditEntry]
    public var chain: [AuditVerifier.Link]
    public var checkpoints: [AuditCheckpoint]
    public var publicKey: String?

    /// Verifies the proof of `collaborationId`: every full entry matches its hash and its link, the
    /// chain is whole up to a signed head, every checkpoint is signed by `publicKeyPEM` (which the
    /// caller should pin), and no link that bears the collaboration's tag was withheld.
    public func verify(publicKeyPEM: String, collaborationId: String) throws -> AuditVerifier.Report {
        let verifier = try AuditVerifier(publicKeyPEM: publicKeyPEM)
        let links = Dictionary(chain.map { ($0.seq, $0) }, uniquingKeysWith: { a, _ in a })
        for entry in entries {
            guard entry.computedHash == entry.hash else {
                throw AuditVerifier.Failure(code: .entryEdited, seq: entry.seq, message: "the entry's content does not match its hash")
            }
            guard let link = links[entry.seq], link.hash == entry.hash, link.prevHash == entry.prevHash else {
                throw AuditVerifier.Failure(code: .chainBroken, seq: entry.seq, message: "the entry is not the one in the chain")
            }
        }
        let report = try verifier.verify(links: chain, checkpoints: checkpoints, requireSignedHead: true)
        let shown = Set(entries.map(\.seq))
        if let withheld = chain.first(where: {
            !shown.contains($0.seq) && $0.tag == AuditEntry.tag(collaborationId: collaborationId, seq: $0.seq)
        }) {
            throw AuditVerifier.Failure(
                code: .entryWithheld, seq: withheld.seq,
                message: "an entry of this collaboration is shown only as a link: the server withheld it")
        }
        return report
    }
}

extension CleanRoomStore {
    /// Appends an audit entry inside the caller's write transaction, signing a checkpoint when due.
    public func appendAudit(
        _ db: Database, actor: Caller?, action: String, collaborationId: String? = nil, subject: String? = nil,
        details: JSONValue = .object([])
    ) throws {
        let last = try AuditEntry.order(Column("seq").desc).fetchOne(db)
        var entry = AuditEntry(
            seq: (last?.seq ?? 0) + 1, time: now, actor: actor?.principal.id ?? "system",
            actorPartyId: actor?.partyId, action: action, collaborationId: collaborationId, subject: subject,
            details: CanonicalJSON.string(details), prevHash: last?.hash ?? AuditEntry.genesisHash, hash: "",
            format: AuditEntry.currentFormat)
        entry.hash = entry.computedHash
        try entry.insert(db)
        if configuration.auditSigner != nil, entry.seq % configuration.checkpointInterval == 0 {
            try signCheckpoint(db, head: entry)
        }
    }

    private func signCheckpoint(_ db: Database, head: AuditEntry) throws {
        guard let signer = configuration.auditSigner else { return }
        let time = now
        let formatSince = try Int64.fetchOne(db, sql: "SELECT MIN(seq) FROM auditEntry WHERE format = ?", arguments: [AuditEntry.currentFormat])
        let signature = try signer.sign(AuditCheckpoint.message(seq: head.seq, hash: head.hash, time: time, formatSince: formatSince))
        let key = try SigningPublicKey(pem: signer.publicKeyPEM)
        try AuditCheckpoint(
            seq: head.seq, hash: head.hash, time: time, signature: Data(signature).base64EncodedString(),
            keyFingerprint: key.fingerprint, formatSince: formatSince
        ).insert(db, onConflict: .ignore)
    }

    /// Signs a checkpoint over the current head of the log (if not already signed). Called
    /// periodically and at shutdown by the server, and before handing out a proof.
    @discardableResult
    public func checkpoint() throws -> AuditCheckpoint? {
        try write { db in
            guard let head = try AuditEntry.order(Column("seq").desc).fetchOne(db) else { return nil }
            if let existing = try AuditCheckpoint.fetchOne(db, key: head.seq) { return existing }
            try signCheckpoint(db, head: head)
            return try AuditCheckpoint.fetchOne(db, key: head.seq)
        }
    }

    /// The whole log in sequence order (operator only).
    public func auditEntries() throws -> [AuditEntry] {
        try read { db in try AuditEntry.order(Column("seq")).fetchAll(db) }
    }

    /// All signed checkpoints in sequence order.
    public func auditCheckpoints() throws -> [AuditCheckpoint] {
        try read { db in try AuditCheckpoint.order(Column("seq")).fetchAll(db) }
    }

    /// The audit proof for one collaboration, for a member party (404 otherwise).
    public func auditProof(collaborationId: String, caller: Caller) throws -> AuditProof {
        _ = try collaboration(id: collaborationId, caller: caller)
        // Up to the head just signed: entries appended meanwhile wait for the next proof.
        let head = try checkpoint()?.seq ?? 0
        return try read { db in
            let all = try AuditEntry.filter(Column("seq") <= head).order(Column("seq")).fetchAll(db)
            let entries = all.filter { $0.collaborationId == collaborationId }
            let links = all.map(\.link)
            let checkpoints = try AuditCheckpoint.filter(Column("seq") <= head).order(Column("seq")).fetchAll(db)
            return AuditProof(
                entries: entries, chain: links, checkpoints: checkpoints,
                publicKey: configuration.auditSigner?.publicKeyPEM)
        }
    }

    /// Verifies the whole stored log against the audit key (what `cleanroomd audit verify` runs),
    /// reading it one entry at a time.
    public func verifyAuditLog(publicKeyPEM: String) throws -> AuditVerifier.Report {
        let verifier = try AuditVerifier(publicKeyPEM: publicKeyPEM)
        return try read { db in try Self.verifyAuditLog(db, with: verifier) }
    }

    /// Verifies the log of `db` with `verifier`, walking the entries with a cursor in sequence order.
    public static func verifyAuditLog(_ db: Database, with verifier: AuditVerifier) throws -> AuditVerifier.Report {
        let checkpoints = try AuditCheckpoint.fetchAll(db)
        let entries = try AuditEntry.order(Column("seq")).fetchCursor(db)
        return try verifier.verify(nextEntry: { try entries.next() }, checkpoints: checkpoints)
    }
}

extension CleanRoomStore {
    /// The public key (SPKI PEM) that signs audit checkpoints, if the store has a signer.
    public var auditPublicKey: String? { configuration.auditSigner?.publicKeyPEM }
}
