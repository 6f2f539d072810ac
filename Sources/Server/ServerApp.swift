import Foundation
import HTTPServer
import Logging

/// Assembles the server: context, router (every feature's route group), HTTP server.
///
/// To add a feature's routes, write a `RouteGroup` in the feature's own file and add ONE line
/// to `routeGroups(_:)` below.
public enum ServerApp {
    /// Every feature's routes. One line per feature.
    static func routeGroups(_ context: AppContext) -> [any RouteGroup] {
        [
            HealthRoutes(readiness: context.readiness),
            EchoRoutes(),
        ]
            + (context.governance.map { [$0.routes(jobs: context.jobs, webhooks: context.webhooks, logger: context.logger)] } ?? [])
            + KMSRoutes.groups(context)
            + MetricsRoutes.groups(context)
    }

    /// The router with every route registered.
    public static func makeRouter(context: AppContext) -> Router {
        let router = Router(logger: context.logger)
        for group in routeGroups(context) { router.register(group) }
        return router
    }
}

extension ServerApp {
    /// Runs `cleanroomd serve`: bootstrap the data directory, build the router, listen, and on
    /// SIGTERM/SIGINT drain in-flight requests and stop. Status lines go to stderr; the access
    /// log to its destination. The operator credential's path is printed, never its value.
    public static func run(configuration: ServerConfiguration, logger: Logger) async throws {
        // The start-up and shutdown lines: for a person at a terminal, or JSON events like the rest.
        let status: (String) -> Void =
            configuration.logFormat == .json ? { logger.notice("\($0)") } : { Self.status($0) }
        var tls: TLSConfiguration?
        if let cert = configuration.tlsCertificatePath, let key = configuration.tlsPrivateKeyPath {
            tls = TLSConfiguration(certificateChainPath: cert, privateKeyPath: key, clientCAPath: configuration.tlsClientCAPath)
            try tls?.validate()  // before anything is written: a bad setting changes nothing
        }
        let dataDirectory = DataDirectory(path: configuration.dataDirectory)
        let servingLock = try dataDirectory.lockForServing()
        defer { servingLock.release() }
        if let interrupted = DataBackup.interruptedRestore(in: dataDirectory) {
            throw ConfigurationError(
                "an interrupted `cleanroomd admin restore` left \(interrupted.path): the data directory may hold some of "
                    + "the backup's files and some of the earlier ones; run the same restore again to finish it")
        }
        var (credentials, created) = try dataDirectory.bootstrap()
        let (withKeys, addedKeys) = try credentials.withAccessKeyPair()
        if addedKeys {
            credentials = withKeys
            try credentials.write(to: dataDirectory.operatorCredentialsURL)
        }
        let storage = try StorageServices.make(configuration.storage, dataDirectory: dataDirectory)
        StorageServices.logOpening(of: storage.objectStore, to: logger)
        status(
            created
                ? "created operator credentials in \(dataDirectory.operatorCredentialsURL.path) (mode 0600)"
                : "operator credentials in \(dataDirectory.operatorCredentialsURL.path)")
        let governance = try await Governance.open(
            dataDirectory: dataDirectory, operatorToken: credentials.token, logger: logger,
            objects: storage.objectStore)
        let jobs = JobManager(
            store: governance.store, objects: storage.objectStore,
            services: try JobManager.Services.make(
                configuration.enclave, dataDirectory: dataDirectory, storage: storage, logger: logger),
            logger: logger)
        let recovered = try await jobs.recoverInterruptedJobs()
        for id in recovered.failed { status("job \(id) was interrupted by the last stop: marked failed") }
        for id in recovered.succeeded { status("job \(id) was interrupted by the last stop after delivering everything: succeeded") }
        let metrics = ServerMetrics()
        let webhooks = WebhookDispatcher(store: governance.store, configuration: configuration.webhooks, logger: logger)
        let context = AppContext(
            configuration: configuration, dataDirectory: dataDirectory, operatorCredentials: credentials, logger: logger,
            governance: governance, storage: storage, jobs: jobs, webhooks: webhooks,
            metrics: (metrics, try dataDirectory.metricsToken()))
        metrics.addServerGauges(context)
        let router = makeRouter(context: context)
        let accessLog = configuration.accessLog == "off" ? nil : try AccessLogWriter(destination: configuration.accessLog)
        let httpConfiguration = HTTPServerConfiguration(
            host: configuration.listen.host, port: configuration.listen.port, eventLoops: configuration.eventLoops,
            limits: configuration.http, tls: tls)
        let server = try HTTPServer(
            configuration: httpConfiguration, router: router, logger: logger,
            accessLog: { entry in
                metrics.record(entry)
                accessLog?.record(entry)
            })
        let signals = SignalWaiter(signals: [SIGTERM, SIGINT])
        try server.start()
        jobs.services.standby?.start()  // once nothing can fail startup: a failed start leaves no enclave
        webhooks.start()
        let scheme = tls == nil ? "http" : "https"
        let shown = ListenAddress(host: configuration.listen.host, port: server.port)
        status("listening on \(scheme)://\(shown) (data directory \(dataDirectory.path))")
        let signal = await signals.wait()
        status("received \(signal == SIGTERM ? "SIGTERM" : "SIGINT"), draining in-flight requests")
        context.readiness.beginDraining()
        jobs.services.standby?.beginStopping()  // the jobs cancelled next launch no replacements
        if !jobs.runningJobs.isEmpty {
            status("cancelling \(jobs.runningJobs.count) running job(s); their enclaves are stopped")
            try? await GovernanceRoutes.blocking { jobs.cancelAll(reason: "the server is shutting down", timeout: 10) }
        }
        await server.shutdown()
        await webhooks.stop()  // after the jobs' last events: what is not sent now is sent after the next start
        if let standby = jobs.services.standby {
            try? await GovernanceRoutes.blocking { standby.stop() }
        }
        _ = try? governance.store.checkpoint()  // sign the audit log's head before stopping
        accessLog?.close()
        status("stopped")
    }

    static func status(_ line: String) {
        FileHandle.standardError.write(Data(("cleanroomd: " + line + "\n").utf8))
    }
}
