import AWS
import Crypto
import Enclave
import Foundation
import Logging

/// Checkpoints through KMS and the object store. The checkpoint data key comes from
/// `GenerateDataKey` on a dedicated KMS key with `Recipient` = the enclave's attestation document,
/// so KMS answers only `CiphertextBlob` (kept by the server) and `CiphertextForRecipient` (opened
/// by the enclave); on a retry, `Decrypt` of that blob with the new enclave's document releases it
/// again. The key's policy allows both calls only with `kms:RecipientAttestation:ImageSha384` = the
/// enclave image, so only an enclave of that image ever gets the key. The encryption context binds
/// the key to the collaboration and the policy digest.
///
/// One object per collaboration and policy digest, `checkpoints/<collaboration>/<policy digest>`:
/// `CRCS`, version 1, UInt32 (big-endian) length of the CiphertextBlob, the blob, the sealed
/// checkpoint. Each store replaces it whole (the object store writes atomically).
public final class KMSCheckpointService: CheckpointService, @unchecked Sendable {
    public typealias GenerateDataKey = @Sendable (KMSWire.GenerateDataKeyRequest) throws -> KMSWire.GenerateDataKeyResponse
    public typealias Decrypt = @Sendable (KMSWire.DecryptRequest) throws -> KMSWire.DecryptResponse

    let objects: any ObjectStore
    let keyID: String
    let generateDataKey: GenerateDataKey
    let decrypt: Decrypt
    /// Where a checkpoint the object store could not keep is logged (with the store's error).
    let logger: Logger?
    /// The CiphertextBlob of the key each running job's enclave holds, by job id.
    private let lock = NSLock()
    private var blobs: [String: [UInt8]] = [:]
    /// The version of the checkpoint object each running job stored last, by job id: it goes once
    /// the job stores a newer one, so a long run keeps its latest checkpoint, not every one (a
    /// review found 1148 versions, 924 MB, after 12 s of a 20,000-round job). Only a job's own
    /// versions go: the one an earlier run left stays until this run succeeds, since this run may
    /// have started over from nothing (a key KMS did not release, another image) and be killed
    /// before it gets as far; and a job never deletes another running job's version.
    private var latestVersions: [String: String] = [:]

    static let magic: [UInt8] = Array("CRCS".utf8)
    /// Largest stored checkpoint object read back.
    static let maxObjectBytes = ChannelLimits.default.maxCheckpointPayload + 64 * 1024

    public init(
        objects: any ObjectStore, keyID: String, generateDataKey: @escaping GenerateDataKey, decrypt: @escaping Decrypt,
        logger: Logger? = nil
    ) {
        self.objects = objects
        self.keyID = keyID
        self.generateDataKey = generateDataKey
        self.decrypt = decrypt
        self.logger = logger
    }

    /// Where the latest checkpoint of a collaboration's policy lives.
    public static func objectKey(collaborationID: String, policyDigest: [UInt8]) -> String {
        "checkpoints/\(collaborationID)/\(Hex.encode(policyDigest))"
    }

    static func context(_ plan: JobPlan) -> [String: String] {
        [
            "cleanroom:purpose": "training-checkpoint", "cleanroom:collaboration": plan.collaborationID,
            "cleanroom:policy": Hex.encode(plan.policyDigest),
        ]
    }

    public func grant(plan: JobPlan, attestationDocument: [UInt8]) throws(JobFailure) -> CheckpointGrant {
        let recipient = KMSWire.RecipientInfo(attestationDocument: Data(attestationDocument))
        var note: String?
        let stored: (blob: [UInt8], sealed: [UInt8])?
        do {
            stored = try load(plan)
        } catch {
            stored = nil
            note = "the stored checkpoint cannot be used (\(error.message)); training starts over"
        }
        if let stored {
            do {
                let response = try decrypt(
                    KMSWire.DecryptRequest(
                        ciphertextBlob: Data(stored.blob), keyId: keyID, encryptionContext: Self.context(plan),
                        recipient: recipient))
                let cms = try Self.recipientOnly(plaintext: response.plaintext, cms: response.ciphertextForRecipient)
                lock.withLock { blobs[plan.jobID] = stored.blob }
                return CheckpointGrant(ciphertextForRecipient: cms, sealedCheckpoint: stored.sealed)
            } catch let error as JobFailure {
                throw error
            } catch {
                note = "KMS did not release the stored checkpoint's key to this enclave (\(error)); training starts over"
            }
        }
        let response: KMSWire.GenerateDataKeyResponse
        do {
            response = try generateDataKey(
                KMSWire.GenerateDataKeyRequest(
                    keyId: keyID, numberOfBytes: 32, encryptionContext: Self.context(plan), recipient: recipient))
        } catch {
            let earlier = note.map { $0 + "; " } ?? ""
            throw JobFailure(code: "checkpoint.key_refused", message: "\(earlier)KMS refused a new checkpoint key: \(error)")
        }
        let cms = try Self.recipientOnly(plaintext: response.plaintext, cms: response.ciphertextForRecipient)
        lock.withLock { blobs[plan.jobID] = Array(response.ciphertextBlob) }
        return CheckpointGrant(ciphertextForRecipient: cms, note: note)
    }

