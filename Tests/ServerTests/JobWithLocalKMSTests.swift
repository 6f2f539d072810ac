import AWS
import Attestation
import Crypto
import Enclave
import Envelope
import Foundation
import LocalServices
import TestSupport
import Testing
@testable import Server

/// The key release path as in local mode: datasets encrypted by their owners with the KMS keyring
/// under keys of the local KMS whose policies allow `Decrypt` only for an attested image
/// (`kms:RecipientAttestation:ImageSha384`), stored in the file object store, released with
/// `Recipient`, streamed to the real `cleanroom-enclave` process.
@Suite(.serialized) struct JobWithLocalKMSTests {
    static func policy(imageSha384: String, alsoAllowed: [String] = []) -> String {
        let images = ([imageSha384] + alsoAllowed).map { "\"\($0)\"" }.joined(separator: ",")
        return """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"NotAction":"kms:Decrypt","Resource":"*"},
          {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kms:Decrypt","Resource":"*",
           "Condition":{"StringEqualsIgnoreCase":{"kms:RecipientAttestation:ImageSha384":[\(images)]}}}]}
        """
    }

    /// Encrypts every dataset with its own local-KMS key and stores it; `betaImage` is the PCR0
    /// beta's key policy allows (default: the enclave's own).
    func setUp(_ world: JobWorld, betaImage: String? = nil, alsoAllowedImages: [String] = []) async throws
        -> (LocalKMS, FileObjectStore)
    {
        let kms = try LocalKMS(
            directory: world.directory.appendingPathComponent("kms"), attestationVerifier: world.verifier)
        let objects = try FileObjectStore(root: world.directory.appendingPathComponent("objects"))
        let enclaveImage = Hex.encode(world.attestor.measurements.pcr0)
        for (id, party) in [("alpha-labels", world.alpha), ("beta-features", world.beta)] {
            let image = id.hasPrefix("beta") ? (betaImage ?? enclaveImage) : enclaveImage
            let key = try kms.createKey(.init(description: id, policy: Self.policy(imageSha384: image, alsoAllowed: alsoAllowedImages)), caller: kms.defaultCaller)
            let keyring = try KMSKeyring(kms: kms, keyID: key.keyMetadata.arn)
            let context = try EncryptionContext([
                ("cleanroom:dataset", id), ("cleanroom:party", party.id), ("cleanroom:owner-key", party.fingerprint),
            ])
            let message = try await MessageEncryptor.encrypt(Array(world.csv[id]!.utf8), keyring: keyring, encryptionContext: context)
            world.data[id] = message
            _ = try await objects.put(key: id, body: ByteStream(bytes: message))
        }
        try world.approve()  // the policy names these ciphertexts
        return (kms, objects)
    }

    func runner(_ world: JobWorld, kms: LocalKMS, objects: FileObjectStore, sink: RecordingSink) -> JobRunner {
        let release = KMSKeyRelease(objects: objects) { request in try kms.decrypt(request, caller: kms.defaultCaller) }
        return JobRunner(
            plan: world.plan, launcher: world.launcher, gate: VerifyingAttestationGate(verifier: world.verifier),
            keys: release, source: ObjectStoreCiphertextSource(objects: objects), sink: sink)
    }

    @Test func keysReleasedByTheLocalKMSReachOnlyTheAttestedEnclave() async throws {
        let world = try JobWorld()
        try await world.prepare()
        let (kms, objects) = try await setUp(world)
        let sink = RecordingSink()
        let job = runner(world, kms: kms, objects: objects, sink: sink)
        try await offPool { job.run() }
        #expect(job.state == .succeeded, "\(String(describing: job.failure))")
        let metrics = try await world.decrypt(try #require(sink.outputs["beta/metrics"]), as: world.beta)
        #expect(String(decoding: metrics, as: UTF8.self).contains("joinedRows"))
        #expect(enclaveChildren().isEmpty)
    }

    @Test func keyPolicyNamingAnotherImageReleasesNothing() async throws {
        let world = try JobWorld()
        try await world.prepare()
        let (kms, objects) = try await setUp(world, betaImage: String(repeating: "0f", count: 48))
        let sink = RecordingSink()
        let job = runner(world, kms: kms, objects: objects, sink: sink)
        try await offPool { job.run() }
        #expect(job.state == .failed)
        #expect(job.failure?.code == "key_release.refused", "\(String(describing: job.failure))")
        #expect(job.failure?.message.contains("beta-features") == true)
        #expect(sink.outputs.isEmpty)
        #expect(enclaveChildren().isEmpty)
    }

    /// A KMS answer that carries a plaintext data key is never forwarded (DESIGN §2.1), even if it
    /// also carries CiphertextForRecipient; and no key is released before the enclave was attested.
    @Test func aPlaintextKeyFromKMSIsRefusedAndNothingIsReleasedBeforeAttestation() async throws {
        let world = try JobWorld()
        try await world.prepare()
        let (_, objects) = try await setUp(world)
        let dataset = world.plan.datasets[0]
        let leaky = KMSKeyRelease(objects: objects) { request in
            KMSWire.DecryptResponse(
                plaintext: Data(repeating: 7, count: 32), keyId: request.keyId ?? "key",
                ciphertextForRecipient: Data([0x30, 0x00]))
        }
        let refusal = try await offPool { () -> String? in
            do {
                _ = try leaky.release(dataset: dataset, attestationDocument: [0xA0])
                return nil
            } catch let error as JobFailure { return error.code } catch { return "\(error)" }
        }
        #expect(refusal == "key_release.plaintext")

        let store = try JobStoreWorld().store
        let unattested = AuditedKeyRelease(
            inner: leaky, jobs: JobStore(store: store), jobID: "job-x",
            attested: AttestationRecorder(inner: VerifyingAttestationGate(verifier: world.verifier)))
        let early = try await offPool { () -> String? in
            do {
                _ = try unattested.release(dataset: dataset, attestationDocument: [0xA0])
                return nil
            } catch let error as JobFailure { return error.code } catch { return "\(error)" }
        }
        #expect(early == "job.protocol")
    }
}
