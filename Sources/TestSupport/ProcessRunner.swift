import Foundation

/// The outcome of a finished child process.
public struct ProcessResult: Sendable {
    public let status: Int32
    public let stdout: Data
    public let stderr: Data
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// Runs real child processes for tests (Python peers, our own executables).
public enum ProcessRunner {
    /// Runs `executable` with `arguments`, feeding `stdin`, and waits for it to exit.
    /// Output is collected through files so large outputs cannot deadlock the pipes.
    @discardableResult
    public static func run(
        _ executable: String, _ arguments: [String], stdin: Data? = nil,
        environment: [String: String]? = nil, currentDirectory: URL? = nil
    ) throws -> ProcessResult {
        let dir = try TestEnvironment.temporaryDirectory("proc")
        defer { try? FileManager.default.removeItem(at: dir) }
        let outURL = dir.appendingPathComponent("out"), errURL = dir.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        if let currentDirectory { process.currentDirectoryURL = currentDirectory }
        let outHandle = try FileHandle(forWritingTo: outURL), errHandle = try FileHandle(forWritingTo: errURL)
        process.standardOutput = outHandle
        process.standardError = errHandle
        let inPipe = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : inPipe
        try process.run()
        if let stdin {
            try inPipe.fileHandleForWriting.write(contentsOf: stdin)
            try inPipe.fileHandleForWriting.close()
        }
        process.waitUntilExit()
        try outHandle.close()
        try errHandle.close()
        return ProcessResult(
            status: process.terminationStatus,
            stdout: try Data(contentsOf: outURL), stderr: try Data(contentsOf: errURL))
    }

    /// Runs a Python snippet in the test virtual environment.
    @discardableResult
    public static func python(_ script: String, _ arguments: [String] = [], stdin: Data? = nil) throws -> ProcessResult {
        try run(try TestEnvironment.python(), ["-c", script] + arguments, stdin: stdin)
    }
}

/// `ProcessRunner.run` on a thread of its own.
public func runProcess(
    _ executable: String, _ arguments: [String], stdin: Data? = nil, currentDirectory: URL? = nil
) async throws -> ProcessResult {
    try await offPool { try ProcessRunner.run(executable, arguments, stdin: stdin, currentDirectory: currentDirectory) }
}
