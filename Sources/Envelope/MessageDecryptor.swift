import Crypto

/// Streaming decryption of one Encryption SDK message (formats 1 and 2, framed and non-framed,
/// every suite of `AlgorithmSuite.all`), in memory bounded by `limits` (one frame plus one input chunk).
///
/// Feed ciphertext in chunks of any size with `update`; each call returns the plaintext of the
/// frames that completed and authenticated, as `UnverifiedPlaintext`. Call `finish()` at the end
/// of input: only its `VerifiedMessage` says the message was whole and (if signed) correctly
/// signed. After any error the decryptor is dead and every later call throws `streamFinished`.
///
/// Not thread-safe: one task drives one decryptor.
public final class MessageDecryptor {
    public let keyring: any Keyring
    public let limits: MessageLimits
    public let policy: DecryptionPolicy

    private enum State {
        case header, frames, nonFramed, footer, done, failed
    }

    private var state = State.header
    private var buffer: [UInt8] = []
    private var header: MessageHeader?
    private var cipher: ContentCipher?
    private var hasher: IncrementalHash?
    private var verifier: FooterVerifier?
    private var nextSequenceNumber: UInt32 = 1
    private var plaintextLength: UInt64 = 0
    private var signatureVerified = false

    public init(keyring: any Keyring, limits: MessageLimits = .default, policy: DecryptionPolicy = .init()) {
        self.keyring = keyring
        self.limits = limits
        self.policy = policy
    }

    /// The header, once it has authenticated (nil before).
    public var authenticatedHeader: MessageHeader? { cipher == nil ? nil : header }

    /// Decrypts a whole message held in memory; returns the plaintext only if the message verified.
    public static func decrypt(
        _ message: [UInt8], keyring: any Keyring, limits: MessageLimits = .default, policy: DecryptionPolicy = .init()
    ) async throws -> (plaintext: [UInt8], message: VerifiedMessage) {
        let decryptor = MessageDecryptor(keyring: keyring, limits: limits, policy: policy)
        let plaintext = try await decryptor.update(message)
        let verified = try decryptor.finish()
        return (plaintext.bytes, verified)
    }

    /// Feeds the next ciphertext bytes; returns the plaintext of every frame that completed.
    public func update(_ bytes: [UInt8]) async throws -> UnverifiedPlaintext {
        try checkUsable()
        do {
            if state == .header {
                guard let (parsed, rest) = try takeHeader(bytes) else { return UnverifiedPlaintext(bytes: []) }
                try checkPolicy(parsed)
                try begin(parsed, dataKey: try await dataKey(for: parsed))
                return try consumeBody(rest)
            }
            return try consumeBody(bytes)
        } catch {
            state = .failed
            buffer = []
            throw error
        }
    }

    /// `update` without the keyring: `dataKey` supplies the data key for the parsed header.
    /// Synchronous, for the fuzz target and layer tests.
    func update(_ bytes: [UInt8], dataKey: (MessageHeader) throws -> SecureBytes) throws -> UnverifiedPlaintext {
        try checkUsable()
        do {
            if state == .header {
                guard let (parsed, rest) = try takeHeader(bytes) else { return UnverifiedPlaintext(bytes: []) }
                try checkPolicy(parsed)
                try begin(parsed, dataKey: try dataKey(parsed))
                return try consumeBody(rest)
            }
            return try consumeBody(bytes)
        } catch {
            state = .failed
            buffer = []
            throw error
        }
    }

    /// Buffers header bytes; once the header parses, returns it and the bytes after it.
    private func takeHeader(_ bytes: [UInt8]) throws -> (MessageHeader, [UInt8])? {
        buffer.append(contentsOf: bytes)
        guard let parsed = try MessageHeaderParser(limits: limits).parse(buffer) else { return nil }
        let rest = Array(buffer[parsed.length...])
        buffer.removeAll(keepingCapacity: false)
        return (parsed, rest)
    }

    /// Ends the input: throws `truncatedMessage` unless the whole message (footer included) was read.
    public func finish() throws -> VerifiedMessage {
        try checkUsable()
        guard state == .done, let header else {
            let missing: String
            switch state {
            case .header: missing = "the header"
            case .frames: missing = "frame \(nextSequenceNumber) or the final frame"
            case .nonFramed: missing = "the body"
            case .footer: missing = "the footer signature"
            case .done, .failed: missing = "the message"
            }
            state = .failed
            throw EnvelopeError(.truncatedMessage, "the input ended before \(missing)")
        }
        return VerifiedMessage(header: header, plaintextLength: plaintextLength, signatureVerified: signatureVerified)
    }

    private func checkUsable() throws {
        if state == .failed {
            throw EnvelopeError(.streamFinished, "the decryptor already failed; start a new one")
        }
    }

    // MARK: header

    private func checkPolicy(_ parsed: MessageHeader) throws {
        guard policy.allowedSuites.contains(parsed.suite) else {
            throw EnvelopeError(.algorithmSuiteNotAllowed, "algorithm suite \(parsed.suite) is not allowed here")
        }
        if !parsed.suite.isSigned && parsed.encryptionContext[EncryptionContext.publicKeyKey] != nil {
            throw EnvelopeError(
                .reservedEncryptionContextKey,
                "suite \(parsed.suite) is not signed but the context carries \(EncryptionContext.publicKeyKey)")
        }
    }

