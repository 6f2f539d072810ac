import Crypto

/// A keyring over AWS KMS (or the local KMS): encrypted data keys with provider id `aws-kms`
/// and the KMS key ARN as provider info.
///
/// With a key id it encrypts (GenerateDataKey when it makes the data key, Encrypt otherwise)
/// and decrypts only EDKs of that key. In discovery mode (`KMSKeyring(discovery:)`) it cannot
/// encrypt and decrypts any `aws-kms` EDK, naming that EDK's own ARN to KMS.
public struct KMSKeyring: Keyring {
    /// The provider id of every EDK this keyring writes.
    public static let providerID = "aws-kms"

    public let kms: any KeyManagementService
    /// The configured key (id, alias or ARN); nil in discovery mode.
    public let keyID: String?

    public init(kms: any KeyManagementService, keyID: String) throws {
        guard !keyID.isEmpty else { throw EnvelopeError(.keyringConfiguration, "a KMS keyring needs a key id") }
        self.kms = kms
        self.keyID = keyID
    }

    /// A decrypt-only keyring that accepts any `aws-kms` encrypted data key.
    public init(discovery kms: any KeyManagementService) {
        self.kms = kms
        self.keyID = nil
    }

    public func onEncrypt(_ materials: EncryptionMaterials) async throws -> EncryptionMaterials {
        guard let keyID else {
            throw EnvelopeError(.keyringConfiguration, "a discovery KMS keyring cannot encrypt")
        }
        var result = materials
        let context = materials.encryptionContext.dictionary
        do {
            if let dataKey = materials.plaintextDataKey {
                let encrypted = try await kms.encrypt(keyID: keyID, plaintext: dataKey, encryptionContext: context)
                result.encryptedDataKeys.append(try edk(arn: encrypted.keyARN, ciphertext: encrypted.ciphertextBlob))
            } else {
                let generated = try await kms.generateDataKey(
                    keyID: keyID, byteCount: materials.suite.keyLength, encryptionContext: context)
                result.plaintextDataKey = try checkedDataKey(
                    generated.plaintext, suite: materials.suite, from: "KMS GenerateDataKey")
                result.encryptedDataKeys.append(try edk(arn: generated.keyARN, ciphertext: generated.ciphertextBlob))
            }
        } catch let error as EnvelopeError {
            throw error
        } catch {
            throw EnvelopeError(.keyManagementService, "KMS key \(keyID): \(error)")
        }
        return result
    }

    public func onDecrypt(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) async throws
        -> DecryptionMaterials
    {
        try requireNoDataKey(materials)
        var failures: [String] = []
        for key in encryptedDataKeys where key.providerID == Self.providerID {
            guard let arn = key.providerInfoText, !arn.isEmpty else { continue }
            if let keyID, keyID != arn { continue }
            do {
                let decrypted = try await kms.decrypt(
                    keyID: arn, ciphertextBlob: key.ciphertext, encryptionContext: materials.encryptionContext.dictionary)
                guard decrypted.keyARN == arn else {
                    failures.append("KMS answered with key \(decrypted.keyARN), not \(arn)")
                    continue
                }
                var result = materials
                result.plaintextDataKey = try checkedDataKey(decrypted.plaintext, suite: materials.suite, from: "KMS Decrypt")
                return result
            } catch {
                failures.append("KMS key \(arn): \(error)")
            }
        }
        let wanted = keyID.map { "for KMS key \($0)" } ?? "from KMS"
        throw EnvelopeError(
            .noDecryptableDataKey,
            "no encrypted data key \(wanted) could be decrypted" + (failures.isEmpty ? "" : ": " + failures.joined(separator: "; ")))
    }

    private func edk(arn: String, ciphertext: [UInt8]) throws -> EncryptedDataKey {
        guard arn.hasPrefix("arn:") else {
            throw EnvelopeError(.keyManagementService, "KMS answered with key id \"\(arn)\", which is not an ARN")
        }
        return EncryptedDataKey(providerID: Self.providerID, providerInfo: Array(arn.utf8), ciphertext: ciphertext)
    }
}
