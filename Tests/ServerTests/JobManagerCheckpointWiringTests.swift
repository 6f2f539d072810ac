import Attestation
import Crypto
import Foundation
import LocalServices
import TestSupport
import Testing
@testable import Server

/// `cleanroomd serve`'s job services come with checkpoints: a local-KMS checkpoint key whose policy
/// names the enclave binary's measurement, released only to an enclave of that binary.
@Suite struct JobManagerCheckpointWiringTests {
    @Test func servedJobsCheckpointUnderAKeyOnlyTheEnclaveBinaryGets() async throws {
        let dir = try TestEnvironment.temporaryDirectory("serve-checkpoints")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = DataDirectory(path: dir.path)
        let binary = try TestEnvironment.executable("cleanroom-enclave")
        let storage = try StorageServices.make(StorageConfiguration(), dataDirectory: data)
        var enclave = EnclaveConfiguration()
        enclave.binaryPath = binary
        let services = try JobManager.Services.make(enclave, dataDirectory: data, storage: storage)
        let checkpoints = try #require(services.checkpoints as? KMSCheckpointService)
        let kms = try #require(storage.localKMS)
        let image = Hex.encode(try DevelopmentMeasurements(executableAt: binary).pcr0)
        let policy = try kms.getKeyPolicy(.init(keyId: LocalKMS.checkpointKeyAlias), caller: kms.defaultCaller).policy
        #expect(policy.contains(image))
        // A restart opens the same key again.
        let again = try JobManager.Services.make(enclave, dataDirectory: data, storage: storage)
        #expect((again.checkpoints as? KMSCheckpointService)?.keyID == checkpoints.keyID)

        let plan = JobPlan(
            jobID: "job-1", collaborationID: "collab-1", policy: [], policyDigest: Array(repeating: 7, count: 32),
            approvalBundle: [], datasets: [])
        let enclaveKey = try RSA.PrivateKey(bits: 2048)
        let spki = try enclaveKey.publicKey.derRepresentation
        let document = try DevelopmentAttestor.open(dataDirectory: dir.path, enclaveExecutable: binary)
            .attestationDocument(publicKey: spki, userData: nil, nonce: nil)
        let grant = try await offPool { () throws -> CheckpointGrant in
            do { return try checkpoints.grant(plan: plan, attestationDocument: document) } catch { throw error as any Error }
        }
        #expect(grant.sealedCheckpoint == nil)
        let key = try CMS.EnvelopedData(berEncoded: grant.ciphertextForRecipient).decrypt(with: enclaveKey)
        #expect(key.count == 32)

        let otherDocument = try DevelopmentAttestor.open(dataDirectory: dir.path, enclaveExecutable: "/bin/sh")
            .attestationDocument(publicKey: spki, userData: nil, nonce: nil)
        let refused = try await offPool { () -> JobFailure? in
            do {
                _ = try checkpoints.grant(plan: plan, attestationDocument: otherDocument)
                return nil
            } catch let failure as JobFailure {
                return failure
            } catch {
                return JobFailure(code: "unexpected", message: "\(error)")
            }
        }
        #expect(refused?.code == "checkpoint.key_refused")
    }
}

/// A checkpoint service that grants a fixed answer.
struct FixedCheckpoints: CheckpointService {
    let answer: CheckpointGrant
    func grant(plan: JobPlan, attestationDocument: [UInt8]) throws(JobFailure) -> CheckpointGrant { answer }
    func store(plan: JobPlan, sealed: [UInt8]) throws(JobFailure) {}
    func ended(plan: JobPlan, succeeded: Bool) {}
    func drop(collaborationID: String, policyDigest: [UInt8]) throws(JobFailure) {}
}

@Suite struct AuditedCheckpointsTests {
    @Test func checkpointKeyReleaseIsAuditedWithThePCR0AndOnlyAfterAttestation() throws {
        let world = try JobStoreWorld()
        for member in world.members { try world.approve(member) }
        let plan = try world.jobs.startJob(collaborationId: world.collaborationId, caller: world.members[0].caller)
        let inner = FixedCheckpoints(answer: CheckpointGrant(ciphertextForRecipient: [0x30, 1], sealedCheckpoint: [9, 9]))
        let early = AuditedCheckpoints(inner: inner, jobs: world.jobs, jobID: plan.jobID, attestedPCR0: { nil })
        #expect(throws: JobFailure(code: "job.protocol", message: "a checkpoint key was asked before the enclave was attested")) {
            _ = try early.grant(plan: plan, attestationDocument: [1])
        }
        let pcr0 = [UInt8](repeating: 0xAB, count: 48)
        let audited = AuditedCheckpoints(inner: inner, jobs: world.jobs, jobID: plan.jobID, attestedPCR0: { pcr0 })
        #expect(try audited.grant(plan: plan, attestationDocument: [1]) == inner.answer)
        let entries = try world.store.auditEntries().filter { $0.action == "job.checkpoint_key" && $0.subject == plan.jobID }
        #expect(entries.count == 1)
        let details = try #require(entries.first?.details)
        #expect(details.contains(Hex.encode(pcr0)) && details.contains("\"resumed\":true"), "\(details)")
    }
}
