import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real `cleanroomd serve` child process on a loopback address, for tests over real sockets: its
/// own data directory, its stderr and stdout appended to files across restarts, restartable on the
/// same data directory (and port), and killed if it is still running when released.
public final class CleanroomdProcess: @unchecked Sendable {
    public let dataDirectory: URL
    public let stderrURL: URL
    public let stdoutURL: URL
    private let lock = NSLock()
    private var child: ChildProcess?
    private var listening: (scheme: String, port: Int)

    /// `dataDirectory`: a fresh temporary one unless given. `keepsPort`: a free port is picked now,
    /// so `url` is known before the first start (otherwise the kernel picks one at the first start).
    /// A restart listens on the same port either way.
    public init(dataDirectory: URL? = nil, keepsPort: Bool = false) throws {
        let folder = try TestEnvironment.temporaryDirectory("cleanroomd")
        self.dataDirectory = dataDirectory ?? folder.appendingPathComponent("data")
        stderrURL = folder.appendingPathComponent("stderr")
        stdoutURL = folder.appendingPathComponent("stdout")
        listening = ("http", keepsPort ? try TestEnvironment.freePort() : 0)
    }

    /// Starts a server (data directory and port chosen here unless the arguments or the environment
    /// set them) from a thread of its own.
    public static func start(arguments: [String] = [], environment: [String: String] = [:]) async throws -> CleanroomdProcess {
        let given = arguments.firstIndex(of: "--data-dir").map { arguments[arguments.index(after: $0)] }
        let dataDirectory = (given ?? environment["CLEANROOM_DATA_DIR"]).map { URL(fileURLWithPath: $0) }
        return try await offPool {
            let server = try CleanroomdProcess(dataDirectory: dataDirectory)
            try server.start(arguments: arguments, environment: environment)
            return server
        }
    }

    /// The port it listens on (the one it reported, after a start on port 0).
    public var port: Int { lock.withLock { listening.port } }
    /// `http`, or `https` when it was started with TLS.
    public var scheme: String { lock.withLock { listening.scheme } }
    public var url: String { "\(scheme)://127.0.0.1:\(port)" }
    /// Its process id while it runs.
    public var pid: pid_t? { lock.withLock { child?.pid } }
    public var isRunning: Bool { lock.withLock { child?.isRunning ?? false } }
    /// Everything it wrote to stderr (status lines, logs) and stdout (the access log), every start.
    public var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }
    public var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }

    /// Starts `cleanroomd serve` with this process's environment plus `environment`, and waits until
    /// it reports its listen address. `--data-dir` and `--listen` are added unless `arguments` or
    /// `environment` (`CLEANROOM_DATA_DIR`, `CLEANROOM_LISTEN`) set them. `wrapper`: a command to
    /// start the server under (its arguments then `cleanroomd serve …`), which must end by executing
    /// them in the same process (e.g. `unshare -Urm sh -c '… && exec "$@"'`), so `pid` is the server's.
    public func start(arguments: [String] = [], environment: [String: String] = [:], wrapper: [String] = []) throws {
        precondition(!isRunning, "the server is already running")
        var all = ["serve"]
        if !arguments.contains("--data-dir") && environment["CLEANROOM_DATA_DIR"] == nil {
            all += ["--data-dir", dataDirectory.path]
        }
        if !arguments.contains("--listen") && environment["CLEANROOM_LISTEN"] == nil {
            all += ["--listen", "127.0.0.1:\(port)"]
        }
        let before = stderr.utf8.count
        let executable = try TestEnvironment.executable("cleanroomd")
        let started: ChildProcess
        do {
            started = try ChildProcess.spawn(
                executable: wrapper.first ?? executable,
                arguments: wrapper.isEmpty ? all + arguments : Array(wrapper.dropFirst()) + [executable] + all + arguments,
                environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
                stdout: .file(stdoutURL.path, append: true), stderr: .file(stderrURL.path, append: true),
                ownProcessGroup: false)
        } catch {
            throw TestEnvironmentError(error.description)
        }
        lock.withLock { child = started }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let text = String(stderr.utf8.dropFirst(before)) ?? ""
            if let range = text.range(of: #"listening on (https?)://[^ ]*:(\d+)"#, options: .regularExpression) {
                let line = text[range]
                let reported = (line.contains("https://") ? "https" : "http", Int(line.split(separator: ":").last!)!)
                lock.withLock { listening = reported }
                return
            }
            if !started.isRunning { throw TestEnvironmentError("cleanroomd exited early: \(text)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        started.kill()
        throw TestEnvironmentError("cleanroomd did not start listening within 60 s: \(stderr)")
    }

    /// Sends `signal` (SIGTERM: a graceful stop; SIGKILL: a crash) and waits for the exit status;
    /// killed after `timeout` seconds. 0 when it was not running.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, timeout: Double = 60) -> Int32 {
        guard let running = lock.withLock({ child }) else { return 0 }
        running.signal(signal)
        let status = running.wait(timeout: .milliseconds(Int64(timeout * 1000))) ?? running.terminate(grace: .zero)
        lock.withLock { if child === running { child = nil } }
        return status.code
    }

    /// `stop` on a thread of its own.
    public func stopped() async -> Int32 { (try? await offPool { self.stop() }) ?? -1 }

    /// SIGTERM now; the exit is waited for on a background thread.
    public func stopInBackground() {
        signal(SIGTERM)
        Thread { self.stop() }.start()
    }

    /// Sends `sig` to the server while it runs.
    public func signal(_ sig: Int32) { lock.withLock { child }?.signal(sig) }

    /// Resident set size in KiB (from /proc), 0 when not running.
    public var rssKiB: Int {
        guard let pid else { return 0 }
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }

    /// The operator's bootstrap token from the data directory.
    public func operatorToken() throws -> String {
        let data = try Data(contentsOf: dataDirectory.appendingPathComponent("operator-credentials.json"))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any], let token = object["token"] as? String
        else { throw TestEnvironmentError("operator-credentials.json has no token") }
        return token
    }

    deinit { lock.withLock { child }?.kill() }
}
