import COpenSSL

/// HKDF (RFC 5869) with SHA-256/384/512 over OpenSSL's `EVP_KDF` "HKDF".
///
/// `deriveKey` is extract-then-expand; `extract` and `expand` are the two halves, as the
/// Encryption SDK's key derivation and commitment use them.
public enum HKDF {
    /// HKDF-Extract: the pseudorandom key (hash length) from input keying material and salt.
    /// An empty salt means a hash-length string of zeros, as RFC 5869 says.
    public static func extract(
        inputKeyMaterial: SecureBytes, salt: [UInt8], hash: HashFunction
    ) throws -> SecureBytes {
        try derive(mode: EVP_KDF_HKDF_MODE_EXTRACT_ONLY, key: inputKeyMaterial, salt: salt, info: [],
                   outputByteCount: hash.byteCount, hash: hash)
    }

    /// HKDF-Expand: `outputByteCount` bytes (at most 255 × hash length) from a pseudorandom key.
    public static func expand(
        pseudoRandomKey: SecureBytes, info: [UInt8], outputByteCount: Int, hash: HashFunction
    ) throws -> SecureBytes {
        guard pseudoRandomKey.count >= hash.byteCount else {
            throw CryptoError(.invalidArgument, "HKDF-Expand needs a pseudorandom key of at least the hash length")
        }
        return try derive(mode: EVP_KDF_HKDF_MODE_EXPAND_ONLY, key: pseudoRandomKey, salt: [], info: info,
                          outputByteCount: outputByteCount, hash: hash)
    }

    /// HKDF extract-then-expand: `outputByteCount` bytes of key from input keying material.
    public static func deriveKey(
        inputKeyMaterial: SecureBytes, salt: [UInt8], info: [UInt8], outputByteCount: Int, hash: HashFunction
    ) throws -> SecureBytes {
        try derive(mode: EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, key: inputKeyMaterial, salt: salt, info: info,
                   outputByteCount: outputByteCount, hash: hash)
    }

    private static func derive(
        mode: Int32, key: SecureBytes, salt: [UInt8], info: [UInt8], outputByteCount: Int, hash: HashFunction
    ) throws -> SecureBytes {
        guard hash != .sha1 else { throw CryptoError(.invalidArgument, "HKDF with SHA-1 is not offered") }
        guard outputByteCount > 0, outputByteCount <= 255 * hash.byteCount else {
            throw CryptoError(.invalidArgument, "HKDF output length must be 1...\(255 * hash.byteCount) bytes")
        }
        guard info.count <= 1024 else {
            throw CryptoError(.invalidArgument, "HKDF info longer than 1024 bytes")
        }
        OpenSSLErrorQueue.clear()
        guard let kdf = EVP_KDF_fetch(nil, "HKDF", nil) else {
            throw CryptoError.openSSL(.internalError, "HKDF is not available")
        }
        defer { EVP_KDF_free(kdf) }
        guard let ctx = EVP_KDF_CTX_new(kdf) else { throw CryptoError.openSSL(.internalError, "EVP_KDF_CTX_new") }
        defer { EVP_KDF_CTX_free(ctx) }

        let params = ParameterList()
        params.addString(OSSL_KDF_PARAM_DIGEST, hash.rawValue)
        params.addInt(OSSL_KDF_PARAM_MODE, mode)
        key.withUnsafeBytes { params.addOctets(OSSL_KDF_PARAM_KEY, $0) }
        // An empty salt is the same HMAC key as hash-length zeros (HMAC zero-pads keys).
        let effectiveSalt = salt.isEmpty ? [UInt8](repeating: 0, count: hash.byteCount) : salt
        if mode != EVP_KDF_HKDF_MODE_EXPAND_ONLY {
            effectiveSalt.withUnsafeBytes { params.addOctets(OSSL_KDF_PARAM_SALT, $0) }
        }
        if !info.isEmpty, mode != EVP_KDF_HKDF_MODE_EXTRACT_ONLY {
            info.withUnsafeBytes { params.addOctets(OSSL_KDF_PARAM_INFO, $0) }
        }
        return try SecureBytes(unsafeUninitializedCapacity: outputByteCount) { out in
            let ok = params.withParameters { p in
                EVP_KDF_derive(ctx, out.baseAddress?.assumingMemoryBound(to: UInt8.self), outputByteCount, p)
            }
            guard ok == 1 else { throw CryptoError.openSSL(.internalError, "HKDF derive") }
            return outputByteCount
        }
    }
}
