import AWS
import Attestation
import Crypto
import Enclave
import Foundation
import LocalServices
import TestSupport
import Testing
@testable import Server

/// Records what the server stores and lets a test play a dishonest server (`tamper`).
final class RecordingCheckpoints: CheckpointService, @unchecked Sendable {
    let inner: any CheckpointService
    let lock = NSLock()
    var stored: [[UInt8]] = []
    var grants: [CheckpointGrant] = []
    /// Rewrites a grant, given the attestation document of the enclave it goes to.
    var tamper: (@Sendable (CheckpointGrant, [UInt8]) -> CheckpointGrant)?

    init(_ inner: any CheckpointService) { self.inner = inner }

    func grant(plan: JobPlan, attestationDocument: [UInt8]) throws(JobFailure) -> CheckpointGrant {
        var grant = try inner.grant(plan: plan, attestationDocument: attestationDocument)
        if let tamper = lock.withLock({ self.tamper }) { grant = tamper(grant, attestationDocument) }
        lock.withLock { grants.append(grant) }
        return grant
    }
    func store(plan: JobPlan, sealed: [UInt8]) throws(JobFailure) {
        lock.withLock { stored.append(sealed) }
        try inner.store(plan: plan, sealed: sealed)
    }
    func ended(plan: JobPlan, succeeded: Bool) { inner.ended(plan: plan, succeeded: succeeded) }
    func drop(collaborationID: String, policyDigest: [UInt8]) throws(JobFailure) {
        try inner.drop(collaborationID: collaborationID, policyDigest: policyDigest)
    }
    var count: Int { lock.withLock { stored.count } }
}

/// Encrypted training checkpoints (DESIGN §7) through the real `cleanroom-enclave` process, the
/// local KMS (`LocalKMS.checkpointKey`: a key whose policy allows `GenerateDataKey`/`Decrypt` only
/// with `kms:RecipientAttestation:ImageSha384` = the enclave image) and the file object store.
@Suite(.serialized) struct JobCheckpointTests {
    static let rounds = 150

    /// A GBDT job of `rounds` rounds on 4000 joined rows, a checkpoint every 2 rounds.
    final class Setup: @unchecked Sendable {
        let world: JobWorld
        var kms: LocalKMS!
        var objects: FileObjectStore!
        var checkpoints: RecordingCheckpoints!
        var checkpointKeyARN = ""

        init(alsoAllowedBinaries: [String] = []) throws {
            world = try JobWorld()
            world.rows = 4000
            world.algorithm = "gradient_boosted_trees"
            world.hyperparameters = ["num_rounds": JobCheckpointTests.rounds, "max_depth": 3]
            world.enclaveArguments = ["--checkpoint-every", "2"]
            world.alsoAllowedBinaries = alsoAllowedBinaries
        }

        func prepare() async throws {
            try await world.prepare()
            // The datasets' keys go to every image the policy allows; the checkpoint key only to the first.
            let others = try world.alsoAllowedBinaries.map { Hex.encode(try DevelopmentMeasurements(executableAt: $0).pcr0) }
            (kms, objects) = try await JobWithLocalKMSTests().setUp(world, alsoAllowedImages: others)
            checkpointKeyARN = try kms.checkpointKey(enclaveImages: [Hex.encode(world.attestor.measurements.pcr0)])
            let kms = self.kms!
            checkpoints = RecordingCheckpoints(
                KMSCheckpointService(
                    objects: objects, keyID: checkpointKeyARN,
                    generateDataKey: { try kms.generateDataKey($0, caller: kms.defaultCaller) },
                    decrypt: { try kms.decrypt($0, caller: kms.defaultCaller) }))
        }

