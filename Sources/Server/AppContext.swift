import HTTPServer
import Logging

/// Everything a feature's routes need from the running server, built once at start-up and
/// handed to every `RouteGroup`.
///
/// A feature that needs a service (the domain store, the local KMS, the object store) adds it
/// here as a `let` property, built in `ServerApp.makeContext` — one place that shows how the
/// server is wired.
public final class AppContext: Sendable {
    public let configuration: ServerConfiguration
    public let dataDirectory: DataDirectory
    /// The operator's first credential, read or created by `DataDirectory.bootstrap()`.
    public let operatorCredentials: OperatorCredentials
    public let logger: Logger
    /// Checks `/readyz` runs; features register theirs (e.g. "database open").
    public let readiness: ReadinessChecks
    /// Parties, datasets, policies, approvals and the audit log (issue #6); nil in tests that do not need it.
    public let governance: Governance?
    /// Objects (datasets, outputs) and keys: file store + local KMS, or S3 + AWS KMS (issue #4).
    public let storage: StorageServices?
    /// Runs jobs in enclaves (issue #8); nil in tests that do not need it.
    public let jobs: JobManager?
    /// Sends webhook events; nil in tests that do not need it.
    public let webhooks: WebhookDispatcher?
    /// `GET /metrics` and the token that reads it, besides the operator's; nil: no such route.
    public let metrics: (metrics: ServerMetrics, token: String)?

    public init(
        configuration: ServerConfiguration, dataDirectory: DataDirectory, operatorCredentials: OperatorCredentials,
        logger: Logger, readiness: ReadinessChecks = ReadinessChecks(), governance: Governance? = nil,
        storage: StorageServices? = nil, jobs: JobManager? = nil, webhooks: WebhookDispatcher? = nil, metrics: (metrics: ServerMetrics, token: String)? = nil
    ) {
        self.configuration = configuration
        self.dataDirectory = dataDirectory
        self.operatorCredentials = operatorCredentials
        self.logger = logger
        self.readiness = readiness
        self.governance = governance
        self.storage = storage
        self.jobs = jobs
        self.webhooks = webhooks
        self.metrics = metrics
    }
}
