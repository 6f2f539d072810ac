import ArgumentParser
import Logging
import Server

/// `cleanroomd serve`: run the server on its embedded defaults.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the server on its embedded defaults or on AWS services.",
        discussion: """
            Settings come from flags, then environment variables (CLEANROOM_LISTEN, CLEANROOM_DATA_DIR, \
            CLEANROOM_TLS_CERT, CLEANROOM_TLS_KEY, CLEANROOM_TLS_CLIENT_CA, CLEANROOM_INSECURE_HTTP, \
            CLEANROOM_ACCESS_LOG, CLEANROOM_EVENT_LOOPS, CLEANROOM_LOG_FORMAT), then the JSON config file \
            (--config or CLEANROOM_CONFIG; keys listen, dataDir, tlsCert, tlsKey, tlsClientCA, insecureHTTP, \
            accessLog, eventLoops, maxConnections, logFormat), then defaults.
            """)

    @Option(help: "Address to listen on, HOST:PORT (default 127.0.0.1:8080).")
    var listen: String?

    @Option(name: .customLong("data-dir"), help: "Data directory (default ./data), created with mode 0700.")
    var dataDir: String?

    @Option(help: "JSON config file.")
    var config: String?

    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain for TLS.")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key for TLS.")
    var tlsKey: String?

    @Option(name: .customLong("tls-client-ca"), help: "PEM CA bundle; clients must present a certificate it verifies.")
    var tlsClientCA: String?

    @Flag(name: .customLong("insecure-http"), help: "Allow plain HTTP on a non-loopback address.")
    var insecureHTTP = false

    @Option(name: .customLong("access-log"), help: "Access log: '-' (stdout, default), 'off', or a file path.")
    var accessLog: String?

    @Option(name: .customLong("event-loops"), help: "Event-loop threads (default: one per core).")
    var eventLoops: Int?

    @Option(
        name: .customLong("log-format"),
        help: "Log events on stderr: 'text' (default) or 'json' (one object per line, for CloudWatch Logs).")
    var logFormat: String?

    @Option(name: .customLong("object-store"), help: "file:DIR (default DATA/objects) or s3://BUCKET/PREFIX.")
    var objectStore: String?

    @Option(name: .customLong("s3-endpoint"), help: "S3-compatible endpoint URL for --object-store s3://….")
    var s3Endpoint: String?

    @Option(name: .customLong("kms"), help: "local (default: embedded KMS, served at POST /) or aws.")
    var kms: String?

    @Option(name: .customLong("kms-endpoint"), help: "AWS KMS endpoint URL override for --kms aws.")
    var kmsEndpoint: String?

    @Option(name: .customLong("enclave"), help: "Where jobs run: local (default: cleanroom-enclave as a child process, development attestation) or nitro.")
    var enclave: String?

    @Option(name: .customLong("enclave-binary"), help: "Local mode: the enclave program (default: cleanroom-enclave beside cleanroomd).")
    var enclaveBinary: String?

    @Option(name: .customLong("enclave-eif"), help: "Nitro mode: the enclave image file (EIF).")
    var enclaveEIF: String?

    @Option(name: .customLong("enclave-cpus"), help: "Nitro mode: vCPUs for the enclave (default 2).")
    var enclaveCPUs: Int?

    @Option(name: .customLong("enclave-memory"), help: "Nitro mode: enclave memory in MiB (default 4096).")
    var enclaveMemory: Int?

    @Option(name: .customLong("enclave-cid"), help: "Nitro mode: the enclave's vsock CID (default: chosen by nitro-cli).")
    var enclaveCID: UInt32?

    @Option(name: .customLong("enclave-port"), help: "Nitro mode: the vsock port the enclave connects back to (default 5005).")
    var enclavePort: UInt32?

    @Flag(name: .customLong("enclave-debug"), help: "Nitro mode: run the enclave in debug mode (PCRs are zero; only policies that allow debug get keys).")
    var enclaveDebug = false

    @Flag(
        name: .customLong("enclave-standby"), inversion: .prefixedNo,
        help: "Keep one enclave launched and keyed ahead of the next job, so a job starts without waiting for it.")
    var enclaveStandby = true

    @Flag(
        name: .customLong("webhook-allow-http"),
        help: "Let parties register plain http:// webhook URLs (development only; https otherwise).")
    var webhookAllowHTTP = false

    @Option(
        name: .customLong("webhook-allow-network"),
        help: ArgumentHelp(
            "A network (CIDR) webhooks may reach although it is private, loopback or link-local, e.g. 10.20.0.0/16 for an on-premises receiver. Repeatable.",
            valueName: "cidr"))
    var webhookAllowNetwork: [String] = []

    @Option(name: .customLong("webhook-ca-file"), help: "PEM CA bundle webhook receivers' certificates are checked against, instead of the system's roots.")
    var webhookCAFile: String?

    @Option(
        name: .customLong("webhook-retry-delay"),
        help: "Seconds before a failed webhook delivery is retried (default 10); each further retry waits twice as long, up to an hour.")
    var webhookRetryDelay: Double?

    func run() async throws {
        var overrides = ServerConfiguration.Overrides()
        overrides.configFile = config
        overrides.listen = listen
        overrides.dataDir = dataDir
        overrides.tlsCert = tlsCert
        overrides.tlsKey = tlsKey
        overrides.tlsClientCA = tlsClientCA
        overrides.insecureHTTP = insecureHTTP ? true : nil
        overrides.accessLog = accessLog
        overrides.eventLoops = eventLoops
        overrides.logFormat = logFormat
        var configuration: ServerConfiguration
        do {
            configuration = try ServerConfiguration.resolve(overrides: overrides)
            configuration.storage = try StorageConfiguration(
                objectStore: objectStore, s3Endpoint: s3Endpoint, kms: kms, kmsEndpoint: kmsEndpoint)
            configuration.enclave = try EnclaveConfiguration(
                mode: enclave, binary: enclaveBinary, eif: enclaveEIF, cpus: enclaveCPUs, memoryMiB: enclaveMemory,
                cid: enclaveCID, port: enclavePort, debug: enclaveDebug, standby: enclaveStandby)
            configuration.webhooks = try WebhookDispatcher.Configuration(
                allowHTTP: webhookAllowHTTP, allowNetworks: webhookAllowNetwork, caFile: webhookCAFile,
                retryDelay: webhookRetryDelay)
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
        guard configuration.logFormat == .json else {
            return try await ServerApp.run(configuration: configuration, logger: Logger(label: "cleanroomd"))
        }
        // Every line on stderr a JSON event, the reason the server stopped or could not start included.
        LoggingSystem.bootstrap { JSONLogHandler(label: $0) }
        let logger = Logger(label: "cleanroomd")
        do {
            try await ServerApp.run(configuration: configuration, logger: logger)
        } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
    }
}