        func runner(_ sink: RecordingSink, executable: String? = nil) -> JobRunner {
            let kms = self.kms!
            let release = KMSKeyRelease(objects: objects) { request in try kms.decrypt(request, caller: kms.defaultCaller) }
            return JobRunner(
                plan: world.plan, launcher: world.launcher(executable: executable ?? world.enclavePath),
                gate: VerifyingAttestationGate(verifier: world.verifier), keys: release,
                source: ObjectStoreCiphertextSource(objects: objects), sink: sink, checkpoints: checkpoints)
        }

        /// Starts a run, kills the enclave once `checkpoints` sealed checkpoints were stored, and
        /// returns the iteration of the last one stored.
        func runAndKill(after checkpoints: Int = 3) async throws -> UInt32 {
            let sink = RecordingSink()
            let job = runner(sink)
            let recorder = self.checkpoints!
            let state = try await offPool { () -> JobState in
                job.start()
                let deadline = ContinuousClock.now + .seconds(120)
                while recorder.count < checkpoints, ContinuousClock.now < deadline, !job.state.isTerminal { usleep(2_000) }
                for pid in enclaveChildren() { kill(pid, SIGKILL) }
                return job.wait(timeout: .seconds(60))
            }
            #expect(state == .failed, "the enclave was killed before the job ended: \(String(describing: job.failure))")
            #expect(job.failure?.code == "job.enclave_lost")
            #expect(enclaveChildren().isEmpty)
            let last = try #require(recorder.lock.withLock { recorder.stored.last })
            return try #require(SealedCheckpoint.iteration(of: last))
        }

        /// Runs a job to its end; returns the sink and the runner.
        func run(executable: String? = nil) async throws -> (RecordingSink, JobRunner) {
            let sink = RecordingSink()
            let job = runner(sink, executable: executable)
            try await offPool { job.run() }
            #expect(job.state == .succeeded, "\(String(describing: job.failure))")
            return (sink, job)
        }

        var objectKey: String {
            KMSCheckpointService.objectKey(collaborationID: world.collaborationID, policyDigest: world.plan.policyDigest)
        }

        func storedObject() async throws -> [UInt8]? {
            guard let download = try? await objects.get(key: objectKey) else { return nil }
            var bytes: [UInt8] = []
            for try await chunk in download.body { bytes += chunk }
            return bytes
        }
    }

    static func trainingIterations(_ sink: RecordingSink) -> [UInt32] {
        sink.lock.withLock { sink.events.filter { $0.phase == "training" }.map(\.iteration) }
    }

    static func notes(_ sink: RecordingSink) -> [String] {
        sink.lock.withLock { sink.events.filter { $0.phase == "checkpoint" }.map(\.message) }
    }

    @Test func killedJobResumesFromItsSealedCheckpointAndEndsAsAnUninterruptedRun() async throws {
        let setup = try Setup()
        try await setup.prepare()
        let checkpointed = try await setup.runAndKill()
        #expect(checkpointed >= 6 && checkpointed < UInt32(Self.rounds), "checkpointed after round \(checkpointed)")

        // Only the latest checkpoint is kept: each one stored removes the one it supersedes.
        #expect(setup.checkpoints.count >= 3)
        #expect(try await setup.objects.versions(key: setup.objectKey).count == 1)

        // What the server stores is ciphertext: the KMS blob and the sealed checkpoint, nothing else.
        let object = try #require(try await setup.storedObject())
        let sealed = try #require(setup.checkpoints.lock.withLock { setup.checkpoints.stored.last })
        #expect(Array(object.suffix(sealed.count)) == sealed)
        #expect(!object.containsSubsequence(Array("CRTC".utf8)), "no plaintext training checkpoint")
        #expect(object.count > sealed.count + 9)
        let blob = Array(object[9..<(object.count - sealed.count)])
        // The operator cannot get the key: Decrypt without an attested Recipient is refused.
        #expect(throws: (any Error).self) {
            _ = try setup.kms.decrypt(
                .init(ciphertextBlob: Data(blob), keyId: setup.checkpointKeyARN,
                      encryptionContext: KMSCheckpointService.context(setup.world.plan)),
                caller: setup.kms.defaultCaller)
        }
        #expect(setup.checkpoints.grants.allSatisfy { $0.ciphertextForRecipient.first == 0x30 }, "CMS only")

