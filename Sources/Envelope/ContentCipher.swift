import Crypto

/// AES-GCM with one key, as the message format uses it: detached 16-byte tags, 12-byte IVs,
/// writing straight into the caller's buffer. A thin adapter over `Crypto.AESGCM`.
struct ContentCipher {
    private let key: SecureBytes

    init(key: SecureBytes) throws {
        guard [16, 24, 32].contains(key.count) else {
            throw EnvelopeError(.invalidDataKey, "an AES-GCM key has 16, 24 or 32 bytes, not \(key.count)")
        }
        self.key = key
    }

    /// Decrypts `ciphertext` into `output` (room for `ciphertext.count` bytes) and checks `tag`.
    /// Returns false — and leaves `output` zeroed — when authentication fails.
    func open(
        iv: [UInt8], aad: [UInt8], ciphertext: UnsafeRawBufferPointer, tag: [UInt8], into output: UnsafeMutableRawPointer?
    ) -> Bool {
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
