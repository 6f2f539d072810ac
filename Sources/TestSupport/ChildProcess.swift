import Foundation
@_exported import Spawn

#if canImport(Glibc)
    import Glibc
#endif

/// The tests' side of `Spawn.ChildProcess`: servers and tools started with this process's
/// environment plus some variables, their output in files, and signals sent to the child alone.
/// (Foundation's `Process` hands children the test runner's blocked-signal mask, and its
/// `waitUntilExit` can stall under Swift Testing's parallel runner.)
extension ChildProcess {
    /// Starts `path` with this process's environment overridden by `environment`; stdout and
    /// stderr go to (truncated) files.
    public static func start(
        _ path: String, _ args: [String], environment: [String: String] = [:], stdout: String, stderr: String
    ) throws -> ChildProcess {
        do {
            return try spawn(
                executable: path, arguments: args,
                environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
                stdout: .file(stdout, append: false), stderr: .file(stderr, append: false), ownProcessGroup: false)
        } catch {
            throw TestEnvironmentError(error.description)
        }
    }

    /// Waits for the exit status (blocking this thread): the exit code, or 128 + the signal.
    @discardableResult
    public func wait() -> Int32 { waitForExit().code }

    /// Sends `signal` (SIGKILL unless told) to the child, if it has not been reaped.
    public func kill(_ signal: Int32 = SIGKILL) { self.signal(signal) }

    /// Runs to completion and returns status, stdout and stderr.
    public static func run(_ path: String, _ args: [String], environment: [String: String] = [:]) throws
        -> (status: Int32, stdout: String, stderr: String)
    {
        let dir = try TestEnvironment.temporaryDirectory("child")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path, err = dir.appendingPathComponent("err").path
        let child = try start(path, args, environment: environment, stdout: out, stderr: err)
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
        try await offPool { try python(script, args, environment: environment) }
    }
}
