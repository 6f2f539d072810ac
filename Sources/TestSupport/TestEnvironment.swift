import Foundation

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
}

/// A test environment problem, with what to do about it.
public struct TestEnvironmentError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
