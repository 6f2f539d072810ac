/// Plaintext released by `MessageDecryptor.update`: every byte comes from a frame whose AES-GCM
/// tag authenticated, but the MESSAGE is not verified yet — it may still turn out truncated,
/// extended, or (for signed suites) wrongly signed. Treat it as provisional: write it somewhere
/// you can discard, and act on it only after `finish()` returned a `VerifiedMessage`.
public struct UnverifiedPlaintext: Sendable {
    public let bytes: [UInt8]
    public var isEmpty: Bool { bytes.isEmpty }
    public var count: Int { bytes.count }
}

/// Proof that a whole message decrypted: header tag and key commitment checked, every frame
/// authenticated in sequence, the final frame seen, no trailing bytes, and for signed suites
/// the footer signature verified. Only `MessageDecryptor.finish()` creates one.
public struct VerifiedMessage: Sendable {
    /// The authenticated header (suite, encryption context, encrypted data keys).
    public let header: MessageHeader
    /// Total plaintext bytes released.
    public let plaintextLength: UInt64
    /// True for signed suites (the footer signature verified); false when the suite has no signature.
    public let signatureVerified: Bool

    public var encryptionContext: EncryptionContext { header.encryptionContext }
    public var suite: AlgorithmSuite { header.suite }
}

/// What a decryptor accepts beyond the message format itself.
public struct DecryptionPolicy: Sendable {
    /// Suites this caller accepts (default: every suite the module reads).
    public var allowedSuites: [AlgorithmSuite]
    /// Pairs that must be present, with these values, in the message's encryption context.
    public var requiredEncryptionContext: EncryptionContext

    public init(
        allowedSuites: [AlgorithmSuite] = AlgorithmSuite.all, requiredEncryptionContext: EncryptionContext = .init()
    ) {
        self.allowedSuites = allowedSuites
        self.requiredEncryptionContext = requiredEncryptionContext
    }

    /// Only the committing format-2 suites.
    public static let committingOnly = DecryptionPolicy(allowedSuites: AlgorithmSuite.encryptable)
}
