import Crypto

/// A dataset's data key, recovered inside the enclave from KMS's `CiphertextForRecipient` (a CMS
/// EnvelopedData to the enclave's attested RSA key). Held as `SecureBytes`, zeroed when released.
public struct ReleasedDataKey: Sendable {
    public let datasetID: String
    /// Which encrypted data key of the message header KMS decrypted.
    public let encryptedDataKeyIndex: Int
    public let key: SecureBytes

    /// Opens the CMS blob with the enclave's RSA key.
    public static func open(_ release: KeyRelease, with key: RSA.PrivateKey) throws(EnclaveError) -> ReleasedDataKey {
        do {
            let envelope = try CMS.EnvelopedData(berEncoded: release.ciphertextForRecipient)
            let plaintext = try envelope.decrypt(with: key)
            return ReleasedDataKey(
                datasetID: release.datasetID, encryptedDataKeyIndex: Int(release.encryptedDataKeyIndex), key: plaintext)
        } catch {
            throw EnclaveError(.keyRelease, "the key released for dataset \(release.datasetID) does not open with this enclave's key")
        }
    }
}
