import Attestation
import CleanRoom
import Crypto
import Envelope
import Foundation
import Testing
@testable import Enclave

/// Encrypts with a data key the test knows, under an `aws-kms` EDK (as a KMS keyring would).
struct KnownKeyKeyring: Keyring {
    let dataKey: SecureBytes
    func onEncrypt(_ materials: EncryptionMaterials) async throws -> EncryptionMaterials {
        var out = materials
        out.plaintextDataKey = dataKey
        out.encryptedDataKeys.append(
            EncryptedDataKey(
                providerID: "aws-kms", providerInfo: Array("arn:aws:kms:local:000000000000:key/test".utf8),
                ciphertext: Array(repeating: 0x42, count: 64)))
        return out
    }
    func onDecrypt(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) async throws -> DecryptionMaterials {
        throw EnvelopeError(.noDecryptableDataKey, "test keyring")
    }
}

/// The test's data work: keeps each dataset's plaintext, returns one output per grant.
final class CollectingWorkload: EnclaveWorkload, @unchecked Sendable {
    var admission: Admission?
    var plaintexts: [String: [UInt8]] = [:]
    var finished: [String] = []

    func prepare(admission: Admission, progress: @escaping @Sendable (ProgressEvent) -> Void) throws(EnclaveError) {
        self.admission = admission
        progress(ProgressEvent(phase: "decrypting"))
    }

    func beginDataset(index: Int, dataset: JobPolicy.Dataset, key: ReleasedDataKey, byteCount: UInt64) throws(EnclaveError)
        -> any DatasetIngest
    {
        EnvelopeDatasetIngest(
            dataset: dataset, key: key, approvals: admission!.approvals,
            onPlaintext: { [self] bytes in plaintexts[dataset.id, default: []] += bytes },
            onFinish: { [self] in finished.append(dataset.id) })
    }

    /// When set, the first output is these bytes, produced in small writes.
    var largeOutput: [UInt8]?

    func run() async throws(EnclaveError) -> [OutputProducer] {
        var outputs = admission!.policy.outputs.flatMap { grant in
            grant.artifacts.map { OutputProducer(name: $0, recipient: grant.recipient, ciphertext: Array("\($0) for \(grant.recipient)".utf8)) }
        }
        if let largeOutput {
            outputs[0].produce = { (sink) throws(EnclaveError) in
                for start in stride(from: 0, to: largeOutput.count, by: 10_000) {
                    try sink.write(Array(largeOutput[start..<min(largeOutput.count, start + 10_000)]))
                }
            }
        }
        return outputs
    }
}

/// What the test server does differently from an honest one.
struct Deviation {
    var attestedPolicyDigest: [UInt8]?
    var wrongCiphertextDigest = false
    var cancelDuringStream = false
    var cmsToAnotherKey = false
    var alphaOwnerKey: String?
    var betaOwnerKey: String?
    /// Not a deviation: the first output is this large (streamed in many writes).
    var largeOutput: [UInt8]?
}

struct SessionOutcome {
    var enclaveError: EnclaveError?
    var serverMessages: [ChannelMessage] = []
    var receipt: [UInt8]?
    var hello: EnclaveHello?
    var nonce: [UInt8] = []
    var workload: CollectingWorkload
    /// The policy the session ran under, and its approval bundle.
    var policy: [UInt8]
    var bundle: [UInt8]
}

@Suite struct EnclaveSessionTests {
    let fixture = try! SessionFixture.shared.get()

    func message(_ plaintext: String, dataset: String, party: String, ownerKey: String, key: SecureBytes) async throws -> [UInt8] {
        let context = try EncryptionContext([
            ("cleanroom:dataset", dataset), ("cleanroom:party", party), ("cleanroom:owner-key", ownerKey),
        ])
        return try await MessageEncryptor.encrypt(
            Array(plaintext.utf8), keyring: KnownKeyKeyring(dataKey: key), encryptionContext: context, frameLength: 64)
    }

