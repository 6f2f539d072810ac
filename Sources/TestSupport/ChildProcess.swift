import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started with posix_spawn and a clean signal mask, reaped with waitpid.
/// (Foundation's `Process` hands children the test runner's blocked-signal mask, and its
/// `waitUntilExit` can stall under Swift Testing's parallel runner.)
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    private var reaped: Int32?

    public init(_ path: String, _ args: [String], environment: [String: String] = [:], stdout: String, stderr: String) throws {
        var fa = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fa)
        defer { posix_spawn_file_actions_destroy(&fa) }
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&fa, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&fa, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0.key)=\($0.value)" }
        let argv = ([path] + args).map { strdup($0) } + [nil]
        let envp = env.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var p: pid_t = 0
        let rc = posix_spawn(&p, path, &fa, &attr, argv, envp)
        guard rc == 0 else { throw TestEnvironmentError("cannot start \(path): \(String(cString: strerror(rc)))") }
        pid = p
    }

    /// Waits for the exit status (blocking this thread).
    @discardableResult
    public func wait() -> Int32 {
        if let reaped { return reaped }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        reaped = code
        return code
    }

    public func kill(_ signal: Int32 = SIGKILL) {
        if reaped == nil { Glibc.kill(pid, signal) }
    }

    /// True until the child has exited (reaps it without blocking once it has).
    public var isRunning: Bool {
        if reaped != nil { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid {
            reaped = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            return false
        }
        return true
    }

    /// Runs to completion and returns status, stdout and stderr.
    public static func run(_ path: String, _ args: [String], environment: [String: String] = [:]) throws
        -> (status: Int32, stdout: String, stderr: String)
    {
        let dir = try TestEnvironment.temporaryDirectory("child")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path, err = dir.appendingPathComponent("err").path
        let child = try ChildProcess(path, args, environment: environment, stdout: out, stderr: err)
        let status = child.wait()
        return (
            status, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        )
    }

    /// Runs a Python snippet in the test virtual environment.
    public static func python(_ script: String, _ args: [String] = [], environment: [String: String] = [:]) throws
        -> (status: Int32, stdout: String, stderr: String)
    {
        try run(try TestEnvironment.python(), ["-c", script] + args, environment: environment)
    }

    /// `python` on a dedicated thread, so a test never blocks a cooperative-pool thread that an
    /// in-process server (the one the script talks to) needs.
    public static func pythonOffPool(_ script: String, _ args: [String] = [], environment: [String: String] = [:]) async throws
        -> (status: Int32, stdout: String, stderr: String)
    {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Result { try python(script, args, environment: environment) })
            }
            thread.start()
        }
    }
}
