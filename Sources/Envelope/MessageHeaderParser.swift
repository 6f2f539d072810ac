/// Parses Encryption SDK message headers (formats 1 and 2) without any key.
///
/// The server uses it to validate uploads (suite, encrypted data keys, encryption context) and
/// the decryptor uses it to start. It reads incrementally: given a prefix of a message it either
/// throws as soon as the prefix cannot start a valid header, returns nil when more bytes are
/// needed, or returns the header, whose `length` says how many bytes it occupied. Everything it
/// buffers is bounded by `limits.maxHeaderLength`.
///
/// Layout (big-endian), from the specification's data-format/message-header.md:
/// ```
/// v1: Version(1)=01 Type(1)=80 Suite(2) MessageID(16) AADLength(2) AAD EDKCount(2) EDKs
///     ContentType(1) Reserved(4)=0 IVLength(1) FrameLength(4) | IV(12) Tag(16)
/// v2: Version(1)=02 Suite(2) MessageID(32) AADLength(2) AAD EDKCount(2) EDKs
///     ContentType(1) FrameLength(4) SuiteData(32) | Tag(16)
/// AAD = empty | PairCount(2)>0 (KeyLength(2) Key ValueLength(2) Value)*
/// EDK = ProviderIDLength(2) ProviderID ProviderInfoLength(2) ProviderInfo CiphertextLength(2) Ciphertext
/// ```
public struct MessageHeaderParser: Sendable {
    public var limits: MessageLimits

    public init(limits: MessageLimits = .default) { self.limits = limits }

    /// The header at the start of `bytes`, nil if `bytes` is a valid but incomplete prefix.
    public func parse(_ bytes: [UInt8]) throws -> MessageHeader? { try parse(bytes[...]) }

    /// The header at the start of `bytes`, nil if `bytes` is a valid but incomplete prefix.
    public func parse(_ bytes: ArraySlice<UInt8>) throws -> MessageHeader? {
        do {
            let header = try parseOrThrowIncomplete(bytes)
            return header
        } catch is Incomplete {
            if bytes.count >= limits.maxHeaderLength {
                throw EnvelopeError(
                    .headerTooLarge, "the header is longer than the limit of \(limits.maxHeaderLength) bytes")
            }
            return nil
        }
    }

    /// The header at the start of `bytes`, which must hold all of it (`truncatedHeader` otherwise).
    public func parseComplete(_ bytes: [UInt8]) throws -> MessageHeader {
        guard let header = try parse(bytes) else {
            throw EnvelopeError(.truncatedHeader, "the input ends inside the message header (\(bytes.count) bytes)")
        }
        return header
    }

    private struct Incomplete: Error {}

