import Attestation
import CleanRoom
import Crypto
import Foundation

/// The enclave program's side of one job, over one channel (DESIGN §7):
///
/// 1. fresh RSA-2048 (key release) and P-256 (receipt) keys, made as soon as the program starts
///    (so an enclave launched ahead of its job is ready when the job comes); `begin` → the keys
///    attested with its nonce and the user-data binding → `hello`;
/// 2. `jobSpec` → the policy digest must equal the attested one; the policy must parse and not
///    have expired; every approval must verify and cover every party; the manifests must match
///    the policy's datasets → `accepted`;
/// 3. `keyRelease` per dataset → CMS opened with the attested RSA key;
/// 4. the ciphertext streams, each checked against its encryption-context binding before any of
///    its plaintext is used, then validated, joined and trained on by `workload`;
/// 5. encrypted outputs per recipient, each streamed as it is encrypted, then the signed receipt.
///
/// Any failure is sent as an `error` message and ends the session; keys are dropped (and the
/// released data keys zeroed) on every path.
public final class EnclaveSession: @unchecked Sendable {
    /// How long the enclave waits for the server at each step.
    public struct Timeouts: Sendable {
        /// How long to wait for `begin`; nil: as long as the server keeps the channel open (a
        /// standby enclave waits for a job that has not been started yet).
        public var begin: Duration?
        public var step: Duration = .seconds(300)
        public var send: Duration = .seconds(300)
        public init() {}
    }

    let connection: ChannelConnection
    let attestor: any Attestor
    let isDevelopment: Bool
    let workload: any EnclaveWorkload
    let timeouts: Timeouts
    let now: () -> Date
    /// A message received ahead of the step that handles it.
    private var pending: ChannelMessage?

    public init(
        connection: ChannelConnection, attestor: any Attestor, isDevelopment: Bool, workload: any EnclaveWorkload,
        timeouts: Timeouts = Timeouts(), now: @escaping () -> Date = Date.init
    ) {
        self.connection = connection
        self.attestor = attestor
        self.isDevelopment = isDevelopment
        self.workload = workload
        self.timeouts = timeouts
        self.now = now
    }

    /// Runs the session; returns normally after the receipt was sent, throws the failure otherwise
    /// (after reporting it to the server).
    public func run() async throws(EnclaveError) {
        do {
            try await execute()
        } catch {
            try? connection.send(.error(error.failure), timeout: .seconds(5))
            throw error
        }
    }

    private func receive(_ what: String, timeout: Duration? = nil) throws(EnclaveError) -> ChannelMessage {
        if let message = pending {
            pending = nil
            return message
        }
        let message: ChannelMessage
        do {
            message = try connection.receive(timeout: timeout ?? timeouts.step)
        } catch {
            throw EnclaveError(.protocolViolation, "waiting for \(what): \(error.message)")
        }
        if case .cancel(let reason) = message {
            throw EnclaveError(.cancelled, reason.isEmpty ? "the job was cancelled" : "the job was cancelled: \(reason)")
        }
        if case .error(let failure) = message {
            throw EnclaveError(.cancelled, "the server stopped the job: \(failure.message)")
        }
        return message
    }

    func send(_ message: ChannelMessage) throws(EnclaveError) {
        do {
            try connection.send(message, timeout: timeouts.send)
        } catch {
            throw EnclaveError(.protocolViolation, "sending \(message.type): \(error.message)")
        }
    }

    private func unexpected(_ message: ChannelMessage, _ expected: String) -> EnclaveError {
        EnclaveError(.protocolViolation, "expected \(expected), got \(message.type)")
    }

