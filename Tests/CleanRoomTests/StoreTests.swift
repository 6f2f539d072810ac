import Crypto
import Foundation
import GRDB
import Testing

@testable import CleanRoom

/// The store: migrations, WAL, registration and credentials, datasets and uploads, collaborations.
@Suite struct StoreTests {
    @Test func opensInWALModeWithMigrationsRegisteredByStringIdentifier() throws {
        let fixture = try StoreFixture()
        let mode = try fixture.store.pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(mode == "wal")
        // Every commit is synced (FULL = 2), not only checkpoints as WAL's usual NORMAL (= 1) does.
        #expect(try fixture.store.pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } == 2)
        #expect(try fixture.store.appliedMigrations() == ["2026-11-21-01-governance", "2026-11-21-02-audit-collaboration-tags", "2026-11-22-01-webhooks"])
        // Reopening applies nothing new and keeps the data.
        let reopened = try CleanRoomStore(path: fixture.path)
        #expect(try reopened.parties().isEmpty)
        #expect(try reopened.appliedMigrations() == ["2026-11-21-01-governance", "2026-11-21-02-audit-collaboration-tags", "2026-11-22-01-webhooks"])
    }

    @Test func additionalMigrationsAreAppendedAfterOurs() throws {
        let fixture = try StoreFixture()
        var configuration = CleanRoomStore.Configuration()
        configuration.additionalMigrations = [("2026-11-21-50-extra", { db in try db.execute(sql: "CREATE TABLE extra(x)") })]
        let store = try CleanRoomStore(path: fixture.path, configuration: configuration)
        #expect(try store.appliedMigrations() == ["2026-11-21-01-governance", "2026-11-21-02-audit-collaboration-tags", "2026-11-22-01-webhooks", "2026-11-21-50-extra"])
    }