        // The retry resumes: progress starts right after the checkpointed round.
        let (resumed, _) = try await setup.run()
        let resumedIterations = Self.trainingIterations(resumed)
        #expect(resumedIterations.first == checkpointed + 1, "first round after resuming: \(resumedIterations.prefix(3))")
        #expect(resumed.lock.withLock { resumed.events.contains { $0.phase == "resuming" && $0.iteration == checkpointed } })
        #expect(resumedIterations.last == UInt32(Self.rounds))
        #expect(try await setup.storedObject() == nil, "the checkpoint is dropped after success")

        // An uninterrupted run (no checkpoint left) starts at round 1 and produces the same model and scores.
        let (fresh, _) = try await setup.run()
        #expect(Self.trainingIterations(fresh).first == 1)
        let world = setup.world
        for name in ["alpha/model", "alpha/scores:own", "alpha/metrics"] {
            let a = try await world.decrypt(try #require(resumed.outputs[name]), as: world.alpha)
            let b = try await world.decrypt(try #require(fresh.outputs[name]), as: world.alpha)
            if name == "alpha/metrics" {
                // Identical but for the stage timings.
                func strip(_ bytes: [UInt8]) throws -> NSDictionary {
                    var json = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
                    var metrics = try #require(json["metrics"] as? [String: Any])
                    metrics["seconds"] = nil
                    json["metrics"] = metrics
                    return json as NSDictionary
                }
                #expect(try strip(a) == strip(b))
            } else {
                #expect(a == b, "\(name) of the resumed run equals the uninterrupted run's")
            }
        }
        #expect(enclaveChildren().isEmpty)
    }

    @Test func checkpointOfAnotherPolicyIsRefusedAndTrainingStartsOver() async throws {
        let setup = try Setup()
        try await setup.prepare()
        _ = try await setup.runAndKill()
        let objectA = try #require(try await setup.storedObject())
        let sealedA = try #require(setup.checkpoints.lock.withLock { setup.checkpoints.stored.last })

        // Another policy of the same collaboration (so another digest); an operator plants A's checkpoint under it.
        setup.world.policyName = "job test, second policy"
        try await setup.prepare()
        _ = try await setup.objects.put(key: setup.objectKey, body: ByteStream(bytes: objectA))
        let (planted, _) = try await setup.run()
        #expect(Self.trainingIterations(planted).first == 1, "training starts over")
        #expect(Self.notes(planted).contains { $0.contains("KMS did not release the stored checkpoint's key") }, "\(Self.notes(planted))")

        // A dishonest server hands A's sealed checkpoint with a key the new enclave does get: the enclave refuses it.
        setup.checkpoints.tamper = { grant, _ in
            var grant = grant
            grant.sealedCheckpoint = sealedA
            return grant
        }
        let (tampered, _) = try await setup.run()
        #expect(Self.trainingIterations(tampered).first == 1)
        #expect(
            Self.notes(tampered).contains { $0.contains("checkpoint refused") && $0.contains("another policy") },
            "\(Self.notes(tampered))")
        #expect(enclaveChildren().isEmpty)
    }

