import Crypto

/// Streaming encryption to a format-2, framed Encryption SDK message (suite 0x0478 by default,
/// or 0x0578 with an ECDSA P-384 footer), in memory bounded by one frame plus one input chunk.
///
/// `MessageEncryptor(...)` asks the keyring for the data key and builds the header; each
/// `update` returns the ciphertext that is ready (the header first, then whole frames), and
/// `finish()` returns the final frame and, for signed suites, the footer. Not thread-safe.
public final class MessageEncryptor {
    /// Frame length used when none is given: 64 KiB (DESIGN §4).
    public static let defaultFrameLength = 64 * 1024

    public let suite: AlgorithmSuite
    public let frameLength: Int
    /// The serialized header (also the start of the first output).
    public let header: [UInt8]
    /// The encryption context written (the caller's plus `aws-crypto-public-key` for signed suites).
    public let encryptionContext: EncryptionContext

    private let messageID: [UInt8]
    private let cipher: ContentCipher
    private var hasher: IncrementalHash?
    private let signer: FooterSigner?
    private var pendingHeader = true
    private var partial: [UInt8] = []
    private var sequenceNumber: UInt32 = 1
    private var finished = false

    /// Prepares a message: gets the data key from `keyring` and builds the authenticated header.
    /// The context may not use the reserved `aws-crypto-` prefix.
    public init(
        keyring: any Keyring, encryptionContext: EncryptionContext = .init(),
        suite: AlgorithmSuite = .aes256GCMHKDFSHA512Commit, frameLength: Int = MessageEncryptor.defaultFrameLength,
        limits: MessageLimits = .default
    ) async throws {
        guard AlgorithmSuite.encryptable.contains(suite) else {
            throw EnvelopeError(.algorithmSuiteNotAllowed, "suite \(suite) is read-only; encrypt with 0x0478 or 0x0578")
        }
        guard frameLength > 0, frameLength <= limits.maxFrameLength else {
            throw EnvelopeError(
                .invalidFrameLength, "the frame length must be between 1 and \(limits.maxFrameLength) bytes")
        }
        if let reserved = encryptionContext.pairs.first(where: { $0.key.hasPrefix(EncryptionContext.reservedPrefix) }) {
            throw EnvelopeError(
                .reservedEncryptionContextKey, "encryption context key \"\(reserved.key)\" uses the reserved prefix aws-crypto-")
        }
        var context = encryptionContext
        if suite.isSigned {
            let signer = try FooterSigner()
            try context.add(EncryptionContext.publicKeyKey, try signer.publicKeyBase64())
            self.signer = signer
        } else {
            self.signer = nil
        }
        let materials: EncryptionMaterials
        do {
            materials = try await keyring.onEncrypt(EncryptionMaterials(suite: suite, encryptionContext: context))
        } catch let error as EnvelopeError {
            throw error
        } catch {
            throw EnvelopeError(.keyringConfiguration, "the keyring failed to encrypt the data key: \(error)")
        }
        guard let dataKey = materials.plaintextDataKey, !materials.encryptedDataKeys.isEmpty else {
            throw EnvelopeError(.keyringConfiguration, "the keyring produced no data key or no encrypted data key")
        }
        guard materials.encryptedDataKeys.count <= limits.maxEncryptedDataKeys else {
            throw EnvelopeError(
                .tooManyEncryptedDataKeys, "the keyring produced more than \(limits.maxEncryptedDataKeys) encrypted data keys")
        }
        let messageID: [UInt8]
        do {
            messageID = try SecureRandom.bytes(count: suite.messageIDLength)
        } catch {
            throw EnvelopeError(.cryptoFailure, "no random message id: \(error)")
        }
        let keys = try ContentKeys(suite: suite, dataKey: dataKey, messageID: messageID)
        let body = try MessageHeader.serializeV2Body(
            suite: suite, messageID: messageID, encryptionContext: context,
            encryptedDataKeys: materials.encryptedDataKeys, frameLength: UInt32(frameLength), commitment: keys.commitment)
        let cipher = try ContentCipher(key: keys.contentKey)
        var tag = [UInt8](repeating: 0, count: suite.tagLength)
        try cipher.seal(
            iv: [UInt8](repeating: 0, count: suite.ivLength), aad: body, plaintext: UnsafeRawBufferPointer(start: nil, count: 0),
            into: nil, tag: &tag)
        let header = body + tag
        guard header.count <= limits.maxHeaderLength else {
            throw EnvelopeError(.headerTooLarge, "the header would be \(header.count) bytes, over the limit")
        }
        self.suite = suite
        self.frameLength = frameLength
        self.header = header
        self.encryptionContext = context
        self.messageID = messageID
        self.cipher = cipher
        if let signer {
            var hasher = IncrementalHash(.sha384)
            hasher.update(header)
            self.hasher = hasher
            _ = signer
        }
        partial.reserveCapacity(frameLength)
    }

