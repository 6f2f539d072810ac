import Foundation
import TestSupport
import Testing

@testable import Crypto

/// Hex literal to bytes (test inputs only).
func hex(_ text: String) -> [UInt8] {
    guard let bytes = Hex.decode(text.filter { !$0.isWhitespace }) else { fatalError("bad hex in test: \(text)") }
    return bytes
}

func utf8(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Expects `body` to throw a `CryptoError` with `code`.
func expectCryptoError<T>(
    _ code: CryptoError.Code, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T
) {
    do {
        _ = try body()
        Issue.record("expected CryptoError \(code), but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as CryptoError {
        #expect(error.code == code, "got \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected CryptoError \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

/// The `openssl` command line tool, the independent peer for interop tests.
enum OpenSSLCLI {
    static func path() throws -> String {
        for candidate in ["/usr/bin/openssl", "/usr/local/bin/openssl"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        throw TestEnvironmentError("the openssl command line tool is missing: apt-get install openssl")
    }

    /// Runs `openssl args...` in `directory`, failing the test with stderr when it exits non-zero.
    @discardableResult
    static func run(_ arguments: [String], in directory: URL, stdin: Data? = nil) throws -> ProcessResult {
        let result = try ProcessRunner.run(try path(), arguments, stdin: stdin, currentDirectory: directory)
        guard result.status == 0 else {
            throw TestEnvironmentError("openssl \(arguments.joined(separator: " ")) failed: \(result.stderrText)")
        }
        return result
    }
}

/// A scratch directory removed at the end of the scope.
func withTemporaryDirectory<R>(_ body: (URL) throws -> R) throws -> R {
    let dir = try TestEnvironment.temporaryDirectory("crypto")
    defer { try? FileManager.default.removeItem(at: dir) }
    return try body(dir)
}

extension URL {
    func write(_ bytes: [UInt8]) throws { try Data(bytes).write(to: self) }
    func write(_ text: String) throws { try Data(text.utf8).write(to: self) }
    func readBytes() throws -> [UInt8] { Array(try Data(contentsOf: self)) }
    func readText() throws -> String { String(decoding: try Data(contentsOf: self), as: UTF8.self) }
}

/// A file under `../shared/vectors`, or a clear error naming the missing path.
func vectorBytes(_ relativePath: String) throws -> [UInt8] {
    let url = TestEnvironment.vector(relativePath)
    guard let data = FileManager.default.contents(atPath: url.path) else {
        throw TestEnvironmentError("test vector missing: \(url.path) (the shared vectors live beside the repository)")
    }
    return Array(data)
}
