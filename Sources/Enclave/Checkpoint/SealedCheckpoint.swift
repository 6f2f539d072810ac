import Crypto

/// A training checkpoint sealed inside the enclave for storage outside it (DESIGN §7): AES-256-GCM
/// under a key derived from the checkpoint data key that KMS releases only to an attested enclave
/// and from the datasets' data keys (`sealingKey`), authenticated together with the policy digest
/// and the sealing enclave's measurement (PCR0), so that a checkpoint opens only for the same
/// policy and data in an enclave of the same image.
///
/// Layout: `CRCK`, version 1, iteration (UInt32 big-endian), 12-byte nonce, ciphertext, 16-byte
/// tag. The iteration is in the clear (progress events reveal it anyway) but authenticated.
/// AAD = `cleanroom-checkpoint-v1` ‖ 0x00 ‖ policy digest ‖ UInt16 length ‖ PCR0 ‖ the 9 header bytes.
public enum SealedCheckpoint {
    static let magic: [UInt8] = Array("CRCK".utf8)
    static let version: UInt8 = 1
    static let label = Array("cleanroom-checkpoint-v1".utf8)
    static let headerBytes = 9
    /// The smallest well-formed sealed checkpoint (an empty plaintext).
    public static let minimumBytes = SealedCheckpointLayout.minimumBytes

    /// What a checkpoint is bound to.
    public struct Binding: Sendable, Equatable {
        /// SHA-256 of the policy (32 bytes).
        public var policyDigest: [UInt8]
        /// PCR0 of the enclave image that seals or opens it.
        public var measurement: [UInt8]

        public init(policyDigest: [UInt8], measurement: [UInt8]) {
            self.policyDigest = policyDigest
            self.measurement = measurement
        }

        func aad(header: [UInt8]) -> [UInt8] {
            var out = label + [0] + policyDigest
            out += [UInt8(truncatingIfNeeded: measurement.count >> 8), UInt8(truncatingIfNeeded: measurement.count)]
            return out + measurement + header
        }
    }

    /// The iteration a sealed checkpoint claims (unauthenticated until `open` succeeds), or nil
    /// when the bytes are not a sealed checkpoint.
    public static func iteration(of sealed: [UInt8]) -> UInt32? {
        guard sealed.count >= minimumBytes, Array(sealed[0..<4]) == magic, sealed[4] == version else { return nil }
        return sealed[5..<9].reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// The key checkpoints are sealed under: the checkpoint data key and every dataset's data key
    /// (each with its dataset id, by id), with the policy digest as salt. The enclave cannot tell a
    /// checkpoint key KMS released from one the server chose and wrapped to the enclave's public key
    /// (it is in the attestation document); the dataset keys the server cannot know or choose, since
    /// a wrong one does not decrypt its dataset (key commitment, and the ciphertext digest the policy
    /// names) and the job fails before it trains. So no checkpoint is ever sealed under a key the
    /// operator knows, unless it colludes with every dataset's owner (who know their data keys).
    public static func sealingKey(
        checkpointKey: SecureBytes, datasetKeys: [(id: String, key: SecureBytes)], policyDigest: [UInt8]
    ) throws(EnclaveError) -> SecureBytes {
        var material: [UInt8] = []
        material.reserveCapacity(2 + checkpointKey.count + datasetKeys.reduce(0) { $0 + 4 + $1.id.utf8.count + $1.key.count })
        func append(_ bytes: UnsafeRawBufferPointer) {
            material += [UInt8(truncatingIfNeeded: bytes.count >> 8), UInt8(truncatingIfNeeded: bytes.count)]
            material.append(contentsOf: bytes)
        }
        checkpointKey.withUnsafeBytes(append)
        for (id, key) in datasetKeys.sorted(by: { $0.id < $1.id }) {
            Array(id.utf8).withUnsafeBytes(append)
            key.withUnsafeBytes(append)
        }
        defer { for index in material.indices { material[index] = 0 } }
        do {
            return try HKDF.deriveKey(
                inputKeyMaterial: SecureBytes(material), salt: policyDigest, info: label + Array(" sealing key".utf8),
                outputByteCount: 32, hash: .sha256)
        } catch {
            throw EnclaveError(.internal, "could not derive the checkpoint key")
        }
    }

    static func encryptionKey(_ dataKey: SecureBytes) throws -> SecureBytes {
        try HKDF.deriveKey(
            inputKeyMaterial: dataKey, salt: [], info: label + Array(" key".utf8), outputByteCount: 32, hash: .sha256)
    }

    /// Seals `plaintext` (a training checkpoint after `iteration` iterations).
    public static func seal(
        _ plaintext: [UInt8], iteration: UInt32, dataKey: SecureBytes, binding: Binding
    ) throws(EnclaveError) -> [UInt8] {
        let header = magic + [version] + withUnsafeBytes(of: iteration.bigEndian) { Array($0) }
        do {
            let nonce = try SecureRandom.bytes(count: AESGCM.nonceByteCount)
            let box = try AESGCM.seal(
                plaintext, key: try encryptionKey(dataKey), nonce: nonce, authenticating: binding.aad(header: header))
            return header + nonce + box.ciphertext + box.tag
        } catch {
            throw EnclaveError(.internal, "could not seal the checkpoint")
        }
    }

    /// Opens a sealed checkpoint; fails unless it was sealed with the same data key, policy digest
    /// and measurement and is unaltered.
    public static func open(
        _ sealed: [UInt8], dataKey: SecureBytes, binding: Binding
    ) throws(EnclaveError) -> (iteration: UInt32, plaintext: [UInt8]) {
        guard let iteration = iteration(of: sealed) else {
            throw EnclaveError(.checkpointInvalid, "the checkpoint is not a sealed checkpoint of this version")
        }
        let header = Array(sealed[0..<headerBytes])
        let nonce = Array(sealed[headerBytes..<headerBytes + AESGCM.nonceByteCount])
        let body = Array(sealed[(headerBytes + AESGCM.nonceByteCount)..<(sealed.count - AESGCM.tagByteCount)])
        let tag = Array(sealed[(sealed.count - AESGCM.tagByteCount)...])
        do {
            let plaintext = try AESGCM.open(
                body, tag: tag, key: try encryptionKey(dataKey), nonce: nonce, authenticating: binding.aad(header: header))
            return (iteration, plaintext)
        } catch {
            throw EnclaveError(
                .checkpointInvalid,
                "the checkpoint does not open: it was sealed for another policy, another enclave image or another key, "
                    + "or it was altered")
        }
    }
}