    private func execute() async throws(EnclaveError) {
        // 1. Keys, then hello.
        let rsaKey: RSA.PrivateKey, receiptKey: P256.Signing.PrivateKey
        let rsaPublic: [UInt8], receiptPublic: [UInt8], document: [UInt8]
        do {
            // Nothing else runs yet: a second core races the (randomly long) prime search.
            rsaKey = try RSA.PrivateKey(bits: 2048, racing: min(2, ProcessInfo.processInfo.activeProcessorCount))
            receiptKey = try P256.Signing.PrivateKey()
            rsaPublic = try rsaKey.publicKey.derRepresentation
            receiptPublic = try receiptKey.publicKey.derRepresentation
        } catch {
            throw EnclaveError(.internal, "could not generate the enclave keys")
        }
        let first = try receive("begin", timeout: timeouts.begin ?? .seconds(100 * 365 * 86_400))
        guard case .begin(let begin) = first else { throw unexpected(first, "begin") }
        let userData = AttestationBinding.userData(
            policyDigest: begin.policyDigest, jobID: begin.jobID, receiptPublicKey: receiptPublic)
        do {
            document = try attestor.attestationDocument(publicKey: rsaPublic, userData: userData, nonce: begin.nonce)
        } catch {
            throw EnclaveError(.attestation, "the attestor failed: \(error)")
        }
        let attestation: AttestationDocument
        do {
            attestation = try AttestationDocument(bytes: document)
        } catch {
            throw EnclaveError(.attestation, "the attestor's document does not parse: \(error)")
        }
        try send(.hello(EnclaveHello(attestationDocument: document, receiptPublicKey: receiptPublic)))

        // 2. Admission.
        let second = try receive("the job specification")
        guard case .jobSpec(let spec) = second else { throw unexpected(second, "jobSpec") }
        let admission = try Admission.check(
            spec: spec, attestedPolicyDigest: begin.policyDigest, attestation: attestation, now: Int64(now().timeIntervalSince1970))
        try send(.accepted(approvalBundleDigest: SHA256.hash(spec.approvalBundle)))

        // 3. Keys.
        var releasedKeys: [String: ReleasedDataKey] = [:]
        for _ in admission.datasets {
            let message = try receive("a key release")
            guard case .keyRelease(let release) = message else { throw unexpected(message, "keyRelease") }
            guard admission.dataset(release.datasetID) != nil, releasedKeys[release.datasetID] == nil else {
                throw EnclaveError(.keyRelease, "a key release names dataset \(release.datasetID), which is not expected")
            }
            releasedKeys[release.datasetID] = try ReleasedDataKey.open(release, with: rsaKey)
        }

        // 3b. Checkpoint key and an earlier run's checkpoint, if the server stores checkpoints.
        // Every dataset's key was released above (the loop takes exactly one per dataset).
        let checkpoints = try receiveCheckpoints(
            rsaKey: rsaKey, policyDigest: begin.policyDigest, document: document,
            datasetKeys: releasedKeys.sorted { $0.key < $1.key }.map { ($0.key, $0.value.key) })

        // 4. Data.
        try workload.prepare(admission: admission, progress: { [self] event in try? send(.progress(event)) })
        if let checkpoints { workload.useCheckpoints(checkpoints) }
        for (index, manifest) in spec.datasets.enumerated() {
            let message = try receive("dataset \(manifest.datasetID)")
            guard case .datasetBegin(let header) = message, header.datasetID == manifest.datasetID,
                header.byteCount == manifest.byteCount
            else { throw unexpected(message, "datasetBegin for \(manifest.datasetID)") }
            guard let key = releasedKeys.removeValue(forKey: manifest.datasetID) else {
                throw EnclaveError(.keyRelease, "no key was released for dataset \(manifest.datasetID)")
            }
            let hash = BackgroundDigest()
            var received: UInt64 = 0
            let ingest = try workload.beginDataset(
                index: index, dataset: admission.datasets[index], key: key, byteCount: manifest.byteCount)
            // A fault in the data (decryption, binding, CSV, schema) is held back until the whole
            // ciphertext is hashed: about a ciphertext the policy does not name, the only thing said
            // is that it is not the one named — nothing about its contents.
            var fault: EnclaveError?
            loop: while true {
                let chunk = try receive("data of \(manifest.datasetID)")
                switch chunk {
                case .datasetChunk(let bytes):
                    received += UInt64(bytes.count)
                    guard received <= manifest.byteCount else {
                        throw EnclaveError(.ciphertextMismatch, "dataset \(manifest.datasetID) is longer than its manifest says")
                    }
                    hash.update(bytes)
                    guard fault == nil else { continue }
                    do {
                        try await ingest.consume(bytes)
                    } catch {
                        fault = error
                    }
                case .datasetEnd(let id) where id == manifest.datasetID:
                    break loop
                default:
                    throw unexpected(chunk, "data of \(manifest.datasetID)")
                }
            }
            guard received == manifest.byteCount, hash.finalize() == manifest.ciphertextSHA256 else {
                throw EnclaveError(
                    .ciphertextMismatch, "dataset \(manifest.datasetID) does not match the ciphertext digest the policy names")
            }
            if let fault { throw fault }
            try await ingest.finish()
        }

        // 5. Train, deliver, sign.
        let outputs = try await workload.run()
        let entries = try await deliver(outputs)
        let receipt = Receipt(
            jobID: begin.jobID, policyDigest: Hex.encode(begin.policyDigest),
            approvalBundleDigest: Hex.encode(SHA256.hash(spec.approvalBundle)), development: isDevelopment,
            issuedAt: Int64(now().timeIntervalSince1970), outputs: entries)
        let signed: [UInt8]
        do {
            signed = try SignedReceipt.sign(receipt, with: receiptKey, attestationDocument: document).encoded()
        } catch {
            throw EnclaveError(.internal, "could not sign the receipt")
        }
        try send(.receipt(signed))
    }
}

