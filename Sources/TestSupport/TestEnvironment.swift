import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Paths and peers that tests share: the repository root, `../shared/vectors`, the Python
/// virtual environment that `make test` fills, and the built executables.
///
/// Tests read vectors from `../shared` by path (never copies) and fail — not skip — with a
/// message saying to run `make test` when a peer is missing.
public enum TestEnvironment {
    /// The package root, found from this file's location.
    public static let repoRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // Sources/TestSupport/TestEnvironment.swift
        return url
    }()

    /// `../shared/vectors` beside the repository.
    public static var vectors: URL {
        repoRoot.deletingLastPathComponent().appendingPathComponent("shared/vectors")
    }

    /// A file under `../shared/vectors`, e.g. `vector("nitro/expected.json")`.
    public static func vector(_ relativePath: String) -> URL {
        vectors.appendingPathComponent(relativePath)
    }

    /// The Python interpreter of the test virtual environment (`CLEANROOM_PYTHON`, else `.venv/bin/python`).
    public static func python() throws -> String {
        let candidates = [ProcessInfo.processInfo.environment["CLEANROOM_PYTHON"], repoRoot.path + "/.venv/bin/python"]
        for case let path? in candidates where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        throw TestEnvironmentError("no Python test environment at .venv/bin/python: run `make test` (or `make python-deps`) first")
    }

    /// A built executable of this package (`cleanroomd`, `cleanroom`, `cleanroom-enclave`) from the
    /// build folder the tests themselves were built into.
    public static func executable(_ name: String) throws -> String {
        let testBundle = Bundle.main.bundleURL  // .build/<triple>/debug
        for dir in [testBundle, testBundle.deletingLastPathComponent()] {
            let path = dir.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        let fallback = repoRoot.appendingPathComponent(".build/debug/\(name)").path
        if FileManager.default.isExecutableFile(atPath: fallback) { return fallback }
        throw TestEnvironmentError("executable \(name) is not built: run `swift build` first")
    }

    /// A fresh temporary directory, removed by the caller (or left for inspection on failure).
    public static func temporaryDirectory(_ prefix: String = "cleanroom-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A loopback port the kernel just handed out (bound and released).
    public static func freePort() throws -> Int {
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
}

/// A test environment problem, with what to do about it.
public struct TestEnvironmentError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