    private func parseOrThrowIncomplete(_ bytes: ArraySlice<UInt8>) throws -> MessageHeader {
        var cursor = ByteCursor(bytes)
        func take<T>(_ value: T?) throws -> T {
            guard let value else { throw Incomplete() }
            guard cursor.offset <= limits.maxHeaderLength else {
                throw EnvelopeError(
                    .headerTooLarge, "the header is longer than the limit of \(limits.maxHeaderLength) bytes")
            }
            return value
        }

        let versionByte = try take(cursor.readUInt8())
        guard let version = MessageFormatVersion(rawValue: versionByte) else {
            throw EnvelopeError(
                .unsupportedVersion, "message format version 0x\(String(versionByte, radix: 16)) is not 1 or 2")
        }
        if version == .v1 {
            let type = try take(cursor.readUInt8())
            guard type == 0x80 else {
                throw EnvelopeError(
                    .unsupportedMessageType,
                    "message type 0x\(String(type, radix: 16)) is not 0x80 (customer authenticated encrypted data)")
            }
        }
        let suiteID = try take(cursor.readUInt16())
        guard let suite = AlgorithmSuite.suite(id: suiteID) else {
            throw EnvelopeError(.unsupportedAlgorithmSuite, "algorithm suite 0x\(hex4(suiteID)) is not supported")
        }
        guard suite.messageFormat == version else {
            throw EnvelopeError(
                .algorithmSuiteNotAllowed,
                "algorithm suite \(suite) belongs to message format \(suite.messageFormat.rawValue), "
                    + "not \(version.rawValue)")
        }
        let messageID = Array(try take(cursor.read(suite.messageIDLength)))

        let aadLength = try take(cursor.readUInt16())
        let aad = try take(cursor.read(Int(aadLength)))
        let context = try EncryptionContext.parse(aad)

        let keyCount = try take(cursor.readUInt16())
        guard keyCount > 0 else {
            throw EnvelopeError(.noEncryptedDataKeys, "the header has no encrypted data keys")
        }
        guard Int(keyCount) <= limits.maxEncryptedDataKeys else {
            throw EnvelopeError(
                .tooManyEncryptedDataKeys,
                "the header has \(keyCount) encrypted data keys, more than the limit of \(limits.maxEncryptedDataKeys)")
        }
        var keys: [EncryptedDataKey] = []
        keys.reserveCapacity(Int(keyCount))
        for index in 0..<Int(keyCount) {
            let idBytes = try take(cursor.read(Int(try take(cursor.readUInt16()))))
            let info = try take(cursor.read(Int(try take(cursor.readUInt16()))))
            let ciphertext = try take(cursor.read(Int(try take(cursor.readUInt16()))))
            guard let providerID = String(validating: idBytes, as: UTF8.self) else {
                throw EnvelopeError(.invalidUTF8, "the provider id of encrypted data key \(index + 1) is not UTF-8")
            }
            keys.append(EncryptedDataKey(providerID: providerID, providerInfo: Array(info), ciphertext: Array(ciphertext)))
        }

        let contentByte = try take(cursor.readUInt8())
        guard let contentType = ContentType(rawValue: contentByte) else {
            throw EnvelopeError(
                .invalidContentType, "content type 0x\(String(contentByte, radix: 16)) is not 1 (non-framed) or 2 (framed)")
        }
        if version == .v1 {
            let reserved = try take(cursor.readUInt32())
            guard reserved == 0 else {
                throw EnvelopeError(.invalidReservedBytes, "the reserved header field is not zero")
            }
            let ivLength = try take(cursor.readUInt8())
            guard Int(ivLength) == suite.ivLength else {
                throw EnvelopeError(
                    .invalidIVLength, "the header declares an IV length of \(ivLength), suite \(suite) uses \(suite.ivLength)")
            }
        }
        let frameLength = try take(cursor.readUInt32())
        switch contentType {
        case .framed:
            guard frameLength > 0 else {
                throw EnvelopeError(.invalidFrameLength, "a framed message declares a frame length of 0")
            }
            guard UInt64(frameLength) <= UInt64(limits.maxFrameLength) else {
                throw EnvelopeError(
                    .frameLengthExceedsLimit,
                    "the frame length \(frameLength) is larger than the limit of \(limits.maxFrameLength) bytes")
            }
        case .nonFramed:
            guard frameLength == 0 else {
                throw EnvelopeError(.invalidFrameLength, "a non-framed message declares a frame length of \(frameLength)")
            }
        }
        let commitment = Array(try take(cursor.read(suite.suiteDataLength)))
        let bodyLength = cursor.offset
        let iv: [UInt8] = version == .v1 ? Array(try take(cursor.read(suite.ivLength))) : [UInt8](repeating: 0, count: suite.ivLength)
        let tag = Array(try take(cursor.read(suite.tagLength)))

        return MessageHeader(
            version: version, suite: suite, messageID: messageID, encryptionContext: context, encryptedDataKeys: keys,
            contentType: contentType, frameLength: frameLength, commitment: commitment, authenticationIV: iv,
            authenticationTag: tag, body: Array(bytes[bytes.startIndex..<bytes.startIndex + bodyLength]))
    }
}
