import CleanRoom
import GRDB

/// What member parties ask of jobs through the API: listings, and the audited requests
/// (cancel, download) that are not state changes of the job itself.
extension JobStore {
    /// The jobs of a collaboration whose policy (the version each ran) names the caller's party,
    /// newest first: the rule of `job(id:caller:)`, so a party lists exactly the jobs it reaches by
    /// id. A party a revision added lists none from before it; one a revision dropped still lists
    /// those it was in, and none after. `not_found` (as for a collaboration that does not exist)
    /// unless the party is a member or named in some job's policy (`listsJobs`).
    public func jobs(collaborationId: String, caller: Caller) throws -> [Job] {
        guard let partyId = caller.partyId, try listsJobs(collaborationId: collaborationId, partyId: partyId) else {
            throw DomainError.notFound("collaboration")
        }
        let all = try store.pool.read { db in
            try Job.filter(Column("collaborationId") == collaborationId)
                .order(Column("createdAt").desc, Column("id")).fetchAll(db)
        }
        var parties: [String: Set<String>] = [:]
        return try all.filter { job in
            if parties[job.policyDigest] == nil { parties[job.policyDigest] = try policyParties(digest: job.policyDigest) }
            return parties[job.policyDigest]!.contains(partyId)
        }
    }

    /// Whether a party may list a collaboration's jobs: it is a member (named in the current policy),
    /// or the policy one of its jobs ran names it.
    public func listsJobs(collaborationId: String, partyId: String) throws -> Bool {
        if try store.isMember(partyId: partyId, collaborationId: collaborationId) { return true }
        let digests = try store.pool.read { db in
            try String.fetchAll(
                db, sql: "SELECT DISTINCT policyDigest FROM job WHERE collaborationId = ?",
                arguments: [collaborationId])
        }
        return try digests.contains { try policyParties(digest: $0).contains(partyId) }
    }

    /// Audits a member's request to cancel (the resulting `job.cancelled` has no actor).
    public func auditCancelRequest(job: Job, caller: Caller) throws {
        try store.pool.write { db in
            try store.appendAudit(
                db, actor: caller, action: "job.cancel_requested", collaborationId: job.collaborationId, subject: job.id)
        }
    }

    /// Audits the download of an output by its recipient (DESIGN §2.7).
    public func auditDownload(output: Output, collaborationId: String, caller: Caller) throws {
        try store.pool.write { db in
            try store.appendAudit(
                db, actor: caller, action: "output.download", collaborationId: collaborationId, subject: output.id,
                details: .object([
                    ("job", .string(output.jobId)), ("name", .string(output.name)), ("sha256", .string(output.sha256)),
                ]))
        }
    }
}