    /// Runs a session against a scripted server. The policy (by default the fixture's, naming the
    /// streamed ciphertexts' digests) is made from the ciphertexts, the bundle from the policy.
    func run(
        policy makePolicy: (([[UInt8]]) throws -> [UInt8])? = nil, bundle makeBundle: (([UInt8]) throws -> [UInt8])? = nil,
        _ deviation: Deviation = Deviation()
    ) async throws -> SessionOutcome {
        let keys = [try SecureBytes(randomCount: 32), try SecureBytes(randomCount: 32)]
        let data = [
            try await message(
                "id,y\na,1\nb,0\n", dataset: "alpha-data", party: "alpha",
                ownerKey: try deviation.alphaOwnerKey ?? fixture.alpha.fingerprint, key: keys[0]),
            try await message(
                "id,x\na,0.5\nb,1.5\n", dataset: "beta-data", party: "beta",
                ownerKey: try deviation.betaOwnerKey ?? fixture.beta.fingerprint, key: keys[1]),
        ]
        // The policy and the manifest agree on the digests; `wrongCiphertextDigest` makes both name
        // other bytes than the ones streamed.
        let named = deviation.wrongCiphertextDigest ? [[0], data[1]] : data
        let policy = try makePolicy?(named) ?? fixture.policy(ciphertexts: named)
        let bundle = try makeBundle?(policy) ?? fixture.fullBundle(policy)
        let digest = Hex.decode(try SessionFixture.digest(policy))!
        let (a, b) = try ChannelSocket.pair()
        let server = ChannelConnection(fileDescriptor: a), enclaveSide = ChannelConnection(fileDescriptor: b)
        let workload = CollectingWorkload()
        workload.largeOutput = deviation.largeOutput
        let session = EnclaveSession(
            connection: enclaveSide, attestor: ChannelAttestor(connection: enclaveSide), isDevelopment: true,
            workload: workload)
        let attestor = fixture.attestor
        let nonce = try SecureRandom.bytes(count: 32)
        let script = Thread.detachNewThreadWithResult { () -> SessionOutcome in
            var outcome = SessionOutcome(workload: workload, policy: policy, bundle: bundle)
            outcome.nonce = nonce
            let t = Duration.seconds(30)
            func next() throws -> ChannelMessage {
                let m = try server.receive(timeout: t)
                outcome.serverMessages.append(m)
                return m
            }
            do {
                try server.send(.begin(JobBegin(jobID: "job-7", policyDigest: deviation.attestedPolicyDigest ?? digest, nonce: nonce)), timeout: t)
                guard case .attestationRequest(let request) = try next() else { return outcome }
                try server.send(
                    .attestationDocument(
                        try attestor.attestationDocument(publicKey: request.publicKey, userData: request.userData, nonce: request.nonce)),
                    timeout: t)
                guard case .hello(let hello) = try next() else { return outcome }
                outcome.hello = hello
                let verified = try fixture.verifier.verify(hello.attestationDocument, expectations: AttestationExpectations(nonce: nonce))
                try server.send(.jobSpec(JobSpecification(policy: policy, approvalBundle: bundle, datasets: [
                    DatasetManifest(datasetID: "alpha-data", partyID: "alpha",
                                    ciphertextSHA256: deviation.wrongCiphertextDigest ? SHA256.hash([0]) : SHA256.hash(data[0]),
                                    byteCount: UInt64(data[0].count)),
                    DatasetManifest(datasetID: "beta-data", partyID: "beta", ciphertextSHA256: SHA256.hash(data[1]), byteCount: UInt64(data[1].count)),
                ])), timeout: t)
                guard case .accepted = try next() else { return outcome }
                let enclaveKey = deviation.cmsToAnotherKey
                    ? try RSA.PrivateKey(bits: 2048).publicKey : try RSA.PublicKey(derRepresentation: verified.publicKey!)
                for (index, id) in ["alpha-data", "beta-data"].enumerated() {
                    let cms = try CMS.EnvelopedData.encrypt(keys[index], recipientKey: enclaveKey, subjectKeyIdentifier: [1, 2, 3])
                    try server.send(.keyRelease(KeyRelease(datasetID: id, encryptedDataKeyIndex: 0, ciphertextForRecipient: cms)), timeout: t)
                }
                for (index, id) in ["alpha-data", "beta-data"].enumerated() {
                    try server.send(.datasetBegin(DatasetBegin(datasetID: id, byteCount: UInt64(data[index].count))), timeout: t)
                    for start in stride(from: 0, to: data[index].count, by: 50) {
                        try server.send(.datasetChunk(Array(data[index][start..<min(data[index].count, start + 50)])), timeout: t)
                        if deviation.cancelDuringStream {
                            try server.send(.cancel(reason: "cancelled by beta"), timeout: t)
                            _ = try? next()
                            return outcome
                        }
                    }
                    try server.send(.datasetEnd(datasetID: id), timeout: t)
                }
                while true {
                    let m = try next()
                    if case .receipt(let bytes) = m {
                        outcome.receipt = bytes
                        return outcome
                    }
                    if case .error = m { return outcome }
                }
            } catch {
                return outcome
            }
        }
        var enclaveError: EnclaveError?
        do {
            try await session.run()
        } catch {
            enclaveError = error
        }
        enclaveSide.close()
        var outcome = try script.value()
        outcome.enclaveError = enclaveError
        return outcome
    }

