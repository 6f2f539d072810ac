// swift-tools-version:6.0
// The cleanroom package: see ../shared/DESIGN.md §3 for the module boundaries.
// Dependencies flow one way: formats and crypto at the bottom, I/O above them,
// the domain above that, executables on top as thin wiring.
import PackageDescription

let package = Package(
    name: "cleanroom",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "cleanroomd", targets: ["cleanroomd"]),
        .executable(name: "cleanroom", targets: ["cleanroom"]),
        .executable(name: "cleanroom-enclave", targets: ["cleanroom-enclave"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        // System-library shims. Only the I/O and crypto modules import these.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // Linux epoll/eventfd headers for the HTTP server's event loops (no library to link).
        .systemLibrary(name: "CSystemIO", path: "Sources/CSystemIO"),

        // Child processes: posix_spawn with a clean signal mask, reaped, terminated as a group.
        .target(name: "Spawn", dependencies: ["CSystemIO"]),
        // HTTP/1.1 over raw POSIX sockets (epoll), TLS via OpenSSL.
        .target(name: "HTTPServer", dependencies: ["COpenSSL", "CSystemIO", .product(name: "Logging", package: "swift-log")]),
        // Thin safe Swift over OpenSSL 3.
        .target(name: "Crypto", dependencies: ["COpenSSL"]),
        // AWS Encryption SDK message format and keyrings.
        .target(name: "Envelope", dependencies: ["Crypto"]),
        // CBOR, COSE_Sign1, Nitro attestation documents, verifier, NSM, development attestor.
        .target(name: "Attestation", dependencies: ["Crypto"]),
        // SigV4, libcurl HTTP client, S3 and KMS clients.
        .target(name: "AWS", dependencies: ["Crypto", "Envelope", "CCurl"]),
        // Embedded defaults: local KMS and file object store.
        .target(
            name: "LocalServices",
            dependencies: ["Crypto", "Envelope", "AWS", "Attestation", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // Training engine: tables, joins, linear models, GBDT, metrics, XGBoost JSON export.
        .target(name: "Training"),
        // Domain: parties, principals, datasets, policies, approvals, jobs, audit chain, storage.
        .target(
            name: "CleanRoom",
            dependencies: ["Crypto", "Envelope", "Attestation", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The enclave program's logic and its channel protocol.
        .target(name: "Enclave", dependencies: ["Crypto", "Envelope", "Attestation", "Training", "CleanRoom"]),
        // REST handlers, orchestration, key-release gate, enclave launcher.
        .target(
            name: "Server",
            dependencies: [
                "HTTPServer", "Crypto", "Envelope", "AWS", "LocalServices", "Attestation", "CleanRoom", "Enclave", "Spawn",
                .product(name: "Logging", package: "swift-log"), .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),

        // The exit-code convention both CLIs share (usage errors exit 2).
        .target(
            name: "CommandLineExit", dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // Thin executables.
        .executableTarget(
            name: "cleanroomd",
            dependencies: ["Server", "CommandLineExit", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "cleanroom",
            dependencies: [
                "Crypto", "Envelope", "AWS", "Attestation", "CleanRoom", "Training", "Enclave", "CommandLineExit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Envelope streaming throughput (Benchmarks/envelope/bench.sh builds it in release mode).
        .executableTarget(
            name: "envelope-benchmark", dependencies: ["Envelope", "Crypto"],
            path: "Benchmarks/envelope/EnvelopeBenchmark"),
        .executableTarget(name: "cleanroom-enclave", dependencies: ["Enclave"]),
        // Object store throughput benchmark (Benchmarks/objectstore/bench.sh); not a test.
        .executableTarget(name: "objectstore-bench", dependencies: ["AWS", "LocalServices"], path: "Benchmarks/objectstore", exclude: ["bench.sh"]),

        // The enclave's parse and join without channel or cryptography (Benchmarks/ingest); not a test.
        .executableTarget(name: "ingest-bench", dependencies: ["Training"], path: "Benchmarks/ingest"),

        // Shared helpers for the test targets: paths, Python peers, child processes.
        .target(name: "TestSupport", dependencies: ["Spawn"], path: "Sources/TestSupport"),

        // Benchmark (not a test): `make bench-attestation`.
        .executableTarget(name: "attestation-bench", dependencies: ["Attestation", "Crypto"], path: "Benchmarks/attestation"),

        // Tests: one target per module, plus end-to-end tests over real processes.
        .testTarget(name: "SpawnTests", dependencies: ["TestSupport", "Spawn"]),
        .testTarget(name: "HTTPServerTests", dependencies: ["TestSupport", "HTTPServer"]),
        .testTarget(name: "CryptoTests", dependencies: ["TestSupport", "Crypto"]),
        .testTarget(name: "EnvelopeTests", dependencies: ["TestSupport", "Envelope", "Crypto"]),
        .testTarget(name: "AttestationTests", dependencies: ["TestSupport", "Attestation", "Crypto"]),
        .testTarget(name: "AWSTests", dependencies: ["TestSupport", "AWS", "Crypto", "Envelope"]),
        .testTarget(name: "LocalServicesTests", dependencies: ["TestSupport", "LocalServices", "AWS", "Crypto", "Attestation", "HTTPServer", "Server"]),
        .testTarget(name: "TrainingTests", dependencies: ["TestSupport", "Training"]),
        .testTarget(name: "CleanRoomTests", dependencies: ["TestSupport", "CleanRoom", "Crypto"]),
        .testTarget(name: "EnclaveTests", dependencies: ["TestSupport", "Enclave"]),
        .testTarget(
            name: "ServerTests",
            dependencies: ["TestSupport", "Server", "HTTPServer", "Enclave", "Attestation", "Envelope", "Crypto", "CleanRoom", "Training"]
        ),
        .testTarget(name: "EndToEndTests", dependencies: ["TestSupport", "Crypto", "Attestation", "CleanRoom", "Enclave", "Envelope"]),
    ]
)
