import CleanRoom
import Crypto
import Enclave
import Foundation
import GRDB

/// Persistence of jobs and their outputs over the domain store's `job` and `output` tables, with
/// every state change appended to the audit chain in the same transaction.
///
/// `startJob` is the unanimity gate of DESIGN §2.2: it refuses — with a precise code — unless
/// every member party has a valid, unrevoked approval of the current digest, the policy has not
/// expired, its run limit is not used up (all checked by `CleanRoomStore.validatedBundle` inside
/// the same write transaction that records the job, so two concurrent starts cannot both pass),
/// and every dataset is still available with the ciphertext the policy names.
public struct JobStore: Sendable {
    public let store: CleanRoomStore

    public init(store: CleanRoomStore) {
        self.store = store
    }

    /// Records a new job (state `pending`) and returns what the runner needs.
    public func startJob(collaborationId: String, caller: Caller, expectedDigest: String? = nil) throws -> JobPlan {
        guard let partyId = caller.partyId, try store.isMember(partyId: partyId, collaborationId: collaborationId) else {
            throw DomainError(.notFound, "not_found", "no such collaboration")
        }
        return try store.pool.write { db in
            // A start pinned to a digest is about that policy: whether it is still the current one
            // comes before anything about the current one's approvals.
            if let expectedDigest, let current = try Collaboration.fetchOne(db, key: collaborationId)?.currentDigest,
                expectedDigest.lowercased() != current
            {
                throw DomainError(
                    .conflict, "policy_changed",
                    "the collaboration's current policy is \(current), not \(expectedDigest): review it before starting a job")
            }
            let bundle = try store.validatedBundle(db, collaborationId: collaborationId)
            // A suspended party cannot act on the job (watch, cancel, download), so none runs on its data or for it.
            for member in bundle.approvals.map(\.partyId) {
                if let party = try Party.fetchOne(db, key: member), party.status == .suspended {
                    throw DomainError(
                        .conflict, "member_suspended",
                        "party \(member) is suspended, so no job uses its data or delivers to it: ask the operator why, or propose a policy without it")
                }
            }
            // Another run of the same policy on the same data can only repeat the one under way
            // (training is seeded), and would use up a run: a double-clicked start is refused. (A job
            // of an earlier version is another policy's, which the caller may not even see.)
            if let running = try Job.filter(
                Column("collaborationId") == collaborationId && Column("policyDigest") == bundle.policy.digest
                    && Self.openStates.contains(Column("status"))
            ).fetchOne(db) {
                throw DomainError(
                    .conflict, "job_in_progress",
                    "job \(running.id) of this collaboration is still \(running.status): watch it (cleanroom job watch \(running.id)) or cancel it before starting another")
            }
            let policyBytes = Array(bundle.policy.canonical.utf8)
            let policy: JobPolicy
            do {
                policy = try JobPolicy(bytes: policyBytes)
            } catch let error as EnclaveError {
                throw DomainError(.conflict, "policy_unrunnable", error.message)
            }
            var datasets: [JobPlan.Dataset] = []
            for declared in policy.datasets {
                guard let record = try Dataset.fetchOne(db, key: declared.id), record.status == .available,
                    let objectKey = record.objectKey, let sha256 = record.sha256, let size = record.size
                else {
                    throw DomainError(.conflict, "dataset_unavailable", "dataset \(declared.id) is not uploaded or was withdrawn")
                }
                guard declared.sha256 == nil || declared.sha256 == sha256, declared.objectVersion == nil
                    || declared.objectVersion == record.objectVersion
                else {
                    throw DomainError(
                        .conflict, "dataset_changed", "dataset \(declared.id) no longer holds the ciphertext the policy names")
                }
                datasets.append(
                    JobPlan.Dataset(
                        id: declared.id, partyID: declared.owner, objectKey: objectKey,
                        ciphertextSHA256: Hex.decode(sha256) ?? [], byteCount: UInt64(size)))
            }
            var entries: [ApprovalBundle.Entry] = []
            for approval in bundle.approvals {
                guard let party = try Party.fetchOne(db, key: approval.partyId) else { continue }
                entries.append(
                    ApprovalBundle.Entry(
                        partyId: approval.partyId, expiresAt: approval.expiresAt, signature: approval.signature,
                        signingKey: party.signingKey))
            }
            let approvalBundle = try ApprovalBundle(policyDigest: bundle.policy.digest, approvals: entries).encoded()
            let now = Int64(Date().timeIntervalSince1970)
            let jobID = "job-" + Hex.encode(try SecureRandom.bytes(count: 8))
            try db.execute(
                sql: """
                    INSERT INTO job (id, collaborationId, policyDigest, status, error, createdAt, updatedAt)
                    VALUES (?, ?, ?, ?, NULL, ?, ?)
                    """,
                arguments: [jobID, collaborationId, bundle.policy.digest, JobState.pending.rawValue, now, now])
            guard let job = try Job.fetchOne(db, key: jobID) else {
                throw DomainError(.internalError, "internal", "the job was not recorded")
            }
            try store.appendAudit(
                db, actor: caller, action: "job.start", collaborationId: collaborationId, subject: job.id,
                details: .object([
                    ("policyDigest", .string(bundle.policy.digest)),
                    ("approvalBundleDigest", .string(Hex.encode(SHA256.hash(approvalBundle)))),
                ]))
            return JobPlan(
                jobID: job.id, collaborationID: collaborationId, policy: policyBytes,
                policyDigest: Hex.decode(bundle.policy.digest) ?? [], approvalBundle: approvalBundle, datasets: datasets)
        }
    }

