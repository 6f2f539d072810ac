import Foundation
import TestSupport

/// A real `cleanroomd serve` child process on 127.0.0.1:0, for tests over real sockets.
final class CleanroomdProcess: @unchecked Sendable {
    let process = Process()
    let dataDirectory: URL
    let stderrURL: URL
    let stdoutURL: URL
    private(set) var port = 0
    private(set) var scheme = "http"

    /// Starts the server and waits until it prints its listen address. `--data-dir` and `--listen`
    /// are passed unless `environment` sets `CLEANROOM_DATA_DIR` / `CLEANROOM_LISTEN` instead.
    init(arguments: [String] = [], dataDirectory: URL? = nil, environment: [String: String] = [:]) throws {
        let dir = try TestEnvironment.temporaryDirectory("cleanroomd")
        let fromEnvironment = environment["CLEANROOM_DATA_DIR"].map { URL(fileURLWithPath: $0) }
        self.dataDirectory = dataDirectory ?? fromEnvironment ?? dir.appendingPathComponent("data")
        stderrURL = dir.appendingPathComponent("stderr")
        stdoutURL = dir.appendingPathComponent("stdout")
        FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: try TestEnvironment.executable("cleanroomd"))
        var args = ["serve"]
        if dataDirectory != nil || fromEnvironment == nil { args += ["--data-dir", self.dataDirectory.path] }
        if !arguments.contains("--listen") && environment["CLEANROOM_LISTEN"] == nil { args += ["--listen", "127.0.0.1:0"] }
        process.arguments = args + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let text = stderr
            if let range = text.range(of: #"listening on (https?)://[^ ]*:(\d+)"#, options: .regularExpression) {
                let match = String(text[range])
                scheme = match.contains("https://") ? "https" : "http"
                port = Int(match.split(separator: ":").last!)!
                return
            }
            if !process.isRunning { throw TestEnvironmentError("cleanroomd exited early: \(text)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        process.terminate()
        throw TestEnvironmentError("cleanroomd did not start: \(stderr)")
    }

    /// Starts the server from a dedicated thread (never blocks the concurrency pool).
    static func start(arguments: [String] = [], environment: [String: String] = [:]) async throws -> CleanroomdProcess {
        try await offPool { try CleanroomdProcess(arguments: arguments, environment: environment) }
    }

    /// SIGTERM, then the exit status, waited for on a dedicated thread.
    func stopped() async -> Int32 { (try? await offPool { self.stop() }) ?? -1 }

    /// SIGTERM now; reaping happens on a background thread.
    func stopInBackground() {
        if process.isRunning { signal(SIGTERM) }
        Thread { self.stop() }.start()
    }

    var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }
    var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }

    /// Resident set size in KiB (from /proc).
    var rssKiB: Int {
        let status = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Sends SIGTERM and waits for the exit status.
    @discardableResult
    func stop(timeout: TimeInterval = 60) -> Int32 {
        if process.isRunning { signal(SIGTERM) }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        if process.isRunning {
            signal(SIGKILL)
            process.waitUntilExit()
        }
        return process.terminationStatus
    }

    deinit { if process.isRunning { stop() } }
}

/// `ProcessRunner.run` on a dedicated thread.
func runProcess(
    _ executable: String, _ arguments: [String], stdin: Data? = nil, currentDirectory: URL? = nil
) async throws -> ProcessResult {
    try await offPool { try ProcessRunner.run(executable, arguments, stdin: stdin, currentDirectory: currentDirectory) }
}

/// Runs blocking code on its own thread (never on the concurrency pool).
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }
        thread.start()
    }
}