    @Test func registrationConsumesTheTokenAndReturnsSecretsOnce() throws {
        let fixture = try StoreFixture()
        let key = try P256.Signing.PrivateKey()
        let (token, record) = try fixture.store.createEnrollmentToken(caller: fixture.operatorCaller, lifetime: 3600)
        #expect(record.expiresAt == fixture.clock.now + 3600)
        let registration = try fixture.store.register(
            enrollmentToken: token, name: "St Mary's Hospital", signingKeyPEM: try key.publicKey.pemRepresentation,
            resultKeyPEM: TestKeys.resultKeyPEM)
        #expect(registration.party.id == "st-mary-s-hospital")
        #expect(registration.principal.roles == Role.partyRoles)
        #expect(registration.credential.hasPrefix("crs_"))
        #expect(registration.party.signingKeyFingerprint == Hex.encode(SHA256.hash(try key.publicKey.derRepresentation)))
        // The credential authenticates; the database holds only its hash.
        let caller = try #require(try fixture.store.authenticate(bearer: registration.credential))
        #expect(caller.partyId == registration.party.id)
        let stored = try fixture.store.pool.read { db in try String.fetchAll(db, sql: "SELECT secretHash FROM credential") }
        #expect(!stored.contains(registration.credential))
        #expect(stored.contains(Hex.encode(SHA256.hash(Array(registration.credential.utf8)))))
        let dump = try fixture.store.pool.read { db in
            try String.fetchAll(db, sql: "SELECT tokenHash FROM enrollmentToken")
        }
        #expect(!dump.contains(token))
        // Single use.
        #expect {
            try fixture.store.register(
                enrollmentToken: token, name: "Other", signingKeyPEM: try key.publicKey.pemRepresentation,
                resultKeyPEM: TestKeys.resultKeyPEM)
        } throws: { ($0 as? DomainError)?.code == "enrollment_token_used" }
        #expect(try fixture.store.authenticate(bearer: "crs_unknown") == nil)
        #expect(try fixture.store.accessKeySecret(id: registration.accessKeyId)?.secret == registration.accessKeySecret)
    }

    @Test func expiredEnrollmentTokenIsRefusedAndChangesNothing() throws {
        let fixture = try StoreFixture()
        let key = try P256.Signing.PrivateKey()
        let (token, _) = try fixture.store.createEnrollmentToken(caller: fixture.operatorCaller, lifetime: 60)
        fixture.clock.advance(61)
        #expect {
            try fixture.store.register(
                enrollmentToken: token, name: "Late", signingKeyPEM: try key.publicKey.pemRepresentation,
                resultKeyPEM: TestKeys.resultKeyPEM)
        } throws: { ($0 as? DomainError)?.code == "enrollment_token_expired" }
        #expect(try fixture.store.parties().isEmpty)
    }

    @Test func registrationChecksKeyTypesAndSizes() throws {
        let fixture = try StoreFixture()
        let ecKey = try P256.Signing.PrivateKey()
        let (token, _) = try fixture.store.createEnrollmentToken(caller: fixture.operatorCaller)
        let p384 = try P384.Signing.PrivateKey().publicKey.pemRepresentation
        #expect {
            try fixture.store.register(
                enrollmentToken: token, name: "X", signingKeyPEM: p384, resultKeyPEM: TestKeys.resultKeyPEM)
        } throws: { ($0 as? DomainError)?.code == "invalid_signing_key" }
        #expect {
            try fixture.store.register(
                enrollmentToken: token, name: "X", signingKeyPEM: try ecKey.publicKey.pemRepresentation,
                resultKeyPEM: TestKeys.smallRSAKeyPEM)
        } throws: { ($0 as? DomainError)?.code == "result_key_too_small" }
        #expect {
            try fixture.store.register(
                enrollmentToken: token, name: "X", signingKeyPEM: try ecKey.publicKey.pemRepresentation,
                resultKeyPEM: try ecKey.publicKey.pemRepresentation)
        } throws: { ($0 as? DomainError)?.code == "invalid_result_key" }
        // The token was not consumed by the failed attempts.
        #expect(try fixture.store.isValidEnrollmentToken(token))
    }

    @Test func principalsRotationAndRevocation() throws {
        let fixture = try StoreFixture()
        let alpha = try fixture.register("Alpha")
        let beta = try fixture.register("Beta")
        let (reviewer, secret) = try fixture.store.createPrincipal(
            partyId: alpha.id, name: "rev", roles: [.reviewer], caller: alpha.caller)
        #expect(try fixture.store.authenticate(bearer: secret)?.roles == [.reviewer])
        // Other parties' principals are invisible.
        #expect { try fixture.store.revokePrincipal(partyId: alpha.id, principalId: reviewer.id, caller: beta.caller) }
            throws: { ($0 as? DomainError)?.kind == .notFound }
        #expect { try fixture.store.rotateCredential(principalId: reviewer.id, caller: beta.caller) }
            throws: { ($0 as? DomainError)?.kind == .notFound }
        let rotated = try fixture.store.rotateCredential(principalId: reviewer.id, caller: alpha.caller)
        #expect(try fixture.store.authenticate(bearer: secret) == nil)
        #expect(try fixture.store.authenticate(bearer: rotated) != nil)
        _ = try fixture.store.revokePrincipal(partyId: alpha.id, principalId: reviewer.id, caller: alpha.caller)
        #expect(try fixture.store.authenticate(bearer: rotated) == nil)
        #expect {
            try fixture.store.createPrincipal(partyId: alpha.id, name: "x", roles: [.admin], caller: alpha.caller)
        } throws: { ($0 as? DomainError)?.code == "invalid_roles" }
    }

    @Test func uploadBecomesVisibleOnlyWhenCompleteAndCrashLeftoversAreListed() throws {
        let fixture = try StoreFixture()
        let alpha = try fixture.register("Alpha")
        let beta = try fixture.register("Beta")
        let dataset = try fixture.store.createDataset(
            name: "d", columns: [DatasetColumn(name: "a", type: .integer)], caller: alpha.caller)
        #expect { try fixture.store.dataset(id: dataset.id, caller: beta.caller) } throws: {
            ($0 as? DomainError)?.kind == .notFound
        }
        let first = try fixture.store.beginUpload(datasetId: dataset.id, caller: alpha.caller)
        // A crash here leaves the pending upload and an unchanged dataset.
        #expect(try fixture.store.pendingUploads() == [first])
        #expect(try fixture.store.dataset(id: dataset.id, caller: alpha.caller).status == .created)
        #expect(try fixture.store.dataset(id: dataset.id, caller: alpha.caller).sha256 == nil)
        // A second upload (a retry, or one sent at the same time) may complete first; the other, if
        // it was still running, then fails as already uploaded, and its pending record stays until it
        // deletes its object or the next start does (a crash review found the first one's record
        // dropped, so a crash orphaned its object).
        let second = try fixture.store.beginUpload(datasetId: dataset.id, caller: alpha.caller)
        func complete(_ upload: PendingUpload) throws -> Dataset {
            try fixture.store.completeUpload(
                upload,
                result: CompletedUpload(
                    objectKey: upload.objectKey, objectVersion: "1", size: 10, sha256: String(repeating: "a", count: 64),
                    suite: 0x0478, encryptionContext: [:]),
                caller: alpha.caller)
        }
        #expect(try complete(second).status == .available)
        #expect(try fixture.store.pendingUploads() == [first])
        #expect { try complete(first) } throws: { ($0 as? DomainError)?.code == "dataset_already_uploaded" }
        try fixture.store.abortUpload(first)
        #expect(try fixture.store.pendingUploads().isEmpty)
        #expect { try fixture.store.beginUpload(datasetId: dataset.id, caller: alpha.caller) } throws: {
            ($0 as? DomainError)?.code == "dataset_already_uploaded"
        }
    }

    @Test func proposalIsFilledFromRecordsAndVisibleToMembersOnly() throws {
        let fixture = try StoreFixture()
        let (parties, policy) = try fixture.threePartyUnion()
        let outsider = try fixture.register("Outsider")
        let view = try fixture.store.propose(policy: policy, caller: parties[0].caller)
        let document = try PolicyDocument(bytes: Array(view.policy.canonical.utf8))
        #expect(document.digest == view.collaboration.currentDigest)
        #expect(view.members == parties.map(\.id).sorted())
        let filled = try #require(document.json["datasets"]?.arrayValue?.first)
        #expect(filled["sha256"]?.stringValue?.count == 64)
        #expect(filled["objectVersion"]?.stringValue == "v1")
        #expect(document.json["parties"]?.arrayValue?.first?["signingKey"]?.stringValue?.hasPrefix("-----BEGIN PUBLIC KEY") == true)
        for party in parties { #expect(try fixture.store.collaboration(id: view.collaboration.id, caller: party.caller).policy == view.policy) }
        #expect { try fixture.store.collaboration(id: view.collaboration.id, caller: outsider.caller) } throws: {
            ($0 as? DomainError)?.kind == .notFound
        }
        #expect(try fixture.store.collaborations(caller: outsider.caller).isEmpty)
        // The outsider cannot propose a policy it is not part of.
        #expect { try fixture.store.propose(policy: policy, caller: outsider.caller) } throws: {
            ($0 as? DomainError)?.code == "proposer_not_member"
        }
    }

    @Test func proposalRefusesMismatchedRecordsNamingTheField() throws {
        let fixture = try StoreFixture()
        let (parties, policy) = try fixture.threePartyUnion()
        let datasets = policy["datasets"]!.arrayValue!
        let wrongDigest = policy.setting(
            "datasets", to: .array([datasets[0].setting("sha256", to: .string(String(repeating: "0", count: 64)))] + datasets.dropFirst()))
        #expect { try fixture.store.propose(policy: wrongDigest, caller: parties[0].caller) } throws: { error in
            let error = error as? DomainError
            return error?.code == "dataset_record_mismatch" && error?.details.first?.field == "datasets[0].sha256"
        }
        let wrongOwner = policy.setting(
            "datasets", to: .array([datasets[0].setting("owner", to: .string(parties[1].id))] + datasets.dropFirst()))
        #expect { try fixture.store.propose(policy: wrongOwner, caller: parties[0].caller) } throws: { error in
            (error as? DomainError)?.details.first?.field == "datasets[0].id"
        }
        #expect(try fixture.store.collaborations(caller: parties[0].caller).isEmpty)
    }
}