    private func dataKey(for parsed: MessageHeader) async throws -> SecureBytes {
        let materials: DecryptionMaterials
        do {
            materials = try await keyring.onDecrypt(
                DecryptionMaterials(suite: parsed.suite, encryptionContext: parsed.encryptionContext),
                encryptedDataKeys: parsed.encryptedDataKeys)
        } catch let error as EnvelopeError {
            throw error
        } catch {
            throw EnvelopeError(.noDecryptableDataKey, "the keyring failed: \(error)")
        }
        guard let dataKey = materials.plaintextDataKey else {
            throw EnvelopeError(.noDecryptableDataKey, "the keyring returned no data key")
        }
        return dataKey
    }

    /// Checks the key commitment and the header tag, then prepares the body.
    private func begin(_ parsed: MessageHeader, dataKey: SecureBytes) throws {
        let keys = try ContentKeys(suite: parsed.suite, dataKey: dataKey, messageID: parsed.messageID)
        if parsed.suite.isCommitting {
            guard ConstantTime.equals(keys.commitment, parsed.commitment) else {
                throw EnvelopeError(
                    .keyCommitmentMismatch, "the data key does not match the header's key commitment")
            }
        }
        let cipher = try ContentCipher(key: keys.contentKey)
        let tagOK = cipher.open(
            iv: parsed.authenticationIV, aad: parsed.body, ciphertext: UnsafeRawBufferPointer(start: nil, count: 0),
            tag: parsed.authenticationTag, into: nil)
        guard tagOK else {
            throw EnvelopeError(.headerAuthenticationFailed, "the header authentication tag does not verify")
        }
        guard parsed.encryptionContext.contains(policy.requiredEncryptionContext) else {
            let missing = policy.requiredEncryptionContext.pairs.filter { pair in
                parsed.encryptionContext[pair.key].map { !$0.utf8.elementsEqual(pair.value.utf8) } ?? true
            }
            throw EnvelopeError(
                .encryptionContextMismatch,
                "the encryption context lacks or differs in: " + missing.map(\.key).joined(separator: ", "))
        }
        if parsed.suite.isSigned {
            let verifier = try FooterVerifier(suite: parsed.suite, context: parsed.encryptionContext)
            var hasher = IncrementalHash(verifier.hash)
            hasher.update(parsed.bytes)
            self.verifier = verifier
            self.hasher = hasher
        }
        self.header = parsed
        self.cipher = cipher
        state = parsed.contentType == .framed ? .frames : .nonFramed
    }

    // MARK: body

    private enum UnitSize {
        case complete(Int)
        case needAtLeast(Int)
    }

    private func consumeBody(_ input: [UInt8]) throws -> UnverifiedPlaintext {
        if input.isEmpty && buffer.isEmpty { return UnverifiedPlaintext(bytes: []) }
        // Plaintext is never longer than the ciphertext it comes from.
        let capacity = buffer.count + input.count
        let output = try [UInt8](unsafeUninitializedCapacity: capacity) { out, written in
            written = 0
            try input.withUnsafeBytes { raw in
                try consume(raw, into: UnsafeMutableRawBufferPointer(out), written: &written)
            }
        }
        plaintextLength += UInt64(output.count)
        return UnverifiedPlaintext(bytes: output)
    }

    private func consume(
        _ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, written: inout Int
    ) throws {
        var rest = input
        while true {
            if state == .done {
                if !rest.isEmpty || !buffer.isEmpty {
                    throw EnvelopeError(.trailingData, "\(rest.count + buffer.count) bytes follow the end of the message")
                }
                return
            }
            if buffer.isEmpty {
                if case .complete(let n) = try unitSize(rest), rest.count >= n {
                    try processUnit(rest.slice(0..<n), into: out, written: &written)
                    rest = rest.slice(n..<rest.count)
                    continue
                }
                buffer.append(contentsOf: rest)
                return
            }
            let target: Int
            let isComplete: Bool
            switch try buffer.withUnsafeBytes({ try unitSize($0) }) {
            case .complete(let n):
                target = n
                isComplete = true
            case .needAtLeast(let n):
                target = n
                isComplete = false
            }
            let take = min(target - buffer.count, rest.count)
            buffer.append(contentsOf: rest.slice(0..<take))
            rest = rest.slice(take..<rest.count)
            if buffer.count < target { return }
            if isComplete {
                try buffer.withUnsafeBytes { try processUnit($0, into: out, written: &written) }
                buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
            }
        }
    }

