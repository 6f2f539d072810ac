import Crypto
import Foundation
import GRDB
import Testing

@testable import CleanRoom

/// Approvals: each way an approval can be wrong is refused with its own error, and unanimity.
@Suite struct ApprovalTests {
    struct Setup {
        let fixture: StoreFixture
        let parties: [TestParty]
        let view: CollaborationView
        var id: String { view.collaboration.id }
        var digest: String { view.collaboration.currentDigest }
        var expiry: Int64 { fixture.clock.now + 7 * 86400 }
    }

    static func setup() throws -> Setup {
        let fixture = try StoreFixture()
        let (parties, policy) = try fixture.threePartyUnion()
        let view = try fixture.store.propose(policy: policy, caller: parties[0].caller)
        return Setup(fixture: fixture, parties: parties, view: view)
    }

    static func refusal(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch let error as DomainError {
            return error.code
        } catch {
            return "\(error)"
        }
    }

    @Test func validApprovalsFromEveryPartyMakeAValidatedBundle() throws {
        let s = try Self.setup()
        #expect(Self.refusal { _ = try s.fixture.store.validatedBundle(collaborationId: s.id) } == "approval_missing")
        for party in s.parties {
            _ = try s.fixture.store.submitApproval(
                collaborationId: s.id, policyDigest: s.digest, expiresAt: s.expiry,
                signature: try party.approve(s.digest, expiresAt: s.expiry), caller: party.caller)
        }
        let bundle = try s.fixture.store.validatedBundle(collaborationId: s.id)
        #expect(bundle.approvals.map(\.partyId) == s.parties.map(\.id))
        #expect(bundle.policy.digest == s.digest)
    }