extension EnclaveSession {
    /// After the key releases: an optional `checkpointKey` (the data key as KMS released it to this
    /// enclave), then an optional `checkpointResume`. Checkpoints are sealed under a key derived from
    /// it and the datasets' keys (`SealedCheckpoint.sealingKey`), never the key the server handed
    /// over. A checkpoint that does not open — another policy, other data, another enclave image,
    /// another key, altered bytes — is refused: the refusal is reported as progress and training
    /// starts from the beginning.
    fileprivate func receiveCheckpoints(
        rsaKey: RSA.PrivateKey, policyDigest: [UInt8], document: [UInt8], datasetKeys: [(id: String, key: SecureBytes)]
    ) throws(EnclaveError) -> CheckpointSupport? {
        let first = try receive("the first dataset")
        guard case .checkpointKey(let cms) = first else {
            pending = first
            return nil
        }
        let dataKey: SecureBytes
        do {
            let released = try CMS.EnvelopedData(berEncoded: cms).decrypt(with: rsaKey)
            dataKey = try SealedCheckpoint.sealingKey(
                checkpointKey: released, datasetKeys: datasetKeys, policyDigest: policyDigest)
        } catch {
            throw EnclaveError(.keyRelease, "the checkpoint key does not open with this enclave's key")
        }
        let measurement: [UInt8]
        do {
            measurement = try AttestationDocument(bytes: document).pcrs[0] ?? []
        } catch {
            throw EnclaveError(.internal, "the enclave's own attestation document does not parse")
        }
        let binding = SealedCheckpoint.Binding(policyDigest: policyDigest, measurement: measurement)
        var resume: (iteration: UInt32, plaintext: [UInt8])?
        let next = try receive("the first dataset")
        if case .checkpointResume(let sealed) = next {
            do {
                resume = try SealedCheckpoint.open(sealed, dataKey: dataKey, binding: binding)
            } catch {
                try send(
                    .progress(
                        ProgressEvent(
                            phase: "checkpoint", message: "checkpoint refused: \(error.message); training starts over")))
            }
        } else {
            pending = next
        }
        return CheckpointSupport(dataKey: dataKey, binding: binding, resume: resume) { [self] sealed in
            try? send(.checkpoint(sealed))
        }
    }
}

/// The data work of a job, after admission: decrypt and validate each dataset, join, train,
/// encrypt per-recipient outputs. `EnclaveSession` drives the protocol around it.
public protocol EnclaveWorkload: AnyObject {
    /// Called once, after admission and key release, before any data.
    func prepare(admission: Admission, progress: @escaping @Sendable (ProgressEvent) -> Void) throws(EnclaveError)
    /// Starts one dataset's ciphertext stream, with its released key; `byteCount` is the
    /// ciphertext's size (the plaintext is a little shorter), for sizing buffers.
    func beginDataset(index: Int, dataset: JobPolicy.Dataset, key: ReleasedDataKey, byteCount: UInt64) throws(EnclaveError)
        -> any DatasetIngest
    /// Joins, trains and evaluates; returns the outputs the policy grants, in policy order, each
    /// encrypted and streamed only when the session delivers it.
    func run() async throws(EnclaveError) -> [OutputProducer]
    /// Called before `run` when the server stores checkpoints: seal and hand out checkpoints
    /// through `support`, and resume from its state if it has one.
    func useCheckpoints(_ support: CheckpointSupport)
}

/// One dataset's ciphertext being consumed.
public protocol DatasetIngest: AnyObject {
    func consume(_ ciphertext: [UInt8]) async throws(EnclaveError)
    /// The stream ended: the message must be complete and authentic, the table valid.
    func finish() async throws(EnclaveError)
}
