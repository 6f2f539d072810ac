import Crypto

/// The three AWS KMS operations the KMS keyring needs, with AWS's semantics.
///
/// Implemented by the AWS KMS client (AWS mode) and the local KMS (embedded mode); both speak the
/// same JSON protocol. Key identifiers may be a key id, alias or ARN on input; every result
/// carries the key ARN that KMS actually used, which the keyring stores as the encrypted data
/// key's provider info (provider id `aws-kms`). The encryption context is passed to KMS so KMS
/// binds it to the ciphertext too; a Decrypt with a different context must fail.
///
/// Errors: throw anything; the keyring wraps it as `EnvelopeError(.keyManagementService, …)`
/// using the error's description, so descriptions must not contain secrets.
public protocol KeyManagementService: Sendable {
    /// `GenerateDataKey`: a fresh random data key of `byteCount` bytes (`NumberOfBytes`), in
    /// plaintext and encrypted under `keyID`.
    func generateDataKey(
        keyID: String, byteCount: Int, encryptionContext: [String: String]
    ) async throws -> KMSGeneratedDataKey

    /// `Encrypt`: `plaintext` (a data key) encrypted under `keyID`.
    func encrypt(
        keyID: String, plaintext: SecureBytes, encryptionContext: [String: String]
    ) async throws -> KMSEncryptedKey

    /// `Decrypt` of `ciphertextBlob`, naming the expected key (`KeyId`) so KMS refuses to use another.
    func decrypt(
        keyID: String, ciphertextBlob: [UInt8], encryptionContext: [String: String]
    ) async throws -> KMSDecryptedKey
}

/// The answer to `GenerateDataKey`.
public struct KMSGeneratedDataKey: Sendable {
    /// The plaintext data key (`Plaintext`); zeroed when released.
    public let plaintext: SecureBytes
    /// The encrypted data key (`CiphertextBlob`).
    public let ciphertextBlob: [UInt8]
    /// The ARN of the KMS key that encrypted it (`KeyId`).
    public let keyARN: String

    public init(plaintext: SecureBytes, ciphertextBlob: [UInt8], keyARN: String) {
        self.plaintext = plaintext
        self.ciphertextBlob = ciphertextBlob
        self.keyARN = keyARN
    }
}

/// The answer to `Encrypt`.
public struct KMSEncryptedKey: Sendable {
    /// `CiphertextBlob`.
    public let ciphertextBlob: [UInt8]
    /// The ARN of the KMS key that encrypted it (`KeyId`).
    public let keyARN: String

    public init(ciphertextBlob: [UInt8], keyARN: String) {
        self.ciphertextBlob = ciphertextBlob
        self.keyARN = keyARN
    }
}

/// The answer to `Decrypt`.
public struct KMSDecryptedKey: Sendable {
    /// The plaintext data key (`Plaintext`); zeroed when released.
    public let plaintext: SecureBytes
    /// The ARN of the KMS key that decrypted it (`KeyId`).
    public let keyARN: String

    public init(plaintext: SecureBytes, keyARN: String) {
        self.plaintext = plaintext
        self.keyARN = keyARN
    }
}
