import CleanRoom
import GRDB

extension ServerMetrics {
    /// The gauges of a running server, read at every scrape: jobs by state (from the database, so
    /// they count every job, not only this process's), whether `/readyz` would answer 200, and
    /// whether a standby enclave waits, and webhooks by state.
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