    /// The server must never hold the key: an answer with a plaintext is refused.
    static func recipientOnly(plaintext: Data?, cms: Data?) throws(JobFailure) -> [UInt8] {
        guard plaintext == nil, let cms, !cms.isEmpty else {
            throw JobFailure(
                code: "checkpoint.plaintext", message: "KMS did not answer with CiphertextForRecipient; nothing was forwarded")
        }
        return Array(cms)
    }

    public func store(plan: JobPlan, sealed: [UInt8]) throws(JobFailure) {
        guard let blob = lock.withLock({ blobs[plan.jobID] }) else {
            throw JobFailure(code: "checkpoint.no_key", message: "no checkpoint key was granted to this job")
        }
        guard SealedCheckpoint.iteration(of: sealed) != nil else {
            throw JobFailure(code: "checkpoint.malformed", message: "the enclave sent bytes that are not a sealed checkpoint")
        }
        var object = Self.magic + [1]
        object += withUnsafeBytes(of: UInt32(blob.count).bigEndian) { Array($0) }
        object += blob + sealed
        let objects = self.objects, key = Self.objectKey(collaborationID: plan.collaborationID, policyDigest: plan.policyDigest)
        let bytes = object
        let stored: ObjectInfo
        switch BlockingTask.run({ try await objects.put(key: key, body: ByteStream(bytes: bytes)) }) {
        case .success(let info): stored = info
        case .failure(let error):
            // The reason reaches every party (a progress event): the store's own error, which names
            // the server's files, goes to the log only.
            let failure = StoreFailure(error, ["job": "\(plan.jobID)", "object": "\(key)"])
            logger?.error("a checkpoint could not be stored; the job goes on without it", metadata: failure.metadata)
            let reason = failure.isFull ? "the server's storage is full" : "the object store failed"
            throw JobFailure(code: "checkpoint.store", message: "the checkpoint could not be stored: \(reason)")
        }
        // The one it supersedes is removed (a failure to remove it costs space, not the job).
        let superseded = lock.withLock { () -> String? in
            defer { latestVersions[plan.jobID] = stored.versionId }
            return latestVersions[plan.jobID]
        }
        if let superseded, superseded != stored.versionId {
            _ = BlockingTask.run { try await objects.delete(key: key, versionId: superseded) }
        }
    }

    public func ended(plan: JobPlan, succeeded: Bool) {
        lock.withLock {
            _ = blobs.removeValue(forKey: plan.jobID)
            _ = latestVersions.removeValue(forKey: plan.jobID)
        }
        guard succeeded else { return }
        // A failure to delete costs space, not the job.
        try? drop(collaborationID: plan.collaborationID, policyDigest: plan.policyDigest)
    }

    public func drop(collaborationID: String, policyDigest: [UInt8]) throws(JobFailure) {
        let objects = self.objects, key = Self.objectKey(collaborationID: collaborationID, policyDigest: policyDigest)
        switch BlockingTask.run({ try await objects.delete(key: key) }) {
        case .success: return
        case .failure(let error as ObjectStoreError) where error.code == .notFound: return
        case .failure(let error):
            throw JobFailure(code: "checkpoint.store", message: "the checkpoint could not be deleted: \(error)")
        }
    }

    private func load(_ plan: JobPlan) throws(JobFailure) -> (blob: [UInt8], sealed: [UInt8])? {
        let objects = self.objects, key = Self.objectKey(collaborationID: plan.collaborationID, policyDigest: plan.policyDigest)
        let limit = Self.maxObjectBytes
        let result = BlockingTask.run { () async throws -> [UInt8]? in
            let download: ObjectDownload
            do {
                download = try await objects.get(key: key)
            } catch let error as ObjectStoreError where error.code == .notFound {
                return nil
            }
            do {
                return try await download.body.collect(limit: limit)
            } catch let error as HTTPClientError where error.code == .bodyTooLarge {
                throw JobFailure(code: "checkpoint.too_large", message: "the stored checkpoint is too large")
            }
        }
        let bytes: [UInt8]
        switch result {
        case .success(nil): return nil
        case .success(let value?): bytes = value
        case .failure(let error as JobFailure): throw error
        case .failure(let error):
            throw JobFailure(code: "checkpoint.store", message: "the stored checkpoint could not be read: \(error)")
        }
        guard bytes.count >= 9, Array(bytes[0..<4]) == Self.magic, bytes[4] == 1 else {
            throw JobFailure(code: "checkpoint.malformed", message: "the stored checkpoint object is malformed")
        }
        let length = Int(bytes[5..<9].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        guard length >= 1, 9 + length < bytes.count else {
            throw JobFailure(code: "checkpoint.malformed", message: "the stored checkpoint object is malformed")
        }
        return (Array(bytes[9..<9 + length]), Array(bytes[(9 + length)...]))
    }
}
