import Testing
@testable import Enclave

/// One message of every type, with awkward but valid contents.
let sampleMessages: [ChannelMessage] = [
    .begin(JobBegin(jobID: "job-1", policyDigest: Array(0..<32), nonce: Array(repeating: 7, count: 32))),
    .attestationRequest(AttestationRequest(publicKey: [0x30, 1, 2], userData: Array(repeating: 3, count: 48), nonce: [4, 5])),
    .attestationDocument(Array(repeating: 0x84, count: 100)),
    .hello(EnclaveHello(attestationDocument: Array(repeating: 0xD2, count: 300), receiptPublicKey: [0x30, 0x59, 1, 2])),
    .jobSpec(
        JobSpecification(
            policy: Array(#"{"version":1}"#.utf8), approvalBundle: Array(#"{"approvals":[]}"#.utf8),
            datasets: [
                DatasetManifest(datasetID: "ds-a", partyID: "alpha", ciphertextSHA256: Array(repeating: 1, count: 32), byteCount: 1 << 40),
                DatasetManifest(datasetID: "ds-ü", partyID: "beta", ciphertextSHA256: Array(repeating: 2, count: 32), byteCount: 0),
            ])),
    .accepted(approvalBundleDigest: Array(repeating: 0xAB, count: 32)),
    .keyRelease(KeyRelease(datasetID: "ds-a", encryptedDataKeyIndex: 2, ciphertextForRecipient: Array(repeating: 0x30, count: 600))),
    .datasetBegin(DatasetBegin(datasetID: "ds-a", byteCount: 123)),
    .datasetChunk(Array(repeating: 0xC7, count: 123)),
    .datasetEnd(datasetID: "ds-a"),
    .progress(ProgressEvent(phase: "training", iteration: 3, total: 10, loss: 0.6931, message: "round 3")),
    .progress(ProgressEvent(phase: "joining")),
    .outputBegin(OutputDescriptor(name: "scores:own", recipient: "beta")),
    .outputChunk([0, 1, 2, 0xC7, 1, 0x41, 0, 0, 0, 0]),
    .outputEnd(sha256: Array(repeating: 9, count: 32)),
    .receipt(Array(#"{"payload":"x","signature":"y"}"#.utf8)),
    .cancel(reason: ""),
    .checkpointKey(ciphertextForRecipient: Array(repeating: 0x30, count: 400)),
    .checkpointResume(Array("CRCK".utf8) + [1, 0, 0, 0, 5] + Array(repeating: 0x5A, count: 60)),
    .checkpoint(Array("CRCK".utf8) + [1, 0, 0, 0, 6] + Array(repeating: 0xA5, count: 28)),
    .error(ChannelFailure(code: "enclave.schema_violation", message: "column \"age\": value is not an integer")),
]

private func decodeAll(_ chunks: [ArraySlice<UInt8>], limits: ChannelLimits = .default) throws -> [ChannelMessage] {
    var decoder = ChannelMessageDecoder(limits: limits)
    var out: [ChannelMessage] = []
    for chunk in chunks {
        decoder.feed(chunk)
        while let message = try decoder.next() { out.append(message) }
    }
    try decoder.finish()
    return out
}

private func decodeError(_ bytes: [UInt8], limits: ChannelLimits = .default) -> ChannelError? {
    do {
        _ = try decodeAll([bytes[...]], limits: limits)
        return nil
    } catch let error as ChannelError {
        return error
    } catch {
        return nil
    }
}

/// A frame with a hand-made header and payload.
private func rawFrame(_ type: UInt8, _ payload: [UInt8], magic: UInt8 = 0xC7, version: UInt8 = 1, reserved: UInt8 = 0) -> [UInt8] {
    let n = UInt32(payload.count)
    return [magic, version, type, reserved, UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
        + payload
}

private func lengthPrefixed(_ bytes: [UInt8]) -> [UInt8] {
    let n = UInt32(bytes.count)
    return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + bytes
}

@Suite struct ChannelCodecTests {
    let stream = sampleMessages.flatMap { $0.encoded() }

    @Test func everyMessageTypeRoundTrips() throws {
        #expect(Set(sampleMessages.map(\.type)) == Set(ChannelMessageType.allCases))
        for message in sampleMessages {
            #expect(try decodeAll([message.encoded()[...]]) == [message])
        }
    }

    @Test func streamDecodesWholeAndByteByByte() throws {
        #expect(try decodeAll([stream[...]]) == sampleMessages)
        #expect(try decodeAll(stream.indices.map { stream[$0...$0] }) == sampleMessages)
    }

    @Test func streamDecodesSplitAtEveryOffset() throws {
        for offset in 0...stream.count {
            #expect(try decodeAll([stream[..<offset], stream[offset...]]) == sampleMessages, "split at \(offset)")
        }
    }

    @Test func streamDecodesInRandomPieces() throws {
        var generator = SplitMix64(seed: 42)
        for _ in 0..<200 {
            var pieces: [ArraySlice<UInt8>] = []
            var index = 0
            while index < stream.count {
                let length = Int(generator.next() % 97) + 1
                pieces.append(stream[index..<min(stream.count, index + length)])
                index += length
            }
            #expect(try decodeAll(pieces) == sampleMessages)
        }
    }

    @Test func truncatedStreamIsRefusedAtFinish() {
        for cut in [1, 7, 8, stream.count - 1] {
            #expect(decodeError(Array(stream[..<cut]))?.code == .truncated, "cut at \(cut)")
        }
    }

    @Test func headerGarbageIsRefusedBeforeThePayloadArrives() {
        var decoder = FrameDecoder()
        decoder.feed([0x47])
        #expect(throws: ChannelError(.badMagic, "frame does not start with the channel magic byte")) { try decoder.nextFrame() }
        // The decoder stays failed, even if good bytes follow.
        decoder.feed(ChannelMessage.cancel(reason: "x").encoded())
        #expect((try? decoder.nextFrame()) == nil)

        #expect(decodeError(rawFrame(0x07, lengthPrefixed([]), version: 2))?.code == .unsupportedVersion)
        #expect(decodeError(rawFrame(0x0B, []))?.code == .unknownType)
        #expect(decodeError(rawFrame(0x4A, []))?.code == .unknownType)
        #expect(decodeError(rawFrame(0x00, []))?.code == .unknownType)
        #expect(decodeError(rawFrame(0x07, lengthPrefixed([]), reserved: 1))?.code == .reservedBits)
    }

    @Test func oversizedFrameIsRefusedFromItsHeaderAlone() throws {
        var decoder = FrameDecoder()
        // A progress frame declaring 100 MiB: refused after 8 bytes, nothing buffered beyond them.
        decoder.feed([0xC7, 1, 0x43, 0, 0x06, 0x40, 0, 0])
        #expect(throws: ChannelError.self) { try decoder.nextFrame() }
        do {
            _ = try decoder.nextFrame()
        } catch {
            #expect(error.code == .frameTooLarge)
            #expect(error.message.contains("progress"))
        }
        // Each type has its own limit: a 2 MiB dataset chunk is refused, a 1 MiB one is not.
        var limits = ChannelLimits()
        limits.maxChunkPayload = 1024
        #expect(decodeError(rawFrame(0x05, Array(repeating: 1, count: 1025)), limits: limits)?.code == .frameTooLarge)
        #expect(decodeError(rawFrame(0x05, Array(repeating: 1, count: 1024)), limits: limits) == nil)
        // A 4 GiB - 1 length is refused for every type.
        for type in ChannelMessageType.allCases {
            #expect(decodeError([0xC7, 1, type.rawValue, 0, 0xFF, 0xFF, 0xFF, 0xFF])?.code == .frameTooLarge)
        }
    }

    @Test func malformedPayloadsNameTheField() {
        func code(_ type: UInt8, _ payload: [UInt8]) -> (ChannelError.Code?, String) {
            let error = decodeError(rawFrame(type, payload))
            return (error?.code, error?.message ?? "")
        }
        let digest = Array(repeating: UInt8(1), count: 32), nonce = Array(repeating: UInt8(2), count: 16)
        // begin: a 31-byte digest, a too-short nonce, a too-long nonce, trailing bytes.
        var (c, m) = code(0x01, lengthPrefixed(Array("j".utf8)) + lengthPrefixed(Array(digest.dropLast())) + lengthPrefixed(nonce))
        #expect(c == .malformedPayload && m.contains("policy digest"))
        (c, m) = code(0x01, lengthPrefixed(Array("j".utf8)) + lengthPrefixed(digest) + lengthPrefixed(Array(nonce.dropLast())))
        #expect(c == .malformedPayload && m.contains("nonce"))
        (c, m) = code(0x01, lengthPrefixed(Array("j".utf8)) + lengthPrefixed(digest) + lengthPrefixed(Array(repeating: 1, count: 513)))
        #expect(c == .malformedPayload && m.contains("nonce"))
        (c, m) = code(0x01, lengthPrefixed(Array("j".utf8)) + lengthPrefixed(digest) + lengthPrefixed(nonce) + [0])
        #expect(c == .malformedPayload && m.contains("trailing"))
        // A string length pointing past the end; invalid UTF-8; a NUL inside; an empty id.
        (c, m) = code(0x06, [0, 0, 0, 9, 0x61])
        #expect(c == .malformedPayload && m.contains("truncated"))
        (c, m) = code(0x06, lengthPrefixed([0x61, 0xC3, 0x28]))
        #expect(c == .malformedPayload && m.contains("UTF-8"))
        (c, m) = code(0x06, lengthPrefixed([0x61, 0x00, 0x62]))
        #expect(c == .malformedPayload && m.contains("control"))
        (c, m) = code(0x06, lengthPrefixed([]))
        #expect(c == .malformedPayload && m.contains("empty"))
        // A string over the configured limit.
        (c, m) = code(0x06, lengthPrefixed(Array(repeating: 0x61, count: 4097)))
        #expect(c == .malformedPayload && m.contains("limit"))
        // jobSpec with no datasets, and with 65.
        let spec = lengthPrefixed(Array("{}".utf8)) + lengthPrefixed(Array("{}".utf8))
        (c, m) = code(0x02, spec + [0, 0, 0, 0])
        #expect(c == .malformedPayload && m.contains("datasets"))
        (c, m) = code(0x02, spec + [0, 0, 0, 65])
        #expect(c == .malformedPayload && m.contains("datasets"))
        // A dataset count promising more entries than present.
        (c, m) = code(0x02, spec + [0xFF, 0xFF, 0xFF, 0xFF])
        #expect(c == .malformedPayload)
        // progress: a boolean that is neither 0 nor 1, and a NaN loss.
        let head = lengthPrefixed(Array("training".utf8)) + [0, 0, 0, 1, 0, 0, 0, 2]
        (c, m) = code(0x43, head + [2])
        #expect(c == .malformedPayload && m.contains("boolean"))
        (c, m) = code(0x43, head + [1] + withUnsafeBytes(of: Double.nan.bitPattern.bigEndian, Array.init) + lengthPrefixed([]))
        #expect(c == .malformedPayload && m.contains("finite"))
        // Empty chunks and receipts.
        for type: UInt8 in [0x05, 0x45, 0x47] {
            #expect(code(type, []).0 == .malformedPayload)
        }
    }

    @Test func mutatedStreamsNeverCrashTheDecoder() {
        var generator = SplitMix64(seed: 7)
        var decodedSomething = 0, refused = 0
        for _ in 0..<3000 {
            var bytes = stream
            for _ in 0..<(1 + Int(generator.next() % 4)) {
                let index = Int(generator.next() % UInt64(bytes.count))
                bytes[index] = UInt8(truncatingIfNeeded: generator.next())
            }
            if Bool.random(using: &generator) { bytes.removeLast(Int(generator.next() % 64)) }
            do {
                _ = try decodeAll([bytes[...]])
                decodedSomething += 1
            } catch is ChannelError {
                refused += 1
            } catch {
                Issue.record("unexpected error type \(error)")
            }
        }
        #expect(refused > 0)
        #expect(decodedSomething + refused == 3000)
    }
}

/// A tiny deterministic generator for reproducible test inputs.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
