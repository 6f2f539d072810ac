// libFuzzer target: the streaming decryptor (`make fuzz-envelope-decrypt`).
// Compiled into the Envelope module itself; it drives the synchronous `update(_:dataKey:)` with an all-zero data key of the
// suite's length, so the seed corpus (AWS's zero-key format-1 fixtures and format-2 vectors,
// see Fuzz/seed-envelope.py) decrypts and mutations reach the frames, footer and signature.
// The first input byte picks how the rest is split into chunks (61 to 15,616 bytes), so the
// buffering paths are fuzzed too.
// Invariants: no crash or hang; a message that verifies released exactly plaintextLength bytes,
// and the same message fed whole gives the same plaintext.

import Crypto

/// The decryptor's synchronous entry (no keyring, no task hop per input): an all-zero data key.
private func run(_ message: [UInt8], chunk: Int) -> (plaintext: [UInt8], length: UInt64)? {
    var limits = MessageLimits.default
    limits.maxFrameLength = 1 << 16
    limits.maxNonFramedContentLength = 1 << 16
    let decryptor = MessageDecryptor(keyring: UnusedKeyring(), limits: limits)
    var plaintext: [UInt8] = []
    var offset = 0
    do {
        while offset < message.count {
            let end = min(message.count, offset + chunk)
            plaintext += try decryptor.update(Array(message[offset..<end])) { header in
                SecureBytes([UInt8](repeating: 0, count: header.suite.keyLength))
            }.bytes
            offset = end
        }
        let verified = try decryptor.finish()
        return (plaintext, verified.plaintextLength)
    } catch {
        return nil
    }
}

/// Never called: the synchronous `update` takes the data key directly.
private struct UnusedKeyring: Keyring {
    func onEncrypt(_ materials: EncryptionMaterials) async throws -> EncryptionMaterials { materials }
    func onDecrypt(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) async throws
        -> DecryptionMaterials
    { materials }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEnvelopeDecrypt(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 1 else { return 0 }
    let chunk = (Int(data[0]) + 1) * 61
    let message = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    if let chunked = run(message, chunk: chunk) {
        precondition(UInt64(chunked.plaintext.count) == chunked.length, "released length differs from the verified length")
        let whole = run(message, chunk: message.count)
        precondition(whole?.plaintext == chunked.plaintext, "chunking changed the plaintext")
    }
    return 0
}
