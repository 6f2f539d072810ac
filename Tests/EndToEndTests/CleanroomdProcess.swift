import Foundation
import TestSupport

/// A real `cleanroomd serve` process on a free local port with its own data directory.
final class CleanroomdProcess: @unchecked Sendable {
    let dataDirectory: URL
    let port: Int
    private(set) var process: Process?
    var url: String { "http://127.0.0.1:\(port)" }

    init(dataDirectory: URL? = nil) throws {
        self.dataDirectory = try dataDirectory ?? TestEnvironment.temporaryDirectory("cleanroomd-data")
        port = try Self.freePort()
    }

    /// A port the kernel just handed out (bound and released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(fd, pointer, length) == 0 else { return -1 }
                return getsockname(fd, pointer, &length)
            }
        }
        guard bound == 0 else { throw TestEnvironmentError("cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Starts the server and waits until `/healthz` answers.
    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestEnvironment.executable("cleanroomd"))
        process.arguments = ["serve", "--data-dir", dataDirectory.path, "--listen", "127.0.0.1:\(port)"]
        process.environment = ProcessInfo.processInfo.environment
        let log = dataDirectory.deletingLastPathComponent().appendingPathComponent("\(dataDirectory.lastPathComponent).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if !process.isRunning {
                throw TestEnvironmentError("cleanroomd exited: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
            }
            if let result = try? ProcessRunner.run("/usr/bin/curl", ["-sf", "-m", "1", "\(url)/healthz"]), result.status == 0 {
                return
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw TestEnvironmentError("cleanroomd did not become healthy: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
    }

    /// Stops the server: SIGTERM (graceful) by default, or SIGKILL to simulate a crash.
    func stop(signal: Int32 = SIGTERM) {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        self.process = nil
    }

    deinit { stop(signal: SIGKILL) }

    /// The operator's bootstrap token from the data directory.
    func operatorToken() throws -> String {
        let data = try Data(contentsOf: dataDirectory.appendingPathComponent("operator-credentials.json"))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any], let token = object["token"] as? String
        else { throw TestEnvironmentError("operator-credentials.json has no token") }
        return token
    }
}

/// Runs `cleanroom` (the party CLI) or `cleanroomd` and returns the result, failing on a non-zero exit.
enum CLI {
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], expectStatus: Int32? = 0)
        throws -> ProcessResult
    {
        let result = try ProcessRunner.run(try TestEnvironment.executable(executable), arguments, environment: environment)
        if let expectStatus, result.status != expectStatus {
            throw TestEnvironmentError(
                "\(executable) \(arguments.joined(separator: " ")) exited \(result.status) (expected \(expectStatus)):\n\(result.stdoutText)\n\(result.stderrText)")
        }
        return result
    }

    static func json(_ result: ProcessResult) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any] else {
            throw TestEnvironmentError("not a JSON object: \(result.stdoutText)")
        }
        return object
    }
}