    /// How long the next unit (frame, body or footer) is, from its first bytes.
    private func unitSize(_ p: UnsafeRawBufferPointer) throws -> UnitSize {
        guard let header else { throw EnvelopeError(.invalidArgument, "no header") }
        let iv = header.suite.ivLength, tag = header.suite.tagLength
        switch state {
        case .frames:
            guard p.count >= 4 else { return .needAtLeast(4) }
            if p.uint32(at: 0) != MessageBody.finalFrameMarker {
                return .complete(4 + iv + Int(header.frameLength) + tag)
            }
            let prefix = 4 + 4 + iv + 4
            guard p.count >= prefix else { return .needAtLeast(prefix) }
            let length = p.uint32(at: prefix - 4)
            guard length <= header.frameLength else {
                throw EnvelopeError(
                    .invalidFinalFrameLength,
                    "the final frame holds \(length) bytes, more than the frame length \(header.frameLength)")
            }
            return .complete(prefix + Int(length) + tag)
        case .nonFramed:
            let prefix = iv + 8
            guard p.count >= prefix else { return .needAtLeast(prefix) }
            let length = p.uint64(at: iv)
            guard length <= UInt64(limits.maxNonFramedContentLength) else {
                throw EnvelopeError(
                    .contentLengthExceedsLimit,
                    "the non-framed body declares \(length) bytes, more than the limit of \(limits.maxNonFramedContentLength)")
            }
            return .complete(prefix + Int(length) + tag)
        case .footer:
            guard p.count >= 2 else { return .needAtLeast(2) }
            let length = Int(p.uint16(at: 0))
            guard length <= limits.maxSignatureLength else {
                throw EnvelopeError(
                    .signatureInvalid, "the footer declares a \(length)-byte signature, more than \(limits.maxSignatureLength)")
            }
            return .complete(2 + length)
        case .header, .done, .failed:
            throw EnvelopeError(.invalidArgument, "no body unit expected")
        }
    }

    private func processUnit(
        _ unit: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, written: inout Int
    ) throws {
        guard let header, let cipher else { throw EnvelopeError(.invalidArgument, "no header") }
        let ivLength = header.suite.ivLength, tagLength = header.suite.tagLength
        switch state {
        case .frames:
            let isFinal = unit.uint32(at: 0) == MessageBody.finalFrameMarker
            let sequence = isFinal ? unit.uint32(at: 4) : unit.uint32(at: 0)
            guard sequence == nextSequenceNumber else {
                throw EnvelopeError(
                    .frameOutOfSequence, "frame \(sequence) arrived where frame \(nextSequenceNumber) was expected")
            }
            let ivStart = isFinal ? 8 : 4
            let contentStart = isFinal ? ivStart + ivLength + 4 : ivStart + ivLength
            let contentLength = unit.count - contentStart - tagLength
            let aad = MessageBody.aad(
                messageID: header.messageID, kind: isFinal ? .finalFrame : .frame, sequenceNumber: sequence,
                contentLength: UInt64(contentLength))
            try open(
                cipher, unit, ivStart: ivStart, contentStart: contentStart, contentLength: contentLength, aad: aad,
                into: out, written: &written, what: isFinal ? "the final frame (\(sequence))" : "frame \(sequence)")
            hasher?.update(unit)
            if isFinal {
                state = header.suite.isSigned ? .footer : .done
            } else {
                guard nextSequenceNumber < MessageBody.finalFrameMarker - 1 else {
                    throw EnvelopeError(.frameOutOfSequence, "the message has more frames than sequence numbers")
                }
                nextSequenceNumber += 1
            }
        case .nonFramed:
            let contentStart = ivLength + 8
            let contentLength = unit.count - contentStart - tagLength
            let aad = MessageBody.aad(
                messageID: header.messageID, kind: .singleBlock, sequenceNumber: 1, contentLength: UInt64(contentLength))
            try open(
                cipher, unit, ivStart: 0, contentStart: contentStart, contentLength: contentLength, aad: aad,
                into: out, written: &written, what: "the non-framed body")
            hasher?.update(unit)
            state = header.suite.isSigned ? .footer : .done
        case .footer:
            guard let verifier, let hasher else { throw EnvelopeError(.invalidArgument, "no verifier") }
            let signature = Array(unit.slice(2..<unit.count))
            guard verifier.isValid(der: signature, digest: hasher.finalize()) else {
                throw EnvelopeError(.signatureInvalid, "the footer signature does not verify")
            }
            signatureVerified = true
            state = .done
        case .header, .done, .failed:
            throw EnvelopeError(.invalidArgument, "no body unit expected")
        }
    }

    private func open(
        _ cipher: ContentCipher, _ unit: UnsafeRawBufferPointer, ivStart: Int, contentStart: Int, contentLength: Int,
        aad: [UInt8], into out: UnsafeMutableRawBufferPointer, written: inout Int, what: String
    ) throws {
        let iv = Array(unit.slice(ivStart..<ivStart + header!.suite.ivLength))
        let tag = Array(unit.slice(contentStart + contentLength..<unit.count))
        let destination = out.baseAddress.map { $0 + written }
        let ok = cipher.open(
            iv: iv, aad: aad, ciphertext: unit.slice(contentStart..<contentStart + contentLength), tag: tag,
            into: destination)
        guard ok else {
            throw EnvelopeError(.frameAuthenticationFailed, "\(what) failed authentication")
        }
        written += contentLength
    }
}
