#if canImport(Glibc)
import Glibc
#endif
import Attestation
import Enclave
import Foundation
import Spawn

/// Local mode: runs `cleanroom-enclave` as a child process that connects back over a Unix socket
/// in a fresh private directory (mode 0700), which is removed once the enclave has connected.
///
/// The child gets no inherited environment beyond `configuration.environment`, stdin from
/// /dev/null, and its output appended to `configuration.logPath` when set.
public struct LocalEnclaveLauncher: EnclaveLauncher {
    /// What to run and how long to wait.
    public struct Configuration: Sendable {
        /// Path of the `cleanroom-enclave` executable (its SHA-384 is the development PCR0).
        public var executablePath: String
        /// Arguments before `--connect` (e.g. an interpreter's script option in tests).
        public var leadingArguments: [String] = []
        /// Arguments after `--connect unix:PATH` (e.g. the development attestor's directory).
        public var extraArguments: [String] = []
        /// The child's whole environment.
        public var environment: [String: String] = ["LANG": "C.UTF-8"]
        /// Where the child's stdout and stderr go (appended); nil inherits the server's.
        public var logPath: String?
        /// Directory in which the per-launch socket directory is made (short: socket paths ≤ 107 bytes).
        public var socketParent: String = "/tmp"
        /// How long the child has to connect.
        public var connectTimeout: Duration = .seconds(15)
        /// How long the child has to exit after SIGTERM before it is killed.
        public var terminateGrace: Duration = .seconds(2)
        /// Channel limits for the connection.
        public var limits: ChannelLimits = .default
        /// Makes the development attestor that answers this launch's attestation request (opens
        /// the CA, measures the binary: a changed binary gets a changed PCR0). Called for every
        /// launch, on its own thread as soon as the child is spawned, so the measurement overlaps
        /// the child's start and key generation instead of following them. Its argument is the
        /// path of the sealed in-memory copy of `executablePath` that the child was started from
        /// (a `SealedExecutable`), not `executablePath`: reviews renamed another binary over the
        /// path right after the spawn, and started one that executes the allowed binary after
        /// running its own code; measured by path or by `/proc/PID/exe`, each got the keys.
        public var attestor: (@Sendable (_ runningExecutable: String) throws -> any Attestor)?

        public init(executablePath: String) {
            self.executablePath = executablePath
        }
    }

    public let configuration: Configuration

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// The child's arguments for a socket at `socketPath`.
    public func arguments(socketPath: String) -> [String] {
        configuration.leadingArguments + ["--connect", "unix:\(socketPath)"] + configuration.extraArguments
    }

    public func launch(jobID: String) throws(EnclaveLaunchError) -> any EnclaveInstance {
        var template = Array("\(configuration.socketParent)/cleanroom-enclave-XXXXXX".utf8CString)
        guard let dirPointer = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw EnclaveLaunchError(.socket, "could not create a socket directory under \(configuration.socketParent)")
        }
        let directory = String(cString: dirPointer)
        let socketPath = directory + "/channel.sock"
        defer {
            unlink(socketPath)
            rmdir(directory)
        }
        let listener: Int32
        do {
            listener = try ChannelSocket.listen(.unix(path: socketPath))
        } catch {
            throw EnclaveLaunchError(.socket, error.message)
        }
        defer { close(listener) }

        // The child runs a sealed copy of the binary, and the attestor measures that copy: the
        // file at the path may be replaced at any moment, and a program there could run its own
        // code and then execute the allowed binary, so neither the path nor the child's
        // /proc/PID/exe later names what started.
        let image: SealedExecutable
        do {
            image = try SealedExecutable(copying: configuration.executablePath)
        } catch {
            throw EnclaveLaunchError(.spawnFailed, error.description)
        }
        let child = try ChildProcess.launch(
            image: image, argv0: configuration.executablePath, arguments: arguments(socketPath: socketPath),
            environment: configuration.environment, outputPath: configuration.logPath)
        let attestation: LocalAttestation? = configuration.attestor.map { make in
            let prepared = PreparedAttestor(making: { try make(image.path) })  // keeps the copy open until measured
            return { publicKey, userData, nonce in
                try prepared.get().attestationDocument(publicKey: publicKey, userData: userData, nonce: nonce)
            }
        }
        do {
            let fd = try ChannelSocket.accept(
                listener, deadline: .now + configuration.connectTimeout, stillWaiting: { child.isRunning })
            return LocalEnclave(
                child: child, connection: ChannelConnection(fileDescriptor: fd, limits: configuration.limits),
                grace: configuration.terminateGrace, localAttestation: attestation)
        } catch {
            let status = child.terminate(grace: .zero)
            if error.code == .timeout {
                throw EnclaveLaunchError(
                    .connectTimeout,
                    "the enclave process did not connect within \(configuration.connectTimeout); it was terminated")
            }
            throw EnclaveLaunchError(.exitedEarly, "the enclave process \(status) before connecting")
        }
    }
}

/// A `cleanroom-enclave` child process and its channel.
final class LocalEnclave: EnclaveInstance, @unchecked Sendable {
    let child: ChildProcess
    let connection: ChannelConnection
    let grace: Duration
    let localAttestation: LocalAttestation?

    init(child: ChildProcess, connection: ChannelConnection, grace: Duration, localAttestation: LocalAttestation?) {
        self.child = child
        self.connection = connection
        self.grace = grace
        self.localAttestation = localAttestation
    }

    deinit { terminate() }

    var summary: String { "local pid \(child.pid)" }

    func isAlive() -> Bool { child.isRunning }

    func terminate() {
        connection.shutdown()
        child.terminate(grace: grace)
        connection.close()
    }
}

/// An attestor being made on its own thread; `get` waits for it.
final class PreparedAttestor: @unchecked Sendable {
    private let condition = NSCondition()
    private var result: Result<any Attestor, any Error>?

    init(making make: @escaping @Sendable () throws -> any Attestor) {
        let thread = Thread { [self] in
            Thread.current.name = "development-attestor"  // named from inside: on Linux a name set before start is lost
            let made = Result { try make() }
            condition.withLock {
                result = made
                condition.broadcast()
            }
        }
        thread.start()
    }

    func get() throws -> any Attestor {
        try condition.withLock {
            while result == nil { condition.wait() }
            return try result!.get()
        }
    }
}
