// libFuzzer target: the streaming decryptor (`make fuzz-envelope-decrypt`).
// Compiled into the Envelope module itself. The keyring hands out an all-zero data key of the
// suite's length, so the seed corpus (AWS's zero-key format-1 fixtures and format-2 vectors,
// see Fuzz/seed-envelope.py) decrypts and mutations reach the frames, footer and signature.
// The first input byte picks how the rest is split into chunks, so buffering paths are fuzzed too.
// Invariants: no crash or hang; a message that verifies released exactly plaintextLength bytes,
// and the same message fed whole gives the same plaintext.

import Crypto
import Dispatch

private struct ZeroKeyring: Keyring {
    func onEncrypt(_ materials: EncryptionMaterials) async throws -> EncryptionMaterials { materials }
    func onDecrypt(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) async throws
        -> DecryptionMaterials
    {
        var result = materials
        result.plaintextDataKey = SecureBytes([UInt8](repeating: 0, count: materials.suite.keyLength))
        return result
    }
}

private final class Outcome: @unchecked Sendable {
    var plaintext: [UInt8]?
    var length: UInt64 = 0
}

private func run(_ message: [UInt8], chunk: Int) -> Outcome {
    let outcome = Outcome()
    let done = DispatchSemaphore(value: 0)
    Task {
        defer { done.signal() }
        var limits = MessageLimits.default
        limits.maxFrameLength = 1 << 16
        limits.maxNonFramedContentLength = 1 << 16
        let decryptor = MessageDecryptor(keyring: ZeroKeyring(), limits: limits)
        var plaintext: [UInt8] = []
        var offset = 0
        do {
            while offset < message.count {
                let end = min(message.count, offset + chunk)
                plaintext += try await decryptor.update(Array(message[offset..<end])).bytes
                offset = end
            }
            let verified = try decryptor.finish()
            outcome.plaintext = plaintext
            outcome.length = verified.plaintextLength
        } catch {}
    }
    done.wait()
    return outcome
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEnvelopeDecrypt(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 1 else { return 0 }
    let chunk = Int(data[0]) + 1
    let message = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let chunked = run(message, chunk: chunk)
    if let plaintext = chunked.plaintext {
        precondition(UInt64(plaintext.count) == chunked.length, "released length differs from the verified length")
        let whole = run(message, chunk: message.count)
        precondition(whole.plaintext == plaintext, "chunking changed the plaintext")
    }
    return 0
}