    /// A dishonest server cannot learn the key checkpoints are sealed under. It hands the enclave a
    /// checkpoint key of its own choosing, wrapped to the enclave's attested public key as KMS
    /// would (the enclave cannot tell them apart), yet the checkpoints it then stores do not open
    /// with that key: they are sealed under a key that also needs the datasets' keys. (A review
    /// read a job's model out of its checkpoints that way, and planted a forged one.)
    @Test func aCheckpointKeyTheServerChoseDoesNotOpenTheCheckpoints() async throws {
        let setup = try Setup()
        try await setup.prepare()
        let chosen = try SecureBytes(randomCount: 32)
        setup.checkpoints.tamper = { grant, document in
            var grant = grant
            guard let der = try? AttestationDocument(bytes: document).publicKey, let key = try? RSA.PublicKey(derRepresentation: der),
                let wrapped = try? CMS.EnvelopedData.encrypt(
                    chosen, recipientKey: key, subjectKeyIdentifier: SHA256.hash((try? key.derRepresentation) ?? []))
            else { return grant }
            grant.ciphertextForRecipient = wrapped
            return grant
        }
        _ = try await setup.runAndKill()
        let grant = try #require(setup.checkpoints.lock.withLock { setup.checkpoints.grants.last })
        #expect(grant.ciphertextForRecipient.count > 0)
        let sealed = try #require(setup.checkpoints.lock.withLock { setup.checkpoints.stored.last })
        let binding = SealedCheckpoint.Binding(
            policyDigest: setup.world.plan.policyDigest, measurement: setup.world.attestor.measurements.pcr0)
        #expect(throws: EnclaveError.self, "the server's own key opens the checkpoint") {
            try SealedCheckpoint.open(sealed, dataKey: chosen, binding: binding)
        }
        let withoutData = try SealedCheckpoint.sealingKey(checkpointKey: chosen, datasetKeys: [], policyDigest: binding.policyDigest)
        #expect(throws: EnclaveError.self) { try SealedCheckpoint.open(sealed, dataKey: withoutData, binding: binding) }
        #expect(enclaveChildren().isEmpty)
    }

    /// A run that starts over (here: the server offers no checkpoint) removes only the versions it
    /// stored itself: the checkpoint an earlier run left stays until a run succeeds, in case this
    /// one dies before it gets as far.
    @Test func aRunThatStartsOverKeepsTheEarlierRunsCheckpoint() async throws {
        let setup = try Setup()
        try await setup.prepare()
        _ = try await setup.runAndKill()
        let earlier = try await setup.objects.versions(key: setup.objectKey)
        #expect(earlier.count == 1)
        setup.checkpoints.tamper = { grant, _ in
            var grant = grant
            grant.sealedCheckpoint = nil
            return grant
        }
        _ = try await setup.runAndKill(after: setup.checkpoints.count + 3)
        let versions = try await setup.objects.versions(key: setup.objectKey)
        #expect(versions.count == 2, "the earlier run's and this run's latest: \(versions.map(\.versionId))")
        #expect(versions.contains { $0.versionId == earlier.first?.versionId })
    }

    @Test func checkpointKeyIsNotReleasedToAnEnclaveOfAnotherImage() async throws {
        // A second enclave binary (another measurement) that the policy allows but the checkpoint key does not.
        let scratch = try TestEnvironment.temporaryDirectory("other-enclave")
        let other = scratch.appendingPathComponent("cleanroom-enclave-other").path
        try FileManager.default.copyItem(atPath: try TestEnvironment.executable("cleanroom-enclave"), toPath: other)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: other))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("another image".utf8))
        try handle.close()

        let setup = try Setup(alsoAllowedBinaries: [other])
        try await setup.prepare()
        _ = try await setup.runAndKill()
        #expect(try await setup.storedObject() != nil)
        let (retry, _) = try await setup.run(executable: other)
        #expect(Self.trainingIterations(retry).first == 1, "training starts over")
        let notes = Self.notes(retry)
        #expect(notes.contains { $0.contains("KMS did not release the stored checkpoint's key") }, "\(notes)")
        #expect(notes.contains { $0.contains("this run has no checkpoints") }, "\(notes)")
        #expect(setup.checkpoints.grants.count == 1, "no key was granted to the other image")
        #expect(try await setup.storedObject() == nil, "the job succeeded, the old checkpoint is gone")
        #expect(enclaveChildren().isEmpty)
    }
}

extension Array where Element == UInt8 {
    func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { Array(self[$0..<$0 + needle.count]) == needle }
    }
}