    /// Persists a state change and audits it (`job.attesting`, `job.running`, …), in one transaction
    /// and only if the stored state may move to `state` (a job that ended stays ended, whoever else
    /// tries to move it). Returns whether it moved.
    @discardableResult
    public func transition(jobID: String, to state: JobState, failure: JobFailure?) throws -> Bool {
        try store.pool.write { db in
            guard var job = try Job.fetchOne(db, key: jobID),
                JobState(rawValue: job.status)?.canMove(to: state) == true
            else { return false }
            job.status = state.rawValue
            job.error = failure.map { "\($0.code): \($0.message)" }
            job.updatedAt = Int64(Date().timeIntervalSince1970)
            try job.update(db)
            var details: [(String, JSONValue)] = [("state", .string(state.rawValue))]
            if let failure { details += [("code", .string(failure.code)), ("message", .string(failure.message))] }
            try store.appendAudit(
                db, actor: nil, action: "job.\(state.rawValue)", collaborationId: job.collaborationId, subject: jobID,
                details: .object(details))
            return true
        }
    }

    /// Audits a key release (DESIGN §2.7) — the dataset and the attested PCR0, never the key.
    public func auditKeyRelease(jobID: String, datasetID: String, pcr0: [UInt8]) throws {
        try store.pool.write { db in
            guard let job = try Job.fetchOne(db, key: jobID) else { return }
            try store.appendAudit(
                db, actor: nil, action: "job.key_release", collaborationId: job.collaborationId, subject: jobID,
                details: .object([("dataset", .string(datasetID)), ("pcr0", .string(Hex.encode(pcr0)))]))
        }
    }

    /// Audits the release of a checkpoint key to an attested enclave (`job.checkpoint_key`): its
    /// PCR0 and whether a stored checkpoint was handed over to resume from. Never the key.
    public func auditCheckpointKey(jobID: String, pcr0: [UInt8], resumed: Bool) throws {
        try store.pool.write { db in
            guard let job = try Job.fetchOne(db, key: jobID) else { return }
            try store.appendAudit(
                db, actor: nil, action: "job.checkpoint_key", collaborationId: job.collaborationId, subject: jobID,
                details: .object([("pcr0", .string(Hex.encode(pcr0))), ("resumed", .bool(resumed))]))
        }
    }

