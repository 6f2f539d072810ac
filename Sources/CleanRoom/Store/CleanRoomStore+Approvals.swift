import Foundation
import GRDB

/// The approvals of a collaboration's current policy that all verified — one per member party —
/// as handed to the enclave. Only `CleanRoomStore.validatedBundle` makes one, after checking
/// unanimity, signatures, expiry, revocation, the policy's expiry and its run limit.
public struct ValidatedApprovalBundle: Sendable {
    public let collaborationId: String
    public let policy: PolicyVersion
    public let approvals: [Approval]
}

extension CleanRoomStore {
    /// Checks a submitted approval and records it. Each way it can be wrong has its own code:
    /// `policy_superseded`, `approval_for_other_policy`, `policy_digest_mismatch` (the signer saw a
    /// different document), `approval_expired`, `invalid_signature`, `approval_revoked`, `approval_exists`.
    public func submitApproval(
        collaborationId: String, policyDigest: String, expiresAt: Int64, signature: [UInt8], caller: Caller
    ) throws -> Approval {
        let party = try caller.requireParty()
        let view = try collaboration(id: collaborationId, caller: caller)
        let signatureText = Data(signature).base64EncodedString()
        return try write { db in
            if policyDigest != view.collaboration.currentDigest {
                if view.supersededDigests.contains(policyDigest) {
                    throw DomainError(
                        .conflict, "policy_superseded",
                        "the approval names an earlier version of this collaboration's policy; the current digest is \(view.collaboration.currentDigest)")
                }
                if try PolicyVersion.fetchOne(db, key: policyDigest) != nil {
                    throw DomainError(
                        .invalidInput, "approval_for_other_policy", "the approval names the policy of another collaboration")
                }
                throw DomainError(
                    .invalidInput, "policy_digest_mismatch",
                    "the approval names digest \(policyDigest), which is not this collaboration's policy \(view.collaboration.currentDigest): the document that was signed differs")
            }
            guard expiresAt > now else {
                throw DomainError(.invalidInput, "approval_expired", "the approval expired at \(RFC3339.format(expiresAt))")
            }
            let key = try SigningPublicKey(pem: party.signingKey)
            let message = ApprovalMessage(policyDigest: policyDigest, partyId: party.id, expiresAt: expiresAt)
            guard key.isValidSignature(signature, for: message.bytes) else {
                throw DomainError(
                    .invalidInput, "invalid_signature",
                    "the signature does not verify with \(party.id)'s registered approval key over this policy, party and expiry")
            }
            if let existing = try Approval.filter(Column("signature") == signatureText).fetchOne(db) {
                if existing.revokedAt != nil {
                    throw DomainError(.conflict, "approval_revoked", "this approval was revoked and cannot be submitted again")
                }
                throw DomainError(.conflict, "approval_exists", "this approval has already been recorded")
            }
            let approval = Approval(
                id: try CryptoSupport.identifier("ap-"), collaborationId: collaborationId, policyDigest: policyDigest,
                partyId: party.id, principalId: caller.principal.id, expiresAt: expiresAt, signature: signatureText,
                createdAt: now, revokedAt: nil)
            try approval.insert(db)
            try appendAudit(
                db, actor: caller, action: "approval.submitted", collaborationId: collaborationId, subject: approval.id,
                details: .object([
                    ("policyDigest", .string(policyDigest)), ("party", .string(party.id)),
                    ("expiresAt", .string(RFC3339.format(expiresAt))),
                ]))
            return approval
        }
    }

    /// Every approval (all digests, revoked ones included) of a collaboration the caller is a member of.
    public func approvals(collaborationId: String, caller: Caller) throws -> [Approval] {
        _ = try collaboration(id: collaborationId, caller: caller)
        return try read { db in
            try Approval.filter(Column("collaborationId") == collaborationId).order(Column("createdAt"), Column("id"))
                .fetchAll(db)
        }
    }