    /// Encrypts a whole plaintext held in memory.
    public static func encrypt(
        _ plaintext: [UInt8], keyring: any Keyring, encryptionContext: EncryptionContext = .init(),
        suite: AlgorithmSuite = .aes256GCMHKDFSHA512Commit, frameLength: Int = MessageEncryptor.defaultFrameLength
    ) async throws -> [UInt8] {
        let encryptor = try await MessageEncryptor(
            keyring: keyring, encryptionContext: encryptionContext, suite: suite, frameLength: frameLength)
        return try encryptor.update(plaintext) + encryptor.finish()
    }

    /// Feeds plaintext; returns the ciphertext ready so far (the header on the first call, then whole frames).
    public func update(_ plaintext: [UInt8]) throws -> [UInt8] {
        guard !finished else { throw EnvelopeError(.streamFinished, "the message is already finished") }
        return try plaintext.withUnsafeBytes { try update(raw: $0) }
    }

    /// Feeds plaintext from raw memory: whole frames are encrypted straight from `plaintext`
    /// into the returned array; only a trailing partial frame is copied (kept for the next call).
    public func update(raw plaintext: UnsafeRawBufferPointer) throws -> [UInt8] {
        guard !finished else { throw EnvelopeError(.streamFinished, "the message is already finished") }
        let frames = (partial.count + plaintext.count) / frameLength
        let size = (pendingHeader ? header.count : 0) + frames * (frameLength + regularFrameOverhead)
        return try [UInt8](unsafeUninitializedCapacity: size) { out, written in
            let base = UnsafeMutableRawPointer(out.baseAddress)
            written = writeHeader(to: base)
            var rest = plaintext
            if !partial.isEmpty {
                let take = min(frameLength - partial.count, rest.count)
                partial.append(contentsOf: rest.slice(0..<take))
                rest = rest.slice(take..<rest.count)
                if partial.count == frameLength {
                    written += try partial.withUnsafeBytes { try sealFrame($0, final: false, to: base! + written) }
                    partial.removeAll(keepingCapacity: true)
                }
            }
            while rest.count >= frameLength {
                written += try sealFrame(rest.slice(0..<frameLength), final: false, to: base! + written)
                rest = rest.slice(frameLength..<rest.count)
            }
            partial.append(contentsOf: rest)
        }
    }

    /// Ends the message: the final frame (possibly empty) and, for signed suites, the footer.
    public func finish() throws -> [UInt8] {
        guard !finished else { throw EnvelopeError(.streamFinished, "the message is already finished") }
        finished = true
        let size = (pendingHeader ? header.count : 0) + partial.count + regularFrameOverhead + 8
        var output = try [UInt8](unsafeUninitializedCapacity: size) { out, written in
            let base = UnsafeMutableRawPointer(out.baseAddress!)
            written = writeHeader(to: base)
            written += try partial.withUnsafeBytes { try sealFrame($0, final: true, to: base + written) }
        }
        partial = []
        if let signer, let hasher {
            output += try signer.footer(digest: hasher.finalize())
        }
        return output
    }

    /// Sequence number, IV and tag around each regular frame's content.
    private var regularFrameOverhead: Int { 4 + suite.ivLength + suite.tagLength }

    private func writeHeader(to destination: UnsafeMutableRawPointer?) -> Int {
        guard pendingHeader, let destination else { return 0 }
        pendingHeader = false
        header.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return header.count
    }

    /// Writes one frame at `destination`; returns its length.
    private func sealFrame(_ content: UnsafeRawBufferPointer, final: Bool, to destination: UnsafeMutableRawPointer) throws
        -> Int
    {
        guard sequenceNumber < MessageBody.finalFrameMarker else {
            throw EnvelopeError(.invalidArgument, "the message has more frames than sequence numbers")
        }
        var prefix: [UInt8] = []
        if final { prefix.appendUInt32(MessageBody.finalFrameMarker) }
        prefix.appendUInt32(sequenceNumber)
        let iv = MessageBody.iv(sequenceNumber: sequenceNumber)
        prefix += iv
        if final { prefix.appendUInt32(UInt32(content.count)) }
        let aad = MessageBody.aad(
            messageID: messageID, kind: final ? .finalFrame : .frame, sequenceNumber: sequenceNumber,
            contentLength: UInt64(content.count))
        prefix.withUnsafeBytes { destination.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        var tag = [UInt8](repeating: 0, count: suite.tagLength)
        try cipher.seal(iv: iv, aad: aad, plaintext: content, into: destination + prefix.count, tag: &tag)
        tag.withUnsafeBytes { (destination + prefix.count + content.count).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let length = prefix.count + content.count + tag.count
        hasher?.update(UnsafeRawBufferPointer(start: destination, count: length))
        sequenceNumber += 1
        return length
    }
}