    @Test func honestRunDeliversOutputsAndAReceiptThatVerifiesOffline() async throws {
        let outcome = try await run()
        let policy = outcome.policy
        #expect(outcome.enclaveError == nil)
        #expect(outcome.workload.finished == ["alpha-data", "beta-data"])
        #expect(outcome.workload.plaintexts["beta-data"] == Array("id,x\na,0.5\nb,1.5\n".utf8))
        let outputs = outcome.serverMessages.compactMap { m -> OutputDescriptor? in
            if case .outputBegin(let d) = m { return d } else { return nil }
        }
        #expect(outputs.map(\.recipient) == ["alpha", "alpha", "beta"])

        // The partner's offline check: real attestation under the development root, binding, bundle, output hash.
        let signed = try SignedReceipt(bytes: try #require(outcome.receipt))
        let verifier = fixture.verifier
        let receiptVerifier = ReceiptVerifier(expectedPolicyDigest: try SessionFixture.digest(policy), expectedJobID: "job-7") { document in
            let verified = try verifier.verify(document, expectations: AttestationExpectations())
            return AttestedFacts(userData: verified.userData ?? [], pcr0: verified.pcrs[0] ?? [], development: verified.isDevelopment)
        }
        let verified = try receiptVerifier.verify(
            signed, approvalBundle: outcome.bundle,
            outputs: [.init(name: "metrics", recipient: "beta", sha256: SHA256.hash(Array("metrics for beta".utf8)))])
        #expect(verified.receipt.outputs.count == 3)
        #expect(verified.attestation.development)
    }

    @Test func largeOutputStreamsInChunksAndTheReceiptHashesExactlyTheBytesSent() async throws {
        let large = (0..<(3 * 1024 * 1024 + 12_345)).map { UInt8(truncatingIfNeeded: $0 &* 29) }
        let outcome = try await run(Deviation(largeOutput: large))
        #expect(outcome.enclaveError == nil)
        var chunks: [[UInt8]] = []
        var ended: [UInt8]?
        var inFirst = false
        for message in outcome.serverMessages {
            switch message {
            case .outputBegin(let descriptor) where ended == nil: inFirst = descriptor.name == "model"
            case .outputChunk(let chunk) where inFirst: chunks.append(chunk)
            case .outputEnd(let digest) where inFirst:
                ended = digest
                inFirst = false
            default: break
            }
        }
        let chunkSize = ChannelLimits.default.chunkSize
        #expect(chunks.count == 4)
        #expect(chunks.dropLast().allSatisfy { $0.count == chunkSize })
        #expect(chunks.flatMap { $0 } == large)
        #expect(ended == SHA256.hash(large))
        let signed = try SignedReceipt(bytes: try #require(outcome.receipt))
        let receipt = try JSONDecoder().decode(Receipt.self, from: try #require(Data(base64Encoded: signed.payload)))
        #expect(receipt.outputs.first?.ciphertextSHA256 == Hex.encode(SHA256.hash(large)))
        #expect(receipt.outputs.first?.byteCount == Int64(large.count))
    }

    @Test func policyOtherThanTheAttestedOneIsRefused() async throws {
        let outcome = try await run(Deviation(attestedPolicyDigest: SHA256.hash(Array("other".utf8))))
        #expect(outcome.enclaveError?.code == .policyDigestMismatch)
        #expect(outcome.serverMessages.last == .error(outcome.enclaveError!.failure))
        #expect(outcome.workload.admission == nil)
    }

    @Test func missingApprovalStopsTheJobBeforeAnyKey() async throws {
        let outcome = try await run(bundle: { policy in try fixture.bundle(policy) { [try fixture.alpha.approve($0)] } })
        #expect(outcome.enclaveError?.code == .approvalMissing)
        #expect(outcome.enclaveError?.message.contains("beta") == true)
    }

    @Test func expiredPolicyIsRefused() async throws {
        let outcome = try await run(policy: { try fixture.policy(expiresAt: "2020-01-01T00:00:00Z", ciphertexts: $0) })
        #expect(outcome.enclaveError?.code == .policyExpired)
    }

    @Test func datasetBoundToAnotherOwnerKeyIsNeverOpened() async throws {
        let outcome = try await run(Deviation(betaOwnerKey: String(repeating: "ab", count: 32)))
        #expect(outcome.enclaveError?.code == .bindingMismatch)
        #expect(outcome.workload.plaintexts["beta-data"] == nil, "no plaintext of the unbound dataset was handed on")
    }

    @Test func ciphertextOtherThanThePolicysIsRefused() async throws {
        let outcome = try await run(Deviation(wrongCiphertextDigest: true))
        #expect(outcome.enclaveError?.code == .ciphertextMismatch)
        #expect(outcome.workload.finished.isEmpty)
    }

    /// Of a ciphertext the policy does not name, the enclave says only that: what is wrong inside
    /// it (here its binding; a schema fault alike) is not reported, since it describes data nobody
    /// approved (in a review, a CSV fault of another upload was reported before its digest).
    @Test func aFaultInACiphertextThePolicyDoesNotNameIsNotReported() async throws {
        let outcome = try await run(Deviation(wrongCiphertextDigest: true, alphaOwnerKey: String(repeating: "cd", count: 32)))
        #expect(outcome.enclaveError?.code == .ciphertextMismatch)
        #expect(outcome.workload.plaintexts["alpha-data"] == nil)
    }

    @Test func keyEncryptedToAnotherEnclaveDoesNotOpen() async throws {
        let outcome = try await run(Deviation(cmsToAnotherKey: true))
        #expect(outcome.enclaveError?.code == .keyRelease)
    }

    @Test func cancelDuringStreamingStopsTheEnclave() async throws {
        let outcome = try await run(Deviation(cancelDuringStream: true))
        #expect(outcome.enclaveError?.code == .cancelled)
        #expect(outcome.enclaveError?.message.contains("cancelled by beta") == true)
    }
}
