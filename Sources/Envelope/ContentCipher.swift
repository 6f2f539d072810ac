import Crypto

/// AES-GCM with one key, as the message format uses it: detached 16-byte tags, 12-byte IVs,
/// writing straight into the caller's buffer. A thin adapter over `Crypto.AESGCM`: 32-byte keys
/// use `AESGCM.FrameCipher` (key schedule once per message, a new nonce per frame); the 16- and
/// 24-byte keys of old suites use a fresh one-shot context per call. Not thread-safe.
struct ContentCipher {
    private let key: SecureBytes
    private let frameCipher: AESGCM.FrameCipher?

    init(key: SecureBytes) throws {
        guard [16, 24, 32].contains(key.count) else {
            throw EnvelopeError(.invalidDataKey, "an AES-GCM key has 16, 24 or 32 bytes, not \(key.count)")
        }
        self.key = key
        do {
            frameCipher = key.count == AESGCM.keyByteCount ? try AESGCM.FrameCipher(key: key) : nil
        } catch {
            throw EnvelopeError(.cryptoFailure, "AES-GCM key setup failed: \(error)")
        }
    }

    /// Decrypts `ciphertext` into `output` (room for `ciphertext.count` bytes) and checks `tag`.
    /// Returns false — and leaves `output` zeroed — when authentication fails.
    func open(
        iv: [UInt8], aad: [UInt8], ciphertext: UnsafeRawBufferPointer, tag: [UInt8], into output: UnsafeMutableRawPointer?
    ) -> Bool {
        if let frameCipher {
            return aad.withUnsafeBytes { aadBytes in
                (try? frameCipher.open(
                    ciphertext, tag: tag, nonce: iv, authenticating: aadBytes,
                    into: UnsafeMutableRawBufferPointer(start: output, count: ciphertext.count))) != nil
            }
        }
        do {
            let decryptor = try AESGCM.Decryptor(key: key, nonce: iv, authenticating: aad)
            let destination = UnsafeMutableRawBufferPointer(start: output, count: ciphertext.count)
            if ciphertext.count > 0 { _ = try decryptor.update(ciphertext, into: destination) }
            do {
                try decryptor.finalize(tag: tag)
            } catch {
                if ciphertext.count > 0 { destination.initializeMemory(as: UInt8.self, repeating: 0) }
                return false
            }
            return true
        } catch {
            return false
        }
    }

    /// Encrypts `plaintext` into `output` (room for `plaintext.count` bytes); writes the 16-byte tag.
    func seal(
        iv: [UInt8], aad: [UInt8], plaintext: UnsafeRawBufferPointer, into output: UnsafeMutableRawPointer?,
        tag: inout [UInt8]
    ) throws {
        do {
            if let frameCipher {
                tag = try aad.withUnsafeBytes { aadBytes in
                    try frameCipher.seal(
                        plaintext, nonce: iv, authenticating: aadBytes,
                        into: UnsafeMutableRawBufferPointer(start: output, count: plaintext.count))
                }
                return
            }
            let encryptor = try AESGCM.Encryptor(key: key, nonce: iv, authenticating: aad)
            if plaintext.count > 0 {
                _ = try encryptor.update(plaintext, into: UnsafeMutableRawBufferPointer(start: output, count: plaintext.count))
            }
            tag = try encryptor.finalize()
        } catch {
            throw EnvelopeError(.cryptoFailure, "AES-GCM encryption failed: \(error)")
        }
    }
}
