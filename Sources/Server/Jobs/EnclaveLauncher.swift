import Enclave
import Spawn

/// Starts an enclave for one job and hands back its connected channel.
///
/// Implementations: `LocalEnclaveLauncher` (a child process over a Unix socket) and
/// `NitroEnclaveLauncher` (`nitro-cli run-enclave` over vsock). Every step has a deadline; a
/// failed launch leaves nothing running.
public protocol EnclaveLauncher: Sendable {
    /// Starts an enclave and waits until it has connected.
    func launch(jobID: String) throws(EnclaveLaunchError) -> any EnclaveInstance
}

/// A running enclave: its channel, and the means to end it.
public protocol EnclaveInstance: AnyObject, Sendable {
    /// The connected channel to the enclave program.
    var connection: ChannelConnection { get }
    /// A short description for logs (`local pid 123`, `nitro enclave i-…-enc…`).
    var summary: String { get }
    /// Whether the enclave is still running.
    func isAlive() -> Bool
    /// Ends the enclave and releases everything it held (idempotent; safe from any thread).
    func terminate()
    /// Local mode: the launcher's development attestor, which answers the enclave's
    /// `attestationRequest` (nil for Nitro, where the enclave asks its own NSM).
    var localAttestation: LocalAttestation? { get }
}

extension EnclaveInstance {
    public var localAttestation: LocalAttestation? { nil }
}

/// Makes a development attestation document for (public key, user data, nonce), measuring the
/// executable the launcher started (the enclave cannot choose its own PCR0).
public typealias LocalAttestation = @Sendable (_ publicKey: [UInt8], _ userData: [UInt8], _ nonce: [UInt8]) throws -> [UInt8]

/// Why an enclave could not be started or reached.
public struct EnclaveLaunchError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable failure code.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let spawnFailed = Code(rawValue: "enclave.spawn_failed")
        public static let connectTimeout = Code(rawValue: "enclave.connect_timeout")
        public static let exitedEarly = Code(rawValue: "enclave.exited_early")
        public static let nitroCLIFailed = Code(rawValue: "enclave.nitro_cli_failed")
        public static let socket = Code(rawValue: "enclave.socket")
        public static let configuration = Code(rawValue: "enclave.configuration")
        public static let stopping = Code(rawValue: "enclave.server_stopping")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

extension ChildProcess {
    /// Starts a launcher's child (the enclave program, `nitro-cli`) with exactly `environment`, in
    /// its own process group, its stdout and stderr appended to `outputPath` (else inherited); a
    /// failure to start is the launch's `spawnFailed`.
    static func launch(
        executable: String, arguments: [String], environment: [String: String], outputPath: String?
    ) throws(EnclaveLaunchError) -> ChildProcess {
        do {
            return try spawn(
                executable: executable, arguments: arguments, environment: environment,
                stdout: outputPath.map { .file($0, append: true) } ?? .inherit)
        } catch {
            throw EnclaveLaunchError(.spawnFailed, error.description)
        }
    }

    /// The same for the program in a sealed copy, run as `argv0`.
    static func launch(
        image: SealedExecutable, argv0: String, arguments: [String], environment: [String: String], outputPath: String?
    ) throws(EnclaveLaunchError) -> ChildProcess {
        do {
            return try spawn(
                image: image, argv0: argv0, arguments: arguments, environment: environment,
                stdout: outputPath.map { .file($0, append: true) } ?? .inherit)
        } catch {
            throw EnclaveLaunchError(.spawnFailed, error.description)
        }
    }
}

