import CSystemIO
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn` that this object reaps: the server's enclave
/// launchers (the local `cleanroom-enclave`, `nitro-cli`) and the tests' servers and tools.
///
/// The child starts with a clean signal mask and default signal dispositions (a parent's blocked
/// signals are not inherited; Foundation's `Process` passes them on), stdin from /dev/null, and,
/// unless told otherwise, in its own process group. `terminate(grace:)` sends SIGTERM to the group,
/// waits up to `grace`, then SIGKILLs it and reaps the child, so no zombie or stray grandchild
/// remains. Deinit terminates a still-running child as a last resort. Only this object calls
/// `waitpid` for its pid.
public final class ChildProcess: Sendable {
    /// How a child ended.
    public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        init(waitStatus status: Int32) {
            let signal = status & 0x7F
            self = signal == 0 ? .exited((status >> 8) & 0xFF) : .signaled(signal)
        }

        /// The status as a shell reports it: the exit code, or 128 + the signal.
        public var code: Int32 {
            switch self {
            case .exited(let code): code
            case .signaled(let signal): 128 + signal
            }
        }

        public var description: String {
            switch self {
            case .exited(let code): "exited with status \(code)"
            case .signaled(let signal): "killed by signal \(signal)"
            }
        }
    }

    /// Where the child's stdout or stderr goes.
    public enum Output: Sendable, Equatable {
        /// This process's own.
        case inherit
        /// A file, created with mode 0600 if missing, appended to or truncated first.
        case file(String, append: Bool)
        /// stderr only: wherever stdout goes.
        case stdout
    }

    /// Why a child could not be started.
    public struct SpawnError: Error, CustomStringConvertible {
        public let description: String
    }

    public let pid: pid_t
    /// Whether the child leads its own process group (then signals go to the group).
    private let ownProcessGroup: Bool
    /// How the child ended, once it has been reaped.
    private let status = Mutex<ExitStatus?>(nil)

    private init(pid: pid_t, ownProcessGroup: Bool) {
        self.pid = pid
        self.ownProcessGroup = ownProcessGroup
    }

    deinit {
        if status.withLock({ $0 }) == nil { _ = terminate(grace: .zero) }
    }

    /// Starts `executable` with `arguments` and exactly `environment` (nothing inherited).
    /// stdin is /dev/null; stdout and stderr go where `stdout` and `stderr` say; no other descriptor
    /// of this process (or of whatever started it) reaches the child. With `ownProcessGroup`, the
    /// child leads a new process group, which `terminate` signals whole.
    public static func spawn(
        executable: String, arguments: [String], environment: [String: String], stdout: Output = .inherit,
        stderr: Output = .stdout, ownProcessGroup: Bool = true
    ) throws(SpawnError) -> ChildProcess {
        try spawn(
            path: executable, argv0: executable, image: nil, arguments: arguments, environment: environment,
            stdout: stdout, stderr: stderr, ownProcessGroup: ownProcessGroup)
    }

    /// Starts the program in `image`, exactly those bytes, as `argv0`: the child gets the sealed copy
    /// as its descriptor 3 and executes `/proc/self/fd/3` (a script's interpreter then reads it
    /// there too). Otherwise as `spawn(executable:…)`.
    public static func spawn(
        image: SealedExecutable, argv0: String, arguments: [String], environment: [String: String],
        stdout: Output = .inherit, stderr: Output = .stdout, ownProcessGroup: Bool = true
    ) throws(SpawnError) -> ChildProcess {
        try spawn(
            path: "/proc/self/fd/3", argv0: argv0, image: image, arguments: arguments, environment: environment,
            stdout: stdout, stderr: stderr, ownProcessGroup: ownProcessGroup)
    }

    private static func spawn(
        path executable: String, argv0: String, image: SealedExecutable?, arguments: [String],
        environment: [String: String], stdout: Output, stderr: Output, ownProcessGroup: Bool
    ) throws(SpawnError) -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        for (fd, output) in [(Int32(1), stdout), (2, stderr)] {
            switch output {
            case .inherit: break
            case .file(let path, let append):
                posix_spawn_file_actions_addopen(&actions, fd, path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0o600)
            case .stdout:
                if fd == 2, stdout != .inherit { posix_spawn_file_actions_adddup2(&actions, 1, 2) }
            }
        }
        // Descriptors without close-on-exec (this process's, or inherited from its own parent)
        // would otherwise reach the enclave; only 0–2, and the image as 3, do.
        if let image { posix_spawn_file_actions_adddup2(&actions, image.fileDescriptor, 3) }
        _ = csystemio_spawn_closefrom(&actions, image == nil ? 3 : 4)
        // Default signal dispositions, an empty mask, and (if asked) its own process group.
        var defaultSignals = sigset_t(), emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        sigfillset(&defaultSignals)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16((ownProcessGroup ? POSIX_SPAWN_SETPGROUP : 0) | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([argv0] + arguments).map { strdup($0) }
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") }
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = (argv + [nil]).withUnsafeBufferPointer { argvBuffer in
            (envp + [nil]).withUnsafeBufferPointer { envpBuffer in
                posix_spawn(
                    &pid, executable, &actions, &attributes,
                    UnsafeMutablePointer(mutating: argvBuffer.baseAddress!),
                    UnsafeMutablePointer(mutating: envpBuffer.baseAddress!))
            }
        }
        guard result == 0 else {
            throw SpawnError(description: "could not start \(executable): \(String(cString: strerror(result)))")
        }
        return ChildProcess(pid: pid, ownProcessGroup: ownProcessGroup)
    }

    /// The exit status if the child has ended (reaping it), nil while it runs.
    public func poll() -> ExitStatus? {
        status.withLock { status in Self.reap(pid, &status, options: WNOHANG) }
    }

    /// Whether the child is still running.
    public var isRunning: Bool { poll() == nil }

    /// Waits up to `timeout` for the child to end by itself.
    public func wait(timeout: Duration) -> ExitStatus? {
        let start = ContinuousClock.now
        let deadline = start + timeout
        while true {
            if let status = poll() { return status }
            let now = ContinuousClock.now
            guard now < deadline else { return nil }
            // A child that is already exiting (the usual case after a job) is seen within 1 ms.
            usleep(now - start < .milliseconds(100) ? 1_000 : 10_000)
        }
    }

    /// Waits for the child to end, however long that takes, and reaps it. The wait holds no lock
    /// (`WNOWAIT` leaves the child to `poll`), so other threads may signal or poll meanwhile.
    @discardableResult
    public func waitForExit() -> ExitStatus {
        while true {
            if let status = poll() { return status }
            var info = siginfo_t()
            if waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0, errno != EINTR {
                return poll() ?? .exited(-1)  // ECHILD: reaped already
            }
        }
    }

    /// Sends `signal` to the child (and its group when it leads one), unless it has been reaped
    /// (its pid may then be another process's).
    public func signal(_ signal: Int32) {
        status.withLock { status in
            guard status == nil else { return }
            if ownProcessGroup { _ = killpg(pid, signal) }
            _ = kill(pid, signal)  // also before the child has made its group
        }
    }

    /// Ends the child: SIGTERM (to its process group when it leads one), up to `grace` to exit,
    /// then SIGKILL; reaps it.
    @discardableResult
    public func terminate(grace: Duration = .seconds(2)) -> ExitStatus {
        if let status = poll() {
            if ownProcessGroup { _ = killpg(pid, SIGKILL) }  // stray grandchildren, if any
            return status
        }
        signal(SIGTERM)
        if grace > .zero, let status = wait(timeout: grace) {
            if ownProcessGroup { _ = killpg(pid, SIGKILL) }
            return status
        }
        signal(SIGKILL)
        return waitForExit()
    }

    private static func reap(_ pid: pid_t, _ status: inout ExitStatus?, options: Int32) -> ExitStatus? {
        if let status { return status }
        var raw: Int32 = 0
        while true {
            let result = waitpid(pid, &raw, options)
            if result == pid {
                status = ExitStatus(waitStatus: raw)
                return status
            }
            if result == 0 { return nil }
            if errno == EINTR { continue }
            // ECHILD: someone else reaped it; treat as gone.
            status = .exited(-1)
            return status
        }
    }
}
