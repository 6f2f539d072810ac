import Crypto
import Foundation
import GRDB
import Testing

@testable import CleanRoom

/// The hash-chained audit log: tampering with the SQLite rows is detected.
@Suite struct AuditTests {
    /// A store with some history: registrations, datasets, a proposal and approvals.
    static func history() throws -> (StoreFixture, String) {
        let fixture = try StoreFixture(checkpointInterval: 4)
        let (parties, policy) = try fixture.threePartyUnion()
        let view = try fixture.store.propose(policy: policy, caller: parties[0].caller)
        let expiry = fixture.clock.now + 86400
        for party in parties {
            fixture.clock.advance(1)
            _ = try fixture.store.submitApproval(
                collaborationId: view.collaboration.id, policyDigest: view.collaboration.currentDigest, expiresAt: expiry,
                signature: try party.approve(view.collaboration.currentDigest, expiresAt: expiry), caller: party.caller)
        }
        try fixture.store.checkpoint()
        return (fixture, view.collaboration.id)
    }

    /// The code a verification fails with, or nil when it passes.
    static func failureCode(_ verification: () throws -> AuditVerifier.Report) -> AuditVerifier.Failure.Code? {
        do {
            _ = try verification()
            return nil
        } catch let failure as AuditVerifier.Failure {
            return failure.code
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    static func verify(_ fixture: StoreFixture) -> AuditVerifier.Failure.Code? {
        failureCode { try fixture.store.verifyAuditLog(publicKeyPEM: fixture.signer.publicKeyPEM) }
    }

    /// Tampers through a separate SQLite connection, as someone with the database file would.
    static func tamper(_ fixture: StoreFixture, _ sql: String) throws {
        let queue = try DatabaseQueue(path: fixture.path)
        try queue.write { db in try db.execute(sql: sql) }
    }

    @Test func untouchedLogVerifiesWithEveryStateChangeRecorded() throws {
        let (fixture, _) = try Self.history()
        let report = try fixture.store.verifyAuditLog(publicKeyPEM: fixture.signer.publicKeyPEM)
        let actions = try fixture.store.auditEntries().map(\.action)
        #expect(report.entries == actions.count)
        #expect(report.signedThrough == Int64(actions.count))
        for action in ["operator.created", "enrollment.issued", "party.registered", "dataset.created", "dataset.uploaded",
                       "policy.proposed", "approval.submitted"] {
            #expect(actions.contains(action), "\(action) is audited")
        }
    }

    @Test func editedEntryIsDetected() throws {
        let (fixture, _) = try Self.history()
        try Self.tamper(fixture, "UPDATE auditEntry SET actor = 'someone-else' WHERE seq = 5")
        #expect(Self.verify(fixture) == .entryEdited)
    }

    @Test func editedEntryWithRecomputedHashBreaksTheChain() throws {
        let (fixture, _) = try Self.history()
        let entries = try fixture.store.auditEntries()
        var edited = entries[4]
        edited.details = #"{"forged":true}"#
        edited.hash = edited.computedHash
        try Self.tamper(fixture, "UPDATE auditEntry SET details = '\(edited.details)', hash = '\(edited.hash)' WHERE seq = 5")
        #expect(Self.verify(fixture) == .chainBroken)
    }

    @Test func deletedEntryIsDetected() throws {
        let (fixture, _) = try Self.history()
        try Self.tamper(fixture, "DELETE FROM auditEntry WHERE seq = 3")
        #expect(Self.verify(fixture) == .entryMissing)
    }

    @Test func truncatedTailIsDetectedByTheSignedCheckpoint() throws {
        let (fixture, _) = try Self.history()
        let last = try #require(try fixture.store.auditEntries().last?.seq)
        try Self.tamper(fixture, "DELETE FROM auditEntry WHERE seq >= \(last - 1)")
        #expect(Self.verify(fixture) == .checkpointBeyondChain)
    }

    @Test func reorderedEntriesAreDetected() throws {
        let (fixture, _) = try Self.history()
        // Swap the positions of entries 3 and 4.
        try Self.tamper(fixture, """
            UPDATE auditEntry SET seq = -3 WHERE seq = 3;
            UPDATE auditEntry SET seq = 3 WHERE seq = 4;
            UPDATE auditEntry SET seq = 4 WHERE seq = -3;
            """)
        #expect(Self.verify(fixture) != nil)
        // Swapping whole rows' contents but keeping their sequence numbers too.
        let (fixture2, _) = try Self.history()
        try Self.tamper(fixture2, """
            UPDATE auditEntry SET action = (SELECT action FROM auditEntry WHERE seq = 7) WHERE seq = 6;
            """)
        #expect(Self.verify(fixture2) == .entryEdited)
    }

    @Test func rewrittenChainIsCaughtByCheckpointSignatures() throws {
        let (fixture, _) = try Self.history()
        // Recompute every hash after editing entry 2: links are consistent again, checkpoints are not.
        var entries = try fixture.store.auditEntries()
        entries[1].actor = "forged"
        var previous = AuditEntry.genesisHash
        for i in entries.indices {
            entries[i].prevHash = previous
            entries[i].hash = entries[i].computedHash
            previous = entries[i].hash
        }
        let queue = try DatabaseQueue(path: fixture.path)
        try queue.write { db in
            for entry in entries { try entry.update(db) }
        }
        #expect(Self.verify(fixture) == .checkpointMismatch)
        // A forged checkpoint signature is refused too.
        try Self.tamper(fixture, "UPDATE auditCheckpoint SET hash = (SELECT hash FROM auditEntry WHERE seq = auditCheckpoint.seq)")
        #expect(Self.verify(fixture) == .checkpointInvalid)
    }

    @Test func memberProofVerifiesAndHidesOtherCollaborationsEntries() throws {
        let (fixture, collaborationId) = try Self.history()
        let parties = try fixture.store.parties()
        let member = Caller(
            principal: try fixture.store.principals(partyId: parties[0].id)[0], party: parties[0])
        let proof = try fixture.store.auditProof(collaborationId: collaborationId, caller: member)
        #expect(proof.entries.allSatisfy { $0.collaborationId == collaborationId })
        #expect(proof.entries.count == 4)  // the proposal and three approvals
        #expect(proof.chain.count == (try fixture.store.auditEntries().count))
        let report = try proof.verify(publicKeyPEM: fixture.signer.publicKeyPEM, collaborationId: collaborationId)
        #expect(report.signedThrough == Int64(proof.chain.count))
        // A proof whose entry was altered in transit fails.
        var altered = proof
        altered.entries[0].subject = "other"
        #expect(throws: AuditVerifier.Failure.self) { try altered.verify(publicKeyPEM: fixture.signer.publicKeyPEM, collaborationId: collaborationId) }
        // A proof checked against another key fails.
        let otherKey = try P256.Signing.PrivateKey().publicKey.pemRepresentation
        #expect(throws: AuditVerifier.Failure.self) { try proof.verify(publicKeyPEM: otherKey, collaborationId: collaborationId) }
    }

    /// A member's proof of `collaborationId` from the first party.
    static func proof(_ fixture: StoreFixture, _ collaborationId: String) throws -> AuditProof {
        let party = try fixture.store.parties()[0]
        let member = Caller(principal: try fixture.store.principals(partyId: party.id)[0], party: party)
        return try fixture.store.auditProof(collaborationId: collaborationId, caller: member)
    }

    static func failure(_ proof: AuditProof, _ fixture: StoreFixture, _ collaborationId: String) -> AuditVerifier.Failure.Code? {
        failureCode { try proof.verify(publicKeyPEM: fixture.signer.publicKeyPEM, collaborationId: collaborationId) }
    }

    /// DESIGN §2.7: a server that hands a party its proof cannot leave out one of the party's own
    /// entries (say a key release or a download) by showing it as someone else's link.
    @Test func aWithheldEntryOfTheCollaborationIsDetected() throws {
        let (fixture, collaborationId) = try Self.history()
        let proof = try Self.proof(fixture, collaborationId)
        #expect(Self.failure(proof, fixture, collaborationId) == nil)
        #expect(proof.chain.allSatisfy { $0.tag != nil && $0.content != nil })

        // Each of the collaboration's entries, left out in turn (its link stays: the chain is whole).
        for index in proof.entries.indices {
            var withheld = proof
            let seq = withheld.entries.remove(at: index).seq
            #expect(Self.failure(withheld, fixture, collaborationId) == .entryWithheld, "entry \(seq)")
            // Shown as a format-1 link, without its tag: refused, since every entry is format 2.
            let position = try #require(withheld.chain.firstIndex { $0.seq == seq })
            var bare = withheld
            bare.chain[position].tag = nil
            bare.chain[position].content = nil
            #expect(Self.failure(bare, fixture, collaborationId) == .linkIncomplete, "entry \(seq)")
            // With another tag: its hash no longer matches.
            var retagged = withheld
            retagged.chain[position].tag = AuditEntry.tag(collaborationId: "col-other", seq: seq)
            #expect(Self.failure(retagged, fixture, collaborationId) == .entryEdited, "entry \(seq)")
        }
        // Leaving out the checkpoint of the head (to make format 2 look unsigned) is refused.
        var unsigned = proof
        unsigned.checkpoints.removeAll { $0.seq == proof.chain.last?.seq }
        #expect(Self.failure(unsigned, fixture, collaborationId) == .noCheckpoint)
        // Checked as another collaboration's proof, it shows nothing of that one withheld.
        #expect(Self.failure(proof, fixture, "col-other") == nil)
    }

    /// Tags tell a member its own entries and nothing about anyone else's: no two links share one.
    @Test func tagsOfOtherEntriesLookUnrelated() throws {
        let (fixture, collaborationId) = try Self.history()
        let proof = try Self.proof(fixture, collaborationId)
        let tags = proof.chain.compactMap(\.tag)
        #expect(Set(tags).count == proof.chain.count)
        let shown = Set(proof.entries.map(\.seq))
        for link in proof.chain where !shown.contains(link.seq) {
            #expect(link.tag != AuditEntry.tag(collaborationId: collaborationId, seq: link.seq))
        }
    }

    /// A log written before format 2 keeps verifying, and continues in format 2: from the first
    /// format-2 entry (which the checkpoints sign) every link must show its tag.
    @Test func aFormatOneLogStillVerifiesAndContinuesInFormatTwo() throws {
        let (fixture, collaborationId) = try Self.history()
        // Rewrite the log as the earlier code wrote it: format 1 entries, checkpoints without formatSince.
        let queue = try DatabaseQueue(path: fixture.path)
        try queue.write { db in
            var previous = AuditEntry.genesisHash
            for var entry in try AuditEntry.order(Column("seq")).fetchAll(db) {
                entry.format = nil
                entry.prevHash = previous
                entry.hash = entry.computedHash
                previous = entry.hash
                try entry.update(db)
            }
            for var checkpoint in try AuditCheckpoint.fetchAll(db) {
                checkpoint.hash = try String.fetchOne(db, sql: "SELECT hash FROM auditEntry WHERE seq = ?", arguments: [checkpoint.seq])!
                checkpoint.formatSince = nil
                checkpoint.signature = Data(try fixture.signer.sign(checkpoint.message)).base64EncodedString()
                try checkpoint.update(db)
            }
        }
        let legacyCount = try fixture.store.auditEntries().count
        #expect(Self.verify(fixture) == nil)
        // The current code appends format-2 entries after them.
        try fixture.store.write { db in
            for _ in 0..<3 { try fixture.store.appendAudit(db, actor: nil, action: "test.event", collaborationId: collaborationId) }
        }
        #expect(Self.verify(fixture) == nil)
        let proof = try Self.proof(fixture, collaborationId)
        #expect(Self.failure(proof, fixture, collaborationId) == nil)
        #expect(proof.checkpoints.last?.formatSince == Int64(legacyCount + 1))
        #expect(proof.chain.filter { $0.tag == nil }.count == legacyCount)
        // A format-2 entry of the collaboration withheld and shown as a format-1 link: refused.
        var downgraded = proof
        let seq = Int64(legacyCount + 2)
        downgraded.entries.removeAll { $0.seq == seq }
        let position = try #require(downgraded.chain.firstIndex { $0.seq == seq })
        downgraded.chain[position].tag = nil
        downgraded.chain[position].content = nil
        #expect(Self.failure(downgraded, fixture, collaborationId) == .linkIncomplete)
        // In the stored log, an entry flipped back to format 1 no longer matches its hash.
        try Self.tamper(fixture, "UPDATE auditEntry SET format = NULL WHERE seq = \(seq)")
        #expect(Self.verify(fixture) == .entryEdited)
    }
}
