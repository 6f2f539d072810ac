import CleanRoom
import GRDB

/// What member parties ask of jobs through the API: listings, and the audited requests
/// (cancel, download) that are not state changes of the job itself.
extension JobStore {
    /// The jobs of a collaboration the caller's party is a member of whose policy names that party,
    /// newest first: as with each job, a party a revision added sees none from before it. (A party
    /// a revision dropped is no longer a member, so it lists none, but still reaches each of its
    /// jobs by id.)
    public func jobs(collaborationId: String, caller: Caller) throws -> [Job] {
        guard let partyId = caller.partyId, try store.isMember(partyId: partyId, collaborationId: collaborationId) else {
            throw DomainError(.notFound, "not_found", "no such collaboration")
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