    /// Records a delivered output whose ciphertext is stored under `objectKey`.
    public func recordOutput(
        jobID: String, recipient: String, name: String, objectKey: String, sha256: [UInt8], size: Int64
    ) throws -> Output {
        try store.pool.write { db in
            guard let job = try Job.fetchOne(db, key: jobID) else {
                throw DomainError(.notFound, "not_found", "no such job")
            }
            let id = "out-" + Hex.encode(try SecureRandom.bytes(count: 8))
            try db.execute(
                sql: """
                    INSERT INTO output (id, jobId, recipientPartyId, name, objectKey, sha256, size, createdAt)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    id, jobID, recipient, name, objectKey, Hex.encode(sha256), size, Int64(Date().timeIntervalSince1970),
                ])
            guard let output = try Output.fetchOne(db, key: id) else {
                throw DomainError(.internalError, "internal", "the output was not recorded")
            }
            try store.appendAudit(
                db, actor: nil, action: "job.output", collaborationId: job.collaborationId, subject: output.id,
                details: .object([
                    ("job", .string(jobID)), ("recipient", .string(recipient)), ("name", .string(name)),
                    ("sha256", .string(output.sha256)),
                ]))
            return output
        }
    }

    /// A job whose policy names the caller's party; `not_found` otherwise (existence is not revealed).
    /// A job's members are the parties of the policy it ran, not of the collaboration's policy now:
    /// a revision that drops a party leaves it its jobs' results and receipts, and one that adds a
    /// party shows it nothing of the jobs before it (a review found both the other way round).
    public func job(id: String, caller: Caller) throws -> Job {
        guard let partyId = caller.partyId,
            let job = try store.pool.read({ db in try Job.fetchOne(db, key: id) }),
            try policyParties(digest: job.policyDigest).contains(partyId)
        else { throw DomainError(.notFound, "not_found", "no such job") }
        return job
    }

    /// The ids of the parties a stored policy version names.
    func policyParties(digest: String) throws -> Set<String> {
        guard let policy = try store.pool.read({ db in try PolicyVersion.fetchOne(db, key: digest) }),
            let parties = (try? JSONParser.parse(Array(policy.canonical.utf8)))?["parties"]?.arrayValue
        else { return [] }
        return Set(parties.compactMap { $0["id"]?.stringValue })
    }

    /// The canonical text of the policy version the job ran (its SHA-256 is `job.policyDigest`),
    /// whatever the collaboration's policy is now: what `verify` checks the job's results against.
    public func policy(of job: Job) throws -> String {
        guard let policy = try store.pool.read({ db in try PolicyVersion.fetchOne(db, key: job.policyDigest) }) else {
            throw DomainError(.internalError, "policy_missing", "the policy job \(job.id) ran is not in the database")
        }
        return policy.canonical
    }

    /// The artifacts (`model`, `metrics`, `scores:own`) the job's policy grants the caller's party.
    public func grantedArtifacts(of job: Job, caller: Caller) throws -> Set<String> {
        guard let partyId = caller.partyId,
            let policy = try store.pool.read({ db in try PolicyVersion.fetchOne(db, key: job.policyDigest) }),
            let parsed = try? JobPolicy(bytes: Array(policy.canonical.utf8))
        else { return [] }
        return Set(parsed.outputs.filter { $0.recipient == partyId }.flatMap(\.artifacts))
    }

    /// The outputs of a job addressed to the caller's party (others' outputs are invisible), once
    /// the job has succeeded: a job's outputs are visible all together with its receipt, or not at
    /// all (one that failed or was cancelled while delivering shows none of those it had stored).
    public func outputs(jobID: String, caller: Caller) throws -> [Output] {
        let job = try job(id: jobID, caller: caller)
        guard job.status == JobState.succeeded.rawValue, let partyId = caller.partyId else { return [] }
        return try store.pool.read { db in
            try Output.filter(Column("jobId") == job.id && Column("recipientPartyId") == partyId)
                .order(Column("createdAt"), Column("name")).fetchAll(db)
        }
    }

    /// One output, only if addressed to the caller's party; `not_found` otherwise.
    public func output(jobID: String, outputID: String, caller: Caller) throws -> Output {
        guard let output = try outputs(jobID: jobID, caller: caller).first(where: { $0.id == outputID }) else {
            throw DomainError(.notFound, "not_found", "no such output")
        }
        return output
    }

    /// The states of a job that has not ended.
    static let openStates = [JobState.pending, .attesting, .running, .delivering].map(\.rawValue)
    /// The states of a job that ended without success (its stored outputs are discarded).
    static let unsuccessfulStates = [JobState.failed, .cancelled].map(\.rawValue)

    /// Jobs left in a non-terminal state (after a restart).
    public func openJobs() throws -> [Job] {
        try store.pool.read { db in try Job.filter(Self.openStates.contains(Column("status"))).fetchAll(db) }
    }

    /// Jobs that ended without success but still have outputs recorded (a stop came before they
    /// were discarded).
    public func unsuccessfulJobsWithOutputs() throws -> [String] {
        try store.pool.read { db in
            try String.fetchAll(
                db,
                sql: "SELECT DISTINCT job.id FROM job JOIN output ON output.jobId = job.id WHERE job.status IN (?, ?)",
                arguments: StatementArguments(Self.unsuccessfulStates))
        }
    }

    /// Fails a job a restart interrupted.
    public func failInterrupted(jobID: String) throws {
        _ = try transition(
            jobID: jobID, to: .failed,
            failure: JobFailure(code: "job.interrupted", message: "the server restarted while the job ran; start it again"))
    }

    /// The object keys of the outputs recorded for a job that failed or was cancelled; nil for a job
    /// in any other state (whose outputs are not to be discarded).
    public func outputObjects(ofUnsuccessfulJob jobID: String) throws -> [String]? {
        try store.pool.read { db in
            guard let job = try Job.fetchOne(db, key: jobID),
                Self.unsuccessfulStates.contains(job.status)
            else { return nil }
            return try Output.filter(Column("jobId") == jobID).fetchAll(db).map(\.objectKey)
        }
    }

    /// Forgets the outputs recorded for a job that failed or was cancelled (they were never
    /// visible) and audits it.
    public func forgetOutputs(jobID: String) throws {
        try store.pool.write { db in
            guard let job = try Job.fetchOne(db, key: jobID),
                Self.unsuccessfulStates.contains(job.status)
            else { return }
            let count = try Output.filter(Column("jobId") == jobID).deleteAll(db)
            guard count > 0 else { return }
            try store.appendAudit(
                db, actor: nil, action: "job.outputs_discarded", collaborationId: job.collaborationId, subject: jobID,
                details: .object([("count", .number(Double(count))), ("state", .string(job.status))]))
        }
    }
}
