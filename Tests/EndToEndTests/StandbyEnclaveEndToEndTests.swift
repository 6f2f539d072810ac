import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The server's standby enclave (`--enclave-standby`, the default) through the real processes: a
/// job takes the enclave launched ahead of it, a new one replaces it when the job ends, one that
/// died or whose image changed is never handed to a job, and none outlives the server.
@Suite(.serialized) struct StandbyEnclaveEndToEndTests {
    typealias Fixture = JobAPIFixture

    /// A copy of the real enclave program in a folder of its own, which a test may replace.
    static func enclaveCopy(_ name: String) throws -> (folder: URL, binary: URL) {
        let folder = try TestEnvironment.temporaryDirectory(name)
        let binary = folder.appendingPathComponent("cleanroom-enclave")
        try FileManager.default.copyItem(
            at: URL(fileURLWithPath: try TestEnvironment.executable("cleanroom-enclave")), to: binary)
        return (folder, binary)
    }

    /// Waits until the server has exactly one enclave child other than `excluding` and has logged it
    /// ready (connected and waiting for a job); returns its pid.
    static func standby(_ f: Fixture, excluding old: pid_t? = nil) async throws -> pid_t {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let live = try await f.enclaveProcesses().filter { $0.state != "Z" && $0.pid != old }
            if live.count == 1,
                f.serverLog().split(separator: "\n").contains(where: {
                    $0.contains("standby enclave ready") && $0.contains("enclave=local pid \(live[0].pid) ")
                })
            {
                return live[0].pid
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestEnvironmentError("no standby enclave became ready: \(try await f.enclaveProcesses())\n\(f.serverLog())")
    }

    @Test func aJobTakesTheStandbyWhichIsReplacedAtTheJobsEndAndADeadStandbyIsNeverUsed() async throws {
        try await Fixture.with(standby: true) { f in
            let first = try await Self.standby(f)
            let (collaboration, digest) = try await f.propose(rounds: 3, maxRuns: 2)
            for party in f.parties.indices { try await f.approve(party, collaboration, digest: digest) }

            // The job runs on the standby: it is gone once the job has ended, and the server says so.
            let job = try await f.startJob(collaboration)
            let ended = try await f.waitForJob(job)
            #expect(ended["status"] as? String == "succeeded", "\(ended)\n\(f.serverLog())")
            #expect(try await f.waitForEnclaveExit(first, timeout: 10), "the job's enclave outlived the job")
            #expect(f.serverLog().contains("job uses the standby enclave"), "\(f.serverLog())")
            #expect(f.serverLog().contains("enclave=local pid \(first)"), "\(f.serverLog())")

            // A replacement is launched when the job ends. Killed while it waits, it is not handed to the
            // next job, which launches its own and succeeds.
            let second = try await Self.standby(f, excluding: first)
            #expect(second != first)
            #expect(kill(second, SIGKILL) == 0)
            let retry = try await f.startJob(collaboration)
            let retried = try await f.waitForJob(retry)
            #expect(retried["status"] as? String == "succeeded", "\(retried)\n\(f.serverLog())")
            #expect(f.serverLog().contains("reason=it has exited"), "\(f.serverLog())")
            #expect(try await JobAPIEndToEndTests.outputs(f, retry, as: JobAPIFixture.bank).count == 3)

            // No standby outlives the server: the server ends it before it exits (a local enclave
            // would also exit by itself once its parent is gone; a Nitro enclave would not).
            let third = try await Self.standby(f, excluding: second)
            try await f.stop(leaveEnclaves: true)
            #expect(f.serverLog().contains("standby enclave stopped"), "\(f.serverLog())")
            #expect(f.serverLog().contains("enclave=local pid \(third)"))
            #expect(try await f.waitForEnclaveExit(third, timeout: 10), "the standby outlived the server")
        }
    }

    @Test func aStandbyLaunchedFromAnImageThatChangedSinceIsNotUsedAndTheChangedImageGetsNoKeys() async throws {
        let (folder, binary) = try Self.enclaveCopy("e2e-standby-image")
        defer { try? FileManager.default.removeItem(at: folder) }
        try await Fixture.with(enclaveBinary: binary.path, standby: true) { f in
            let (collaboration, digest) = try await f.propose(rounds: 3, maxRuns: 2)
            for party in f.parties.indices { try await f.approve(party, collaboration, digest: digest) }
            let standby = try await Self.standby(f)

            // The operator installs another enclave program while the standby waits (a new file renamed
            // over the old, as installers do: a running executable cannot be written in place).
            let original = folder.appendingPathComponent("original")
            #expect(link(binary.path, original.path) == 0)
            var bytes = try Data(contentsOf: binary)
            bytes.append(contentsOf: Array("appended by the operator".utf8))
            let staged = folder.appendingPathComponent("staged")
            try bytes.write(to: staged)
            #expect(chmod(staged.path, 0o755) == 0)
            #expect(rename(staged.path, binary.path) == 0)

            // The standby still runs the allowed program, but the job must run what is installed now:
            // the standby is dropped, the new program is launched, and it gets no keys.
            let job = try await f.startJob(collaboration)
            let ended = try await f.waitForJob(job)
            #expect(ended["status"] as? String == "failed", "\(ended)")
            #expect(JobAPIEndToEndTests.errorCode(ended) == "attestation.pcr_mismatch", "\(ended)\n\(f.serverLog())")
            #expect(f.serverLog().contains("changed since it was launched"), "\(f.serverLog())")
            #expect(try await f.waitForEnclaveExit(standby, timeout: 10))
            let audit = try await f.audit(collaboration)
            #expect(!audit.contains { $0.action == "job.key_release" })

            // The allowed program put back, the next job launches it afresh (the standby made from the
            // changed one is dropped too) and succeeds.
            let changedStandby = try await Self.standby(f, excluding: standby)
            #expect(rename(original.path, binary.path) == 0)
            let retry = try await f.startJob(collaboration)
            let retried = try await f.waitForJob(retry)
            #expect(retried["status"] as? String == "succeeded", "\(retried)\n\(f.serverLog())")
            #expect(try await f.waitForEnclaveExit(changedStandby, timeout: 10))
            let releases = try await f.audit(collaboration).filter { $0.action == "job.key_release" }
            #expect(releases.count == f.parties.count && releases.allSatisfy { $0.subject == retry })
        }
    }
}