@Suite struct RoleChangeTests {
    @Test func partyAdminsChangeRolesButTheLastPartyAdminStays() throws {
        let fixture = try StoreFixture()
        let alpha = try fixture.register("Alpha")
        let (reviewer, secret) = try fixture.store.createPrincipal(
            partyId: alpha.id, name: "rev", roles: [.reviewer], caller: alpha.caller)
        let changed = try fixture.store.setRoles(
            partyId: alpha.id, principalId: reviewer.id, roles: [.owner, .partner], caller: alpha.caller)
        #expect(changed.roles == [.owner, .partner])
        #expect(try fixture.store.authenticate(bearer: secret)?.roles == [.owner, .partner])
        #expect {
            try fixture.store.setRoles(
                partyId: alpha.id, principalId: alpha.registration.principal.id, roles: [.owner], caller: alpha.caller)
        } throws: { ($0 as? DomainError)?.code == "last_party_admin" }
        let beta = try fixture.register("Beta")
        #expect {
            try fixture.store.setRoles(partyId: alpha.id, principalId: reviewer.id, roles: [.owner], caller: beta.caller)
        } throws: { ($0 as? DomainError)?.kind == .notFound }
        #expect(try fixture.store.auditEntries().contains { $0.action == "principal.roles_changed" })
    }
}