    @Test func tamperedPolicyIsRefusedAsDigestMismatch() throws {
        let s = try Self.setup()
        // The reviewer was shown a document with one field changed and signed its digest.
        var tampered = try JSONParser.parse(s.view.policy.canonical)
        tampered = tampered.setting("name", to: .string("something else"))
        let digest = PolicyDocument.digest(of: tampered)
        let party = s.parties[1]
        #expect(Self.refusal {
            _ = try s.fixture.store.submitApproval(
                collaborationId: s.id, policyDigest: digest, expiresAt: s.expiry,
                signature: try party.approve(digest, expiresAt: s.expiry), caller: party.caller)
        } == "policy_digest_mismatch")
        // And a signature over the tampered digest presented for the real digest does not verify.
        #expect(Self.refusal {
            _ = try s.fixture.store.submitApproval(
                collaborationId: s.id, policyDigest: s.digest, expiresAt: s.expiry,
                signature: try party.approve(digest, expiresAt: s.expiry), caller: party.caller)
        } == "invalid_signature")
    }

    @Test func approvalReplayedFromAnotherPolicyIsRefused() throws {
        let s = try Self.setup()
        // A second collaboration among the same parties.
        var other = try JSONParser.parse(s.view.policy.canonical)
        other = other.setting("name", to: .string("second collaboration"))
        let second = try s.fixture.store.propose(policy: other, caller: s.parties[0].caller)
        let party = s.parties[1]
        let signature = try party.approve(second.collaboration.currentDigest, expiresAt: s.expiry)
        _ = try s.fixture.store.submitApproval(
            collaborationId: second.collaboration.id, policyDigest: second.collaboration.currentDigest,
            expiresAt: s.expiry, signature: signature, caller: party.caller)
        #expect(Self.refusal {
            _ = try s.fixture.store.submitApproval(
                collaborationId: s.id, policyDigest: second.collaboration.currentDigest, expiresAt: s.expiry,
                signature: signature, caller: party.caller)
        } == "approval_for_other_policy")
    }

    @Test func signatureByAnotherKeyIsRefused() throws {
        let s = try Self.setup()
        let party = s.parties[1]
        let wrongKey = try P256.Signing.PrivateKey()
        let message = ApprovalMessage(policyDigest: s.digest, partyId: party.id, expiresAt: s.expiry)
        #expect(Self.refusal {
            _ = try s.fixture.store.submitApproval(
                collaborationId: s.id, policyDigest: s.digest, expiresAt: s.expiry,
                signature: try wrongKey.signature(for: message.bytes).derRepresentation, caller: party.caller)
        } == "invalid_signature")
        // Another party's genuine signature does not count for this party either.
        #expect(Self.refusal {
            _ = try s.fixture.store.submitApproval(
                collaborationId: s.id, policyDigest: s.digest, expiresAt: s.expiry,
                signature: try s.parties[2].approve(s.digest, expiresAt: s.expiry), caller: party.caller)
        } == "invalid_signature")
    }

    @Test func expiredApprovalIsRefusedAndStopsCountingWhenItExpires() throws {
        let s = try Self.setup()
        let party = s.parties[1]
        let past = s.fixture.clock.now - 1
        #expect(Self.refusal {
            _ = try s.fixture.store.submitApproval(
                collaborationId: s.id, policyDigest: s.digest, expiresAt: past,
                signature: try party.approve(s.digest, expiresAt: past), caller: party.caller)
        } == "approval_expired")
        let soon = s.fixture.clock.now + 60
        for party in s.parties {
            _ = try s.fixture.store.submitApproval(
                collaborationId: s.id, policyDigest: s.digest, expiresAt: soon,
                signature: try party.approve(s.digest, expiresAt: soon), caller: party.caller)
        }
        _ = try s.fixture.store.validatedBundle(collaborationId: s.id)
        s.fixture.clock.advance(61)
        #expect(Self.refusal { _ = try s.fixture.store.validatedBundle(collaborationId: s.id) } == "approval_missing")
        // The refusal says why each party's approval does not count.
        do {
            _ = try s.fixture.store.validatedBundle(collaborationId: s.id)
        } catch let error as DomainError {
            let expected = s.parties.map { "\($0.caller.partyId ?? "") (approval expired)" }.sorted()
            let named = error.message.components(separatedBy: "from: ").last?.components(separatedBy: ", ").sorted()
            #expect(named == expected, "\(error.message)")
        }
    }

    @Test func revokedApprovalNoLongerCountsAndCannotBeResubmitted() throws {
        let s = try Self.setup()
        var approvals: [Approval] = []
        var signatures: [[UInt8]] = []
        for party in s.parties {
            let signature = try party.approve(s.digest, expiresAt: s.expiry)
            signatures.append(signature)
            approvals.append(
                try s.fixture.store.submitApproval(
                    collaborationId: s.id, policyDigest: s.digest, expiresAt: s.expiry, signature: signature,
                    caller: party.caller))
        }
        // Another party cannot revoke it (it does not see it as its own).
        #expect(Self.refusal {
            _ = try s.fixture.store.revokeApproval(collaborationId: s.id, approvalId: approvals[2].id, caller: s.parties[1].caller)
        } == "not_found")
        _ = try s.fixture.store.revokeApproval(collaborationId: s.id, approvalId: approvals[2].id, caller: s.parties[2].caller)
        #expect(Self.refusal { _ = try s.fixture.store.validatedBundle(collaborationId: s.id) } == "approval_missing")
        #expect(Self.refusal {
            _ = try s.fixture.store.submitApproval(
                collaborationId: s.id, policyDigest: s.digest, expiresAt: s.expiry, signature: signatures[2],
                caller: s.parties[2].caller)
        } == "approval_revoked")
    }

    @Test func approvalOfASupersededDigestIsRefused() throws {
        let s = try Self.setup()
        let revised = try JSONParser.parse(s.view.policy.canonical).setting("description", to: .string("v2"))
        let v2 = try s.fixture.store.revisePolicy(collaborationId: s.id, policy: revised, caller: s.parties[0].caller)
        #expect(v2.supersededDigests == [s.digest])
        let party = s.parties[1]
        #expect(Self.refusal {
            _ = try s.fixture.store.submitApproval(
                collaborationId: s.id, policyDigest: s.digest, expiresAt: s.expiry,
                signature: try party.approve(s.digest, expiresAt: s.expiry), caller: party.caller)
        } == "policy_superseded")
    }

    @Test func approvalsOfAnEarlierVersionDoNotCountForTheRevision() throws {
        let s = try Self.setup()
        for party in s.parties {
            _ = try s.fixture.store.submitApproval(
                collaborationId: s.id, policyDigest: s.digest, expiresAt: s.expiry,
                signature: try party.approve(s.digest, expiresAt: s.expiry), caller: party.caller)
        }
        let revised = try JSONParser.parse(s.view.policy.canonical).setting("description", to: .string("v2"))
        _ = try s.fixture.store.revisePolicy(collaborationId: s.id, policy: revised, caller: s.parties[0].caller)
        #expect(Self.refusal { _ = try s.fixture.store.validatedBundle(collaborationId: s.id) } == "approval_missing")
    }

    @Test func approvalsLockOnceAJobStartsAndRunLimitIsEnforced() throws {
        let s = try Self.setup()
        var approvals: [Approval] = []
        for party in s.parties {
            approvals.append(
                try s.fixture.store.submitApproval(
                    collaborationId: s.id, policyDigest: s.digest, expiresAt: s.expiry,
                    signature: try party.approve(s.digest, expiresAt: s.expiry), caller: party.caller))
        }
        try s.fixture.store.pool.write { db in
            try Job(
                id: "job-1", collaborationId: s.id, policyDigest: s.digest, status: "running", error: nil,
                createdAt: s.fixture.clock.now, updatedAt: s.fixture.clock.now
            ).insert(db)
        }
        #expect(Self.refusal {
            _ = try s.fixture.store.revokeApproval(collaborationId: s.id, approvalId: approvals[0].id, caller: s.parties[0].caller)
        } == "approval_locked")
        #expect(Self.refusal { _ = try s.fixture.store.validatedBundle(collaborationId: s.id) } == "run_limit_reached")
    }

    @Test func approvalMessageIsDomainSeparated() {
        let message = ApprovalMessage(policyDigest: String(repeating: "a", count: 64), partyId: "alpha", expiresAt: 1_893_456_000)
        #expect(String(decoding: message.bytes, as: UTF8.self)
            == "cleanroom-approval-v1\n\(String(repeating: "a", count: 64))\nalpha\n2030-01-01T00:00:00Z")
    }
}
