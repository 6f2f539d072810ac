import Crypto

/// What a keyring produces for encryption: the data key and its encrypted copies.
public struct EncryptionMaterials: Sendable {
    public let suite: AlgorithmSuite
    /// The context the message will carry (including `aws-crypto-public-key` for signed suites).
    public let encryptionContext: EncryptionContext
    /// The plaintext data key; the first (generator) keyring sets it.
    public var plaintextDataKey: SecureBytes?
    public var encryptedDataKeys: [EncryptedDataKey]

    public init(suite: AlgorithmSuite, encryptionContext: EncryptionContext) {
        self.suite = suite
        self.encryptionContext = encryptionContext
        self.plaintextDataKey = nil
        self.encryptedDataKeys = []
    }
}

/// What a keyring produces for decryption: the plaintext data key, once one EDK opened.
public struct DecryptionMaterials: Sendable {
    public let suite: AlgorithmSuite
    /// The context read from the (not yet authenticated) header.
    public let encryptionContext: EncryptionContext
    public var plaintextDataKey: SecureBytes?

    public init(suite: AlgorithmSuite, encryptionContext: EncryptionContext) {
        self.suite = suite
        self.encryptionContext = encryptionContext
        self.plaintextDataKey = nil
    }
}

/// A keyring wraps and unwraps data keys (the Encryption SDK's keyring interface).
///
/// `onEncrypt` generates the data key if none is set yet and appends encrypted data keys.
/// `onDecrypt` tries the encrypted data keys it recognises, and throws
/// `EnvelopeError(.noDecryptableDataKey, …)` when none opens; it must not return materials
/// without a data key. Keyrings never log or put key bytes in errors.
public protocol Keyring: Sendable {
    func onEncrypt(_ materials: EncryptionMaterials) async throws -> EncryptionMaterials
    func onDecrypt(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) async throws
        -> DecryptionMaterials
}

extension Keyring {
    /// Checks a data key a keyring recovered has the suite's length.
    func checkedDataKey(_ key: SecureBytes, suite: AlgorithmSuite, from what: String) throws -> SecureBytes {
        guard key.count == suite.keyLength else {
            throw EnvelopeError(
                .invalidDataKey,
                "\(what) gave a data key of \(key.count) bytes; suite \(suite) needs \(suite.keyLength)")
        }
        return key
    }
}

func requireNoDataKey(_ materials: DecryptionMaterials) throws {
    if materials.plaintextDataKey != nil {
        throw EnvelopeError(.keyringConfiguration, "the decryption materials already hold a data key")
    }
}
