#if canImport(Glibc)
import Glibc
#endif
import Attestation
import Enclave
import Foundation
import Spawn

/// Local mode: runs `cleanroom-enclave` as a child process that connects back over a Unix socket
/// in a fresh private directory (mode 0700), which is removed once the enclave has connected.
/// The directory names the server that made it (its `owner` file: `SocketDirectoryOwner`), so
/// that a server starting later can remove the directories of servers killed mid-launch
/// (`removeAbandonedSocketDirectories`) and never one of a server still running.
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
        let ownerPath = directory + "/" + Self.ownerFileName
        // Best effort: a directory without its owner is removed only once it is far older than any launch.
        SocketDirectoryOwner.current?.write(to: ownerPath)
        defer {
            unlink(socketPath)
            unlink(ownerPath)
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

// MARK: Socket directories left by servers that are gone

extension LocalEnclaveLauncher {
    /// Name prefix of the per-launch socket directories (`mkdtemp` adds six characters).
    public static let socketDirectoryPrefix = "cleanroom-enclave-"
    /// The file in a socket directory that names the server that made it.
    static let ownerFileName = "owner"
    /// A socket directory without a readable owner (made by a server before owners were written, or
    /// whose owner could not be written) is removed once it is this old: a directory lives only
    /// while its launch waits for the enclave to connect (`connectTimeout`, 15 s by default).
    public static let unownedSocketDirectoryAge: TimeInterval = 3600

    /// Removes the socket directories under `parent` that servers now gone left (a server killed
    /// while an enclave started): those of this user whose owner has exited (its pid is gone, or
    /// now belongs to a process started at another time, or the machine has booted since), and
    /// those without an owner that are older than `unownedOlderThan`. Never one whose owner is
    /// running, nor one whose owner lives in another pid namespace (it cannot be checked from here),
    /// nor anything not a directory of this user. Returns the paths removed.
    public static func removeAbandonedSocketDirectories(
        under parent: String, unownedOlderThan: TimeInterval = unownedSocketDirectoryAge, now: Date = Date()
    ) -> [String] {
        var removed: [String] = []
        let names = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
        for name in names.sorted() where name.hasPrefix(socketDirectoryPrefix) {
            let path = parent + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == geteuid() else { continue }
            let abandoned: Bool
            if let owner = SocketDirectoryOwner(contentsOf: path + "/" + ownerFileName) {
                abandoned = owner.isRunning() == false
            } else {
                abandoned = now.timeIntervalSince1970 - Double(info.st_mtim.tv_sec) > unownedOlderThan
            }
            if abandoned, (try? FileManager.default.removeItem(atPath: path)) != nil { removed.append(path) }
        }
        return removed
    }
}

/// The process that made a socket directory, told apart from any later process with the same pid:
/// its start time (clock ticks after boot, `/proc/PID/stat` field 22), the boot it ran in
/// (`/proc/sys/kernel/random/boot_id`) and its pid namespace (`/proc/self/ns/pid`). Written as one
/// line, `pid start boot namespace`.
struct SocketDirectoryOwner: Equatable, Sendable {
    var pid: pid_t
    var startTime: UInt64
    var bootID: String
    var pidNamespace: String

    /// This process.
    static let current: SocketDirectoryOwner? = {
        guard let start = startTime(of: getpid()), let boot = bootID, let namespace = pidNamespace else { return nil }
        return SocketDirectoryOwner(pid: getpid(), startTime: start, bootID: boot, pidNamespace: namespace)
    }()

    init(pid: pid_t, startTime: UInt64, bootID: String, pidNamespace: String) {
        self.pid = pid
        self.startTime = startTime
        self.bootID = bootID
        self.pidNamespace = pidNamespace
    }

    /// Reads an owner file; nil if it is missing or not an owner line.
    init?(contentsOf path: String) {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0 else { return nil }
        let fields = String(decoding: buffer[..<n], as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count == 4, let pid = pid_t(fields[0]), pid > 0, let start = UInt64(fields[1]) else { return nil }
        self.init(pid: pid, startTime: start, bootID: String(fields[2]), pidNamespace: String(fields[3]))
    }

    var line: String { "\(pid) \(startTime) \(bootID) \(pidNamespace)\n" }

    /// Writes the owner file (new, 0600); false if it could not be.
    @discardableResult
    func write(to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let bytes = Array(line.utf8)
        return Glibc.write(fd, bytes, bytes.count) == bytes.count
    }

    /// Whether the owner still runs: false if it has exited (pid gone, a zombie, the pid reused by a
    /// process started at another time, or another boot); nil if that cannot be told from here
    /// (another pid namespace, /proc unreadable).
    func isRunning() -> Bool? {
        guard let namespace = Self.pidNamespace, let boot = Self.bootID, namespace == pidNamespace else { return nil }
        guard boot == bootID else { return false }
        let path = "/proc/\(pid)/stat"
        guard let fields = ProcessStat.fields(path) else { return access(path, F_OK) == 0 || errno != ENOENT ? nil : false }
        guard fields.count > 19, let start = UInt64(fields[19]) else { return nil }
        if fields[0] == "Z" || fields[0] == "X" { return false }  // exited, not yet reaped
        return start == startTime
    }

    /// The start time of a process, from `/proc/PID/stat`.
    static func startTime(of pid: pid_t) -> UInt64? {
        guard let fields = ProcessStat.fields("/proc/\(pid)/stat"), fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }

    static var bootID: String? {
        (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `pid:[INODE]`.
    static var pidNamespace: String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/pid")
    }
}
