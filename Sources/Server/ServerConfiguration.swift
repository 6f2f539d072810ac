import Foundation
import HTTPServer

/// How `cleanroomd serve` is configured. Precedence, highest first: command-line flags,
/// environment (`CLEANROOM_LISTEN`, `CLEANROOM_DATA_DIR`, …), the config file (`--config` or
/// `CLEANROOM_CONFIG`, JSON with the keys of `ServerConfiguration.File`), then defaults.
public struct ServerConfiguration: Sendable {
    /// Where to listen (default `127.0.0.1:8080`).
    public var listen: ListenAddress = ListenAddress(host: "127.0.0.1", port: 8080)
    /// The data directory (default `./data`), created with mode 0700.
    public var dataDirectory: String = "data"
    public var tlsCertificatePath: String?
    public var tlsPrivateKeyPath: String?
    /// A CA bundle; when set, clients must present a certificate that chains to it.
    public var tlsClientCAPath: String?
    /// Allow plain HTTP on a non-loopback address (refused by default).
    public var insecureHTTP = false
    /// Where access-log lines go: `-` (stdout, default), `off`, or a file path.
    public var accessLog: String = "-"
    /// Event loops (default: one per core).
    public var eventLoops: Int?
    /// How log events are written to stderr: `text` (default, for a terminal) or `json` (one object
    /// per line, for CloudWatch Logs and other collectors; `JSONLogHandler`).
    public var logFormat: LogFormat = .text
    /// Connection, size and time limits of the HTTP server.
    public var http = HTTPServerLimits()
    /// Object store and KMS (`--object-store`, `--s3-endpoint`, `--kms`, `--kms-endpoint`).
    public var storage = StorageConfiguration()
    /// Where job enclaves run (`--enclave local|nitro` and its options).
    public var enclave = EnclaveConfiguration()
    /// Where and how webhook events are sent (`--webhook-…` options).
    public var webhooks = WebhookDispatcher.Configuration()

    public init() {}

    /// The keys a config file may set (all optional).
    public struct File: Codable, Sendable {
        public var listen: String?
        public var dataDir: String?
        public var tlsCert: String?
        public var tlsKey: String?
        public var tlsClientCA: String?
        public var insecureHTTP: Bool?
        public var accessLog: String?
        public var eventLoops: Int?
        public var maxConnections: Int?
        public var logFormat: String?
    }

    /// Values given on the command line (nil = not given).
    public struct Overrides: Sendable {
        public var configFile: String?
        public var listen: String?
        public var dataDir: String?
        public var tlsCert: String?
        public var tlsKey: String?
        public var tlsClientCA: String?
        public var insecureHTTP: Bool?
        public var accessLog: String?
        public var eventLoops: Int?
        public var logFormat: String?
        public init() {}
    }

    /// Resolves defaults < config file < environment < flags, then validates the result.
    public static func resolve(
        overrides: Overrides, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ServerConfiguration {
        var config = ServerConfiguration()
        if let path = overrides.configFile ?? environment["CLEANROOM_CONFIG"] {
            let file: File
            do {
                file = try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
            } catch {
                throw ConfigurationError("cannot read config file \(path): \(error)")
            }
            try config.apply(
                listen: file.listen, dataDir: file.dataDir, tlsCert: file.tlsCert, tlsKey: file.tlsKey,
                tlsClientCA: file.tlsClientCA, insecureHTTP: file.insecureHTTP, accessLog: file.accessLog,
                eventLoops: file.eventLoops, logFormat: file.logFormat)
            if let max = file.maxConnections { config.http.maxConnections = max }
        }
        try config.apply(
            listen: environment["CLEANROOM_LISTEN"], dataDir: environment["CLEANROOM_DATA_DIR"],
            tlsCert: environment["CLEANROOM_TLS_CERT"], tlsKey: environment["CLEANROOM_TLS_KEY"],
            tlsClientCA: environment["CLEANROOM_TLS_CLIENT_CA"],
            insecureHTTP: environment["CLEANROOM_INSECURE_HTTP"].map { ["1", "true", "yes"].contains($0.lowercased()) },
            accessLog: environment["CLEANROOM_ACCESS_LOG"], eventLoops: environment["CLEANROOM_EVENT_LOOPS"].flatMap { Int($0) },
            logFormat: environment["CLEANROOM_LOG_FORMAT"])
        try config.apply(
            listen: overrides.listen, dataDir: overrides.dataDir, tlsCert: overrides.tlsCert, tlsKey: overrides.tlsKey,
            tlsClientCA: overrides.tlsClientCA, insecureHTTP: overrides.insecureHTTP, accessLog: overrides.accessLog,
            eventLoops: overrides.eventLoops, logFormat: overrides.logFormat)
        try config.validate()
        return config
    }

    private mutating func apply(
        listen: String?, dataDir: String?, tlsCert: String?, tlsKey: String?, tlsClientCA: String?,
        insecureHTTP: Bool?, accessLog: String?, eventLoops: Int?, logFormat: String?
    ) throws {
        if let listen { self.listen = try ListenAddress(parsing: listen) }
        if let dataDir { self.dataDirectory = dataDir }
        if let tlsCert { self.tlsCertificatePath = tlsCert }
        if let tlsKey { self.tlsPrivateKeyPath = tlsKey }
        if let tlsClientCA { self.tlsClientCAPath = tlsClientCA }
        if let insecureHTTP { self.insecureHTTP = insecureHTTP }
        if let accessLog { self.accessLog = accessLog }
        if let eventLoops { self.eventLoops = eventLoops }
        if let logFormat {
            guard let format = LogFormat(rawValue: logFormat) else {
                throw ConfigurationError("--log-format must be text or json, not \(logFormat)")
            }
            self.logFormat = format
        }
    }

    /// True when TLS is configured (certificate and key).
    public var tlsEnabled: Bool { tlsCertificatePath != nil && tlsPrivateKeyPath != nil }

    /// Refuses inconsistent settings, and plain HTTP on a non-loopback address without `insecureHTTP`.
    public func validate() throws {
        if (tlsCertificatePath == nil) != (tlsPrivateKeyPath == nil) {
            throw ConfigurationError("--tls-cert and --tls-key must be given together")
        }
        if tlsClientCAPath != nil && !tlsEnabled {
            throw ConfigurationError("--tls-client-ca needs --tls-cert and --tls-key")
        }
        if !tlsEnabled && !listen.isLoopback && !insecureHTTP {
            throw ConfigurationError(
                "refusing to listen on \(listen) without TLS: give --tls-cert and --tls-key, "
                    + "or --insecure-http to accept plain HTTP on a non-loopback address")
        }
        if let eventLoops, eventLoops < 1 { throw ConfigurationError("event loops must be at least 1") }
    }
}

/// A `HOST:PORT` listen address (`[v6]:PORT` for IPv6).
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init(parsing text: String) throws {
        let hostPart: Substring, portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ConfigurationError("listen address \(text) is not [IPv6]:PORT")
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw ConfigurationError("listen address \(text) is not HOST:PORT")
            }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        guard !hostPart.isEmpty, let port = Int(portPart), (0...65535).contains(port) else {
            throw ConfigurationError("listen address \(text) is not HOST:PORT with a port from 0 to 65535")
        }
        self.host = String(hostPart)
        self.port = port
    }

    /// Loopback: `localhost`, 127.0.0.0/8 or ::1.
    public var isLoopback: Bool {
        if host == "localhost" || host == "::1" { return true }
        let parts = host.split(separator: ".")
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A configuration problem, with what to change.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// How `cleanroomd` writes its log events.
public enum LogFormat: String, Sendable {
    case text, json
}
