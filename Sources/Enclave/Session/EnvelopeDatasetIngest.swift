import Crypto
import Envelope

/// Decrypts one dataset's Encryption SDK message with its released data key and hands the
/// plaintext on — but only after the header authenticated and its encryption context passed the
/// approval binding check (DESIGN §2.3). The plaintext is provisional until `finish` verified the
/// whole message; `onFinish` runs only then.
public final class EnvelopeDatasetIngest: DatasetIngest {
    let dataset: JobPolicy.Dataset
    let approvals: VerifiedApprovalBundle
    let decryptor: MessageDecryptor
    let onPlaintext: ([UInt8]) throws(EnclaveError) -> Void
    let onFinish: () throws(EnclaveError) -> Void
    private(set) var authorized = false

    public init(
        dataset: JobPolicy.Dataset, key: ReleasedDataKey, approvals: VerifiedApprovalBundle,
        onPlaintext: @escaping ([UInt8]) throws(EnclaveError) -> Void,
        onFinish: @escaping () throws(EnclaveError) -> Void
    ) {
        self.dataset = dataset
        self.approvals = approvals
        self.onPlaintext = onPlaintext
        self.onFinish = onFinish
        decryptor = MessageDecryptor(keyring: ReleasedKeyring(key: key), policy: .committingOnly)
    }

    public func consume(_ ciphertext: [UInt8]) async throws(EnclaveError) {
        let plaintext: UnverifiedPlaintext
        do {
            plaintext = try await decryptor.update(ciphertext)
        } catch {
            throw EnclaveError(.decryption, "dataset \(dataset.id) does not decrypt: \(Self.describe(error))")
        }
        try authorizeIfReady()
        guard !plaintext.isEmpty else { return }
        guard authorized else { throw EnclaveError(.internal, "plaintext before the binding check") }
        try onPlaintext(plaintext.bytes)
    }

    public func finish() async throws(EnclaveError) {
        do {
            _ = try decryptor.finish()
        } catch {
            throw EnclaveError(.decryption, "dataset \(dataset.id) does not decrypt: \(Self.describe(error))")
        }
        try authorizeIfReady()
        guard authorized else { throw EnclaveError(.decryption, "dataset \(dataset.id) has no header") }
        try onFinish()
    }

    private func authorizeIfReady() throws(EnclaveError) {
        guard !authorized, let header = decryptor.authenticatedHeader else { return }
        var context: [String: String] = [:]
        for pair in header.encryptionContext.pairs { context[pair.key] = pair.value }
        try approvals.authorize(dataset: dataset, encryptionContext: context)
        authorized = true
    }

    /// An envelope error's message (never key material); other errors by type only.
    static func describe(_ error: any Error) -> String {
        if let error = error as? EnvelopeError { return error.message }
        return String(describing: type(of: error))
    }
}

/// A keyring holding a data key KMS already released to this enclave (via `CiphertextForRecipient`):
/// it answers for the one encrypted data key KMS decrypted, and nothing else.
struct ReleasedKeyring: Keyring {
    let key: ReleasedDataKey

    func onEncrypt(_ materials: EncryptionMaterials) async throws -> EncryptionMaterials {
        throw EnvelopeError(.keyringConfiguration, "a released-key keyring cannot encrypt")
    }

    func onDecrypt(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) async throws
        -> DecryptionMaterials
    {
        guard encryptedDataKeys.indices.contains(key.encryptedDataKeyIndex),
            encryptedDataKeys[key.encryptedDataKeyIndex].providerID == "aws-kms"
        else {
            throw EnvelopeError(
                .noDecryptableDataKey, "the released key does not belong to an aws-kms data key of this message")
        }
        var result = materials
        result.plaintextDataKey = key.key
        return result
    }
}
