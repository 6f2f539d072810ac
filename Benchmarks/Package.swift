// swift-tools-version:6.2
// Benchmark peers, kept OUT of the main package so that Hummingbird (and SwiftNIO) never enter
// cleanroom's build. `Benchmarks/http-bench.sh` builds this package in release mode with its own
// `.build` folder and runs wrk against it and against `cleanroomd`.
import PackageDescription

let package = Package(
    name: "cleanroom-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1")
    ],
    targets: [
        .executableTarget(
            name: "HummingbirdPeer",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")]
        )
    ]
)