    /// Revokes one of the caller's party's approvals; refused once a job has started on its digest.
    public func revokeApproval(collaborationId: String, approvalId: String, caller: Caller) throws -> Approval {
        let party = try caller.requireParty()
        _ = try collaboration(id: collaborationId, caller: caller)
        return try write { db in
            guard var approval = try Approval.fetchOne(db, key: approvalId), approval.collaborationId == collaborationId,
                approval.partyId == party.id
            else { throw DomainError.notFound("approval") }
            guard approval.revokedAt == nil else {
                throw DomainError(.conflict, "approval_revoked", "the approval is already revoked")
            }
            if try Job.filter(Column("collaborationId") == collaborationId && Column("policyDigest") == approval.policyDigest)
                .fetchCount(db) > 0
            {
                throw DomainError(.conflict, "approval_locked", "a job has started on this policy; its approvals can no longer be revoked")
            }
            approval.revokedAt = now
            try approval.update(db)
            try appendAudit(
                db, actor: caller, action: "approval.revoked", collaborationId: collaborationId, subject: approvalId,
                details: .object([("policyDigest", .string(approval.policyDigest))]))
            return approval
        }
    }

    /// The unanimity check (DESIGN §2.2): every member party has a valid, unexpired, unrevoked
    /// approval of the current digest, the policy has not expired and its run limit is not used up.
    /// Refusals: `approval_missing`, `policy_expired`, `run_limit_reached`.
    public func validatedBundle(collaborationId: String) throws -> ValidatedApprovalBundle {
        try read { db in try validatedBundle(db, collaborationId: collaborationId) }
    }

    /// The same check inside a caller's transaction (the job orchestrator starts a job in the same one).
    public func validatedBundle(_ db: Database, collaborationId: String) throws -> ValidatedApprovalBundle {
        guard let collaboration = try Collaboration.fetchOne(db, key: collaborationId),
            let policy = try PolicyVersion.fetchOne(db, key: collaboration.currentDigest)
        else { throw DomainError.notFound("collaboration") }
        let document = try PolicyDocument(bytes: Array(policy.canonical.utf8))
        if let expiry = document.expiresAt, expiry <= now {
            throw DomainError(.conflict, "policy_expired", "the policy expired at \(RFC3339.format(expiry))")
        }
        let runs = try Job.filter(Column("collaborationId") == collaborationId && Column("policyDigest") == policy.digest)
            .fetchCount(db)
        if runs >= document.maxRuns {
            throw DomainError(.conflict, "run_limit_reached", "the policy allows \(document.maxRuns) run(s) and \(runs) have started")
        }
        let candidates = try Approval.filter(
            Column("collaborationId") == collaborationId && Column("policyDigest") == policy.digest
                && Column("revokedAt") == nil && Column("expiresAt") > now
        ).order(Column("createdAt").desc).fetchAll(db)
        var chosen: [Approval] = []
        var missing: [String] = []
        for partyId in document.partyIds {
            guard let party = try Party.fetchOne(db, key: partyId), let key = try? SigningPublicKey(pem: party.signingKey) else {
                missing.append("\(partyId) (not registered)")
                continue
            }
            let valid = candidates.first { approval in
                guard approval.partyId == partyId, let signature = Data(base64Encoded: approval.signature) else { return false }
                let message = ApprovalMessage(policyDigest: policy.digest, partyId: partyId, expiresAt: approval.expiresAt)
                return key.isValidSignature(Array(signature), for: message.bytes)
            }
            if let valid {
                chosen.append(valid)
            } else {
                missing.append("\(partyId) (\(try Self.whyNoValidApproval(db, collaborationId, policy.digest, partyId, now: now)))")
            }
        }
        guard missing.isEmpty else {
            throw DomainError(
                .conflict, "approval_missing",
                "no valid approval of the current policy from: \(missing.joined(separator: ", "))")
        }
        return ValidatedApprovalBundle(collaborationId: collaborationId, policy: policy, approvals: chosen)
    }

    /// Why a party has no valid approval of `digest`, for the refusal message.
    private static func whyNoValidApproval(
        _ db: Database, _ collaborationId: String, _ digest: String, _ partyId: String, now: Int64
    ) throws -> String {
        let approvals = try Approval.filter(
            Column("collaborationId") == collaborationId && Column("policyDigest") == digest && Column("partyId") == partyId
        ).fetchAll(db)
        if approvals.isEmpty { return "not approved" }
        if approvals.allSatisfy({ $0.revokedAt != nil }) { return "approval revoked" }
        if approvals.allSatisfy({ $0.revokedAt != nil || $0.expiresAt <= now }) { return "approval expired" }
        return "the approval does not verify with the party's registered key"
    }
}
