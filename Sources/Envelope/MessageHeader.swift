/// How the body of a message is laid out.
public enum ContentType: UInt8, Sendable, Hashable {
    /// One block: IV, 8-byte length, ciphertext, tag. Read only; authenticated only as a whole.
    case nonFramed = 1
    /// A sequence of frames of `frameLength` bytes and a final frame. The only type this module writes.
    case framed = 2
}

/// A parsed message header: what the server validates on upload (suite, encrypted data keys,
/// encryption context) and what the decryptor needs. Parsing does NOT authenticate it: the
/// header is trustworthy only after a `MessageDecryptor` has checked its tag (and commitment).
public struct MessageHeader: Sendable, Equatable {
    public let version: MessageFormatVersion
    public let suite: AlgorithmSuite
    /// 16 bytes (format 1) or 32 bytes (format 2).
    public let messageID: [UInt8]
    public let encryptionContext: EncryptionContext
    public let encryptedDataKeys: [EncryptedDataKey]
    public let contentType: ContentType
    /// Plaintext bytes per regular frame; 0 for non-framed messages.
    public let frameLength: UInt32
    /// The key-commitment value of committing suites (32 bytes); empty otherwise.
    public let commitment: [UInt8]
    /// The IV of the header authentication: read from format-1 headers, all zeros in format 2.
    public let authenticationIV: [UInt8]
    public let authenticationTag: [UInt8]
    /// The exact header body bytes that the header tag authenticates (everything before the IV/tag).
    public let body: [UInt8]

    /// Total bytes the header occupies in the message, header authentication included.
    public var length: Int { body.count + (version == .v1 ? authenticationIV.count : 0) + authenticationTag.count }

    /// The full header bytes as they appear in the message.
    public var bytes: [UInt8] {
        body + (version == .v1 ? authenticationIV : []) + authenticationTag
    }

    /// The verification key of signed suites (`aws-crypto-public-key`, base64 of a compressed point).
    public var verificationKeyBase64: String? { encryptionContext[EncryptionContext.publicKeyKey] }

    init(
        version: MessageFormatVersion, suite: AlgorithmSuite, messageID: [UInt8], encryptionContext: EncryptionContext,
        encryptedDataKeys: [EncryptedDataKey], contentType: ContentType, frameLength: UInt32, commitment: [UInt8],
        authenticationIV: [UInt8], authenticationTag: [UInt8], body: [UInt8]
    ) {
        self.version = version
        self.suite = suite
        self.messageID = messageID
        self.encryptionContext = encryptionContext
        self.encryptedDataKeys = encryptedDataKeys
        self.contentType = contentType
        self.frameLength = frameLength
        self.commitment = commitment
        self.authenticationIV = authenticationIV
        self.authenticationTag = authenticationTag
        self.body = body
    }

    /// Serializes a format-2 header body (everything the header tag covers). Used by the encryptor.
    static func serializeV2Body(
        suite: AlgorithmSuite, messageID: [UInt8], encryptionContext: EncryptionContext,
        encryptedDataKeys: [EncryptedDataKey], frameLength: UInt32, commitment: [UInt8]
    ) throws -> [UInt8] {
        var out: [UInt8] = [MessageFormatVersion.v2.rawValue]
        out.appendUInt16(suite.id)
        out.append(contentsOf: messageID)
        let aad = try encryptionContext.serialized()
        try out.appendLengthPrefixed16(aad, "the encryption context")
        guard !encryptedDataKeys.isEmpty, encryptedDataKeys.count <= Int(UInt16.max) else {
            throw EnvelopeError(.invalidArgument, "a message needs between 1 and 65535 encrypted data keys")
        }
        out.appendUInt16(UInt16(encryptedDataKeys.count))
        for key in encryptedDataKeys { try key.serialize(into: &out) }
        out.append(ContentType.framed.rawValue)
        out.appendUInt32(frameLength)
        out.append(contentsOf: commitment)
        return out
    }
}
