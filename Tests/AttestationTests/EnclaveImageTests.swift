import Foundation
import TestSupport
import Testing

/// enclave-image/ cannot be built here (no Docker daemon with nitro-cli), but the step that turns
/// nitro-cli's output into measurements.json can: it runs on a recorded `nitro-cli build-enclave`
/// output and its result must be what a policy's measurement set needs.
@Suite struct EnclaveImageTests {
    static let pcr0 = String(repeating: "a1", count: 48), pcr1 = String(repeating: "B2", count: 48)
    static let pcr2 = String(repeating: "c3", count: 48), pcr8 = String(repeating: "d4", count: 48)

    private func runScript(_ output: String) throws -> (ProcessResult, [String: Any]?) {
        let dir = try TestEnvironment.temporaryDirectory("eif")
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("build-enclave.out"),
            out = dir.appendingPathComponent("measurements.json")
        try output.write(to: input, atomically: true, encoding: .utf8)
        let script = TestEnvironment.repoRoot.appendingPathComponent("enclave-image/measurements.py").path
        let result = try ProcessRunner.run(
            try TestEnvironment.python(),
            [script, input.path, out.path, "--image", "cleanroom-enclave:test"]
        )
        let json = (try? Data(contentsOf: out)).flatMap {
            try? JSONSerialization.jsonObject(with: $0) as? [String: Any]
        }
        return (result, json)
    }

    @Test func nitroCLIOutputBecomesMeasurementsJSON() throws {
        let output = """
            Start building the Enclave Image...
            Using the locally available Docker image...
            Enclave Image successfully created.
            {
              "Measurements": {
                "HashAlgorithm": "Sha384 { ... }",
                "PCR0": "\(Self.pcr0)",
                "PCR1": "\(Self.pcr1)",
                "PCR2": "\(Self.pcr2)",
                "PCR8": "\(Self.pcr8)"
              }
            }
            """
        let (result, json) = try runScript(output)
        #expect(result.status == 0, "\(result.stderrText)")
        #expect(json?["PCR0"] as? String == Self.pcr0)
        #expect(json?["PCR1"] as? String == Self.pcr1.lowercased())
        #expect(json?["image"] as? String == "cleanroom-enclave:test")
        let policy = json?["policy_measurement"] as? [String: String]
        #expect(policy == ["pcr0": Self.pcr0, "pcr1": Self.pcr1.lowercased(), "pcr2": Self.pcr2, "pcr8": Self.pcr8])
    }

    @Test func malformedNitroCLIOutputIsRefused() throws {
        #expect(try runScript("Enclave Image build failed\n").0.status == 1)
        #expect(
            try runScript("{\"Measurements\": {\"HashAlgorithm\": \"Sha384 { ... }\", \"PCR0\": \"zz\"}}").0.status == 1
        )
        #expect(
            try runScript("{\"Measurements\": {\"HashAlgorithm\": \"Sha256\", \"PCR0\": \"\(Self.pcr0)\"}}").0.status
                == 1
        )
    }

    @Test func theImageFilesAreConsistent() throws {
        let dir = TestEnvironment.repoRoot.appendingPathComponent("enclave-image")
        let run =
            try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("run-enclave.json")))
            as? [String: Any]
        let allocator = try String(contentsOf: dir.appendingPathComponent("allocator.yaml"), encoding: .utf8)
        let memory = run?["memory_mib"] as? Int ?? 0, cpus = run?["cpu_count"] as? Int ?? 0
        #expect(allocator.contains("memory_mib: \(memory)") && allocator.contains("cpu_count: \(cpus)"))
        #expect(run?["debug_mode"] as? Bool == false)
        let dockerfile = try String(contentsOf: dir.appendingPathComponent("Dockerfile"), encoding: .utf8)
        #expect(dockerfile.contains("--product cleanroom-enclave --static-swift-stdlib"))
        #expect(FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("build.sh").path))
    }

    /// The image's command is what the enclave program runs with inside the Nitro Enclave: its
    /// flags must be ones the program takes (with `--help` after them, it prints its usage and exits
    /// 0; an unknown flag ends it with status 2 before it reaches `--help`), and it must dial the
    /// parent (CID 3) on the launcher's default port with the NSM as its attestor.
    @Test func theImagesCommandIsOneTheEnclaveProgramTakes() throws {
        let dockerfile = try String(
            contentsOf: TestEnvironment.repoRoot.appendingPathComponent("enclave-image/Dockerfile"), encoding: .utf8)
        let line = try #require(dockerfile.split(separator: "\n").last { $0.hasPrefix("CMD ") })
        let command = try #require(
            try JSONSerialization.jsonObject(with: Data(line.dropFirst(4).utf8)) as? [String], "CMD is not exec form")
        let connect = try #require(command.firstIndex(of: "--connect"), "\(command)")
        #expect(command.indices.contains(connect + 1) && command[connect + 1] == "vsock:3:5005", "\(command)")
        #expect(!command.contains("--attestor") || command.contains("nsm"), "the default attestor is the NSM")
        let result = try ProcessRunner.run(try TestEnvironment.executable("cleanroom-enclave"), command + ["--help"])
        #expect(result.status == 0, "\(command): \(result.stderrText)")
        #expect(result.stdoutText.hasPrefix("usage: cleanroom-enclave"))
    }
}
