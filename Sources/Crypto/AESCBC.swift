import COpenSSL

/// AES-256-CBC with PKCS#7 padding, for CMS EnvelopedData content. Not authenticated: use only
/// where the format demands it (CMS from KMS), never for new formats.
public enum AESCBC {
    public static let keyByteCount = 32
    public static let ivByteCount = 16

    /// Encrypts with PKCS#7 padding; the output is a whole number of 16-byte blocks.
    public static func encrypt(_ plaintext: SecureBytes, key: SecureBytes, iv: [UInt8]) throws -> [UInt8] {
        let out = try plaintext.withUnsafeBytes { try run(encrypt: true, input: $0, key: key, iv: iv) }
        return out.copyBytes()
    }

    /// Decrypts and removes PKCS#7 padding; bad padding or length is `.decryptionFailure`.
    public static func decrypt(_ ciphertext: [UInt8], key: SecureBytes, iv: [UInt8]) throws -> SecureBytes {
        guard !ciphertext.isEmpty, ciphertext.count % 16 == 0 else {
            throw CryptoError(.decryptionFailure, "AES-CBC ciphertext must be a non-empty multiple of 16 bytes")
        }
        return try ciphertext.withUnsafeBytes { try run(encrypt: false, input: $0, key: key, iv: iv) }
    }

    private static func run(encrypt: Bool, input: UnsafeRawBufferPointer, key: SecureBytes, iv: [UInt8]) throws
        -> SecureBytes
    {
        guard key.count == keyByteCount else {
            throw CryptoError(.invalidArgument, "AES-256-CBC needs a 32-byte key, got \(key.count)")
        }
        guard iv.count == ivByteCount else {
            throw CryptoError(.invalidArgument, "AES-CBC needs a 16-byte IV, got \(iv.count)")
        }
        guard input.count < Int(Int32.max) - 32 else { throw CryptoError(.invalidArgument, "AES-CBC input too large") }
        OpenSSLErrorQueue.clear()
        guard let ctx = EVP_CIPHER_CTX_new() else { throw CryptoError.openSSL(.internalError, "EVP_CIPHER_CTX_new") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        let ok = key.withUnsafeBytes { k in
            iv.withUnsafeBufferPointer { v in
                EVP_CipherInit_ex(
                    ctx, EVP_aes_256_cbc(), nil, k.baseAddress?.assumingMemoryBound(to: UInt8.self), v.baseAddress,
                    encrypt ? 1 : 0)
            }
        }
        guard ok == 1 else { throw CryptoError.openSSL(.internalError, "AES-CBC init") }
        return try SecureBytes(unsafeUninitializedCapacity: input.count + 16) { out in
            let outBase = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var first: Int32 = 0
            if input.count > 0 {
                guard EVP_CipherUpdate(
                    ctx, outBase, &first, input.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(input.count))
                    == 1
                else { throw CryptoError.openSSL(.internalError, "AES-CBC update") }
            }
            var last: Int32 = 0
            guard EVP_CipherFinal_ex(ctx, outBase + Int(first), &last) == 1 else {
                if encrypt { throw CryptoError.openSSL(.internalError, "AES-CBC final") }
                OpenSSLErrorQueue.clear()
                throw CryptoError(.decryptionFailure, "AES-CBC padding is invalid (wrong key or corrupted data)")
            }
            return Int(first + last)
        }
    }
}
