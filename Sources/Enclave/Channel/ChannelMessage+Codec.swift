extension ChannelMessage {
    /// The message as one frame.
    public func frame() -> ChannelFrame {
        var w = PayloadWriter()
        switch self {
        case .begin(let m):
            w.string(m.jobID)
            w.bytes(m.policyDigest)
            w.bytes(m.nonce)
        case .jobSpec(let m):
            w.bytes(m.policy)
            w.bytes(m.approvalBundle)
            w.u32(UInt32(m.datasets.count))
            for d in m.datasets {
                w.string(d.datasetID)
                w.string(d.partyID)
                w.bytes(d.ciphertextSHA256)
                w.u64(d.byteCount)
            }
        case .keyRelease(let m):
            w.string(m.datasetID)
            w.u32(m.encryptedDataKeyIndex)
            w.bytes(m.ciphertextForRecipient)
        case .datasetBegin(let m):
            w.string(m.datasetID)
            w.u64(m.byteCount)
        case .datasetChunk(let bytes), .outputChunk(let bytes), .receipt(let bytes), .checkpointResume(let bytes),
            .checkpoint(let bytes):
            w.raw(bytes)
        case .datasetEnd(let id):
            w.string(id)
        case .cancel(let reason):
            w.string(reason)
        case .hello(let m):
            w.bytes(m.attestationDocument)
            w.bytes(m.receiptPublicKey)
        case .accepted(let digest):
            w.bytes(digest)
        case .progress(let p):
            w.string(p.phase)
            w.u32(p.iteration)
            w.u32(p.total)
            if let loss = p.loss {
                w.u8(1)
                w.f64(loss)
            } else {
                w.u8(0)
            }
            w.string(p.message)
        case .outputBegin(let o):
            w.string(o.name)
            w.string(o.recipient)
        case .outputEnd(let digest):
            w.bytes(digest)
        case .error(let f):
            w.string(f.code)
            w.string(f.message)
        case .attestationRequest(let request):
            w.bytes(request.publicKey)
            w.bytes(request.userData)
            w.bytes(request.nonce)
        case .attestationDocument(let document):
            w.bytes(document)
        case .checkpointKey(let cms):
            w.bytes(cms)
        }
        return ChannelFrame(type: type, payload: w.bytes)
    }

    /// The message's bytes on the wire.
    public func encoded() -> [UInt8] { frame().encoded() }

    /// Decodes a frame's payload. Every field is bounds- and limit-checked, and the payload must
    /// be consumed exactly.
    public init(frame: ChannelFrame, limits: ChannelLimits = .default) throws(ChannelError) {
        // Data frames are the payload itself: no copy through a reader.
        if frame.type == .datasetChunk || frame.type == .outputChunk {
            guard !frame.payload.isEmpty else { throw ChannelError(.malformedPayload, "\(frame.type) message is empty") }
            self = frame.type == .datasetChunk ? .datasetChunk(frame.payload) : .outputChunk(frame.payload)
            return
        }
        var r = PayloadReader(frame.payload, context: "\(frame.type) message")
        let maxString = limits.maxStringBytes
        switch frame.type {
        case .begin:
            let jobID = try r.string("job id", max: maxString)
            let digest = try r.fixedBytes("policy digest", count: 32)
            let nonce = try r.bytes("nonce", max: JobBegin.maxNonceBytes, min: 16)
            self = .begin(JobBegin(jobID: jobID, policyDigest: digest, nonce: nonce))
        case .jobSpec:
            let policy = try r.bytes("policy", max: limits.maxSpecPayload, min: 2)
            let bundle = try r.bytes("approval bundle", max: limits.maxSpecPayload, min: 2)
            let count = Int(try r.u32("dataset count"))
            guard count >= 1 && count <= limits.maxDatasets else {
                throw ChannelError(
                    .malformedPayload, "jobSpec message: \(count) datasets; 1 to \(limits.maxDatasets) are allowed")
            }
            var datasets: [DatasetManifest] = []
            for _ in 0..<count {
                datasets.append(
                    DatasetManifest(
                        datasetID: try r.string("dataset id", max: maxString),
                        partyID: try r.string("party id", max: maxString),
                        ciphertextSHA256: try r.fixedBytes("ciphertext SHA-256", count: 32),
                        byteCount: try r.u64("byte count")))
            }
            self = .jobSpec(JobSpecification(policy: policy, approvalBundle: bundle, datasets: datasets))
        case .keyRelease:
            self = .keyRelease(
                KeyRelease(
                    datasetID: try r.string("dataset id", max: maxString),
                    encryptedDataKeyIndex: try r.u32("encrypted data key index"),
                    ciphertextForRecipient: try r.bytes(
                        "CiphertextForRecipient", max: limits.maxKeyReleasePayload, min: 1)))
        case .datasetBegin:
            self = .datasetBegin(
                DatasetBegin(datasetID: try r.string("dataset id", max: maxString), byteCount: try r.u64("byte count")))
        case .datasetEnd:
            self = .datasetEnd(datasetID: try r.string("dataset id", max: maxString))
        case .cancel:
            self = .cancel(reason: try r.string("reason", max: maxString, allowEmpty: true))
        case .hello:
            let document = try r.bytes("attestation document", max: EnclaveHello.maxAttestationBytes, min: 1)
            let key = try r.bytes("receipt public key", max: EnclaveHello.maxPublicKeyBytes, min: 1)
            self = .hello(EnclaveHello(attestationDocument: document, receiptPublicKey: key))
        case .accepted:
            self = .accepted(approvalBundleDigest: try r.fixedBytes("approval-bundle digest", count: 32))
        case .progress:
            let phase = try r.string("phase", max: 64)
            let iteration = try r.u32("iteration")
            let total = try r.u32("total")
            var loss: Double?
            if try r.bool("loss present") {
                let value = try r.f64("loss")
                guard value.isFinite else { throw ChannelError(.malformedPayload, "progress message: loss is not finite") }
                loss = value
            }
            let message = try r.string("message", max: maxString, allowEmpty: true)
            self = .progress(ProgressEvent(phase: phase, iteration: iteration, total: total, loss: loss, message: message))
        case .outputBegin:
            self = .outputBegin(
                OutputDescriptor(
                    name: try r.string("output name", max: 64), recipient: try r.string("recipient", max: maxString)))
        case .outputEnd:
            self = .outputEnd(sha256: try r.fixedBytes("output SHA-256", count: 32))
        case .datasetChunk, .outputChunk:
            preconditionFailure("data frames are decoded above")
        case .receipt:
            let bytes = r.rest()
            guard !bytes.isEmpty else { throw ChannelError(.malformedPayload, "receipt message is empty") }
            self = .receipt(bytes)
        case .attestationRequest:
            let max = AttestationRequest.maxFieldBytes
            self = .attestationRequest(
                AttestationRequest(
                    publicKey: try r.bytes("public key", max: max, min: 1), userData: try r.bytes("user data", max: max),
                    nonce: try r.bytes("nonce", max: max)))
        case .attestationDocument:
            self = .attestationDocument(
                try r.bytes("attestation document", max: EnclaveHello.maxAttestationBytes, min: 1))
        case .checkpointKey:
            self = .checkpointKey(
                ciphertextForRecipient: try r.bytes("CiphertextForRecipient", max: limits.maxKeyReleasePayload, min: 1))
        case .checkpointResume, .checkpoint:
            let bytes = r.rest()
            guard bytes.count >= SealedCheckpointLayout.minimumBytes else {
                throw ChannelError(.malformedPayload, "\(frame.type) message: a sealed checkpoint is at least \(SealedCheckpointLayout.minimumBytes) bytes")
            }
            self = frame.type == .checkpoint ? .checkpoint(bytes) : .checkpointResume(bytes)
        case .error:
            self = .error(
                ChannelFailure(
                    code: try r.string("code", max: 128), message: try r.string("message", max: maxString, allowEmpty: true)))
        }
        try r.finish()
    }
}

/// Decodes channel messages from a byte stream: `FrameDecoder` plus payload decoding.
public struct ChannelMessageDecoder: Sendable {
    private var frames: FrameDecoder

    public init(limits: ChannelLimits = .default) {
        frames = FrameDecoder(limits: limits)
    }

    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 { frames.feed(bytes) }

    /// The next complete message, or nil if more bytes are needed.
    public mutating func next() throws(ChannelError) -> ChannelMessage? {
        guard let frame = try frames.nextFrame() else { return nil }
        return try ChannelMessage(frame: frame, limits: frames.limits)
    }

    /// See `FrameDecoder.takeIncompleteFrame(minimumPayload:)`.
    public mutating func takeIncompleteFrame(minimumPayload: Int) throws(ChannelError)
        -> (type: ChannelMessageType, length: Int, prefix: [UInt8])?
    {
        try frames.takeIncompleteFrame(minimumPayload: minimumPayload)
    }

    /// Declares the end of the stream: fails if it ended inside a frame.
    public mutating func finish() throws(ChannelError) { try frames.finish() }

    /// Bytes received but not yet decoded.
    public var bufferedByteCount: Int { frames.bufferedByteCount }
}
