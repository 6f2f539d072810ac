import CleanRoom
import GRDB

extension ServerMetrics {
    /// Upper bounds of the job-duration histogram's buckets, seconds: from a job refused at
    /// attestation to a day's training.
    static let jobDurationBuckets: [Double] = [5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21_600, 86_400]

    /// The gauges of a running server, read at every scrape: jobs by state (from the database, so
    /// they count every job, not only this process's), whether `/readyz` would answer 200, and
    /// whether a standby enclave waits, webhooks by state, and how long ended jobs took.
    func addServerGauges(_ context: AppContext) {
        let readiness = context.readiness
        addGauge("cleanroom_ready", help: "1 when GET /readyz answers 200, else 0.") {
            [([], await readiness.failures().isEmpty ? 1 : 0)]
        }
        if let store = context.governance?.store {
            addGauge("cleanroom_jobs", help: "Jobs by state.") {
                // A database that cannot be read gives no samples rather than zeros.
                guard let counts = try? await GovernanceRoutes.blocking({
                    try store.pool.read { db in
                        try Dictionary(
                            Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM \(Job.databaseTableName) GROUP BY status")
                                .map { ($0["status"] as String, $0["n"] as Int) },
                            uniquingKeysWith: +)
                    }
                }) else { return [] }
                return JobState.allCases.map { ([("state", $0.rawValue)], Double(counts[$0.rawValue] ?? 0)) }
            }
            addHistogram(
                "cleanroom_job_duration_seconds", help: "Time from a job's start to its end, by how it ended.",
                bounds: Self.jobDurationBuckets
            ) {
                let ended = JobState.allCases.filter(\.isTerminal)
                guard let rows = try? await GovernanceRoutes.blocking({
                    try store.pool.read { db in
                        try Row.fetchAll(
                            db,
                            sql: "SELECT status, updatedAt - createdAt AS seconds FROM \(Job.databaseTableName) WHERE status IN (\(ended.map { "'\($0.rawValue)'" }.joined(separator: ",")))"
                        ).map { ($0["status"] as String, Double($0["seconds"] as Int64)) }
                    }
                }) else { return [] }
                let byState = Dictionary(grouping: rows, by: \.0)
                return ended.map { state in ([("state", state.rawValue)], byState[state.rawValue, default: []].map(\.1)) }
            }
        }
        if let store = context.governance?.store, context.webhooks != nil {
            addGauge(
                "cleanroom_webhooks",
                help: "Registered webhooks: active and delivering, active with failed attempts (retrying), disabled."
            ) {
                guard let counts = try? await GovernanceRoutes.blocking({
                    try store.pool.read { db in
                        try Row.fetchAll(
                            db,
                            sql: """
                                SELECT CASE WHEN status = 'disabled' THEN 'disabled' WHEN failures > 0 THEN 'failing'
                                ELSE 'active' END AS state, COUNT(*) AS n FROM \(Webhook.databaseTableName) GROUP BY state
                                """
                        ).map { ($0["state"] as String, $0["n"] as Int) }
                    }
                }) else { return [] }
                let byState = Dictionary(counts, uniquingKeysWith: +)
                return ["active", "failing", "disabled"].map { ([("state", $0)], Double(byState[$0] ?? 0)) }
            }
        }
        if let standby = context.jobs?.services.standby {
            addGauge("cleanroom_enclave_standby_ready", help: "1 when a standby enclave waits for the next job, else 0.") {
                [([], standby.isReady ? 1 : 0)]
            }
        }
    }
}
