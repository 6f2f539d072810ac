import COpenSSL

/// HMAC (RFC 2104) with SHA-256/384/512 over OpenSSL's `EVP_MAC`.
///
/// One shot: `HMAC.authenticate(message, key: key, hash: .sha256)`; check with `HMAC.isValid`
/// (constant time). Incremental: `var mac = try HMAC(key: key, hash: .sha256)`, `update`, `finalize`.
public struct HMAC: Sendable {
    final class Context: @unchecked Sendable {
        let pointer: OpaquePointer
        init(taking pointer: OpaquePointer) { self.pointer = pointer }
        deinit { EVP_MAC_CTX_free(pointer) }  // also cleanses the key schedule
    }

    /// The hash function in use.
    public let hash: HashFunction
    private var context: Context

    /// Starts a MAC under `key`.
    public init(key: SecureBytes, hash: HashFunction) throws {
        OpenSSLErrorQueue.clear()
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else {
            throw CryptoError.openSSL(.internalError, "HMAC is not available")
        }
        defer { EVP_MAC_free(mac) }
        guard let ctx = EVP_MAC_CTX_new(mac) else { throw CryptoError.openSSL(.internalError, "EVP_MAC_CTX_new") }
        let context = Context(taking: ctx)
        let params = ParameterList()
        params.addString(OSSL_MAC_PARAM_DIGEST, hash.rawValue)
        // An empty key is legal for HMAC; OpenSSL wants a non-null pointer for it.
        var zero: UInt8 = 0
        let ok = key.withUnsafeBytes { keyBytes in
            params.withParameters { p in
                if keyBytes.count == 0 {
                    return EVP_MAC_init(ctx, &zero, 0, p)
                }
                return EVP_MAC_init(ctx, keyBytes.baseAddress?.assumingMemoryBound(to: UInt8.self), keyBytes.count, p)
            }
        }
        guard ok == 1 else { throw CryptoError.openSSL(.internalError, "HMAC init") }
        self.hash = hash
        self.context = context
    }

    private mutating func uniqueContext() -> OpaquePointer {
        if !isKnownUniquelyReferenced(&context) {
            guard let copy = EVP_MAC_CTX_dup(context.pointer) else { fatalError("EVP_MAC_CTX_dup failed") }
            context = Context(taking: copy)
        }
        return context.pointer
    }

    /// Feeds more message bytes.
    public mutating func update(_ data: [UInt8]) {
        data.withUnsafeBytes { update($0) }
    }

    /// Feeds more message bytes from raw memory.
    public mutating func update(_ data: UnsafeRawBufferPointer) {
        guard data.count > 0 else { return }
        let ctx = uniqueContext()
        let ok = EVP_MAC_update(ctx, data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count)
        precondition(ok == 1, "EVP_MAC_update failed")
    }

    /// The tag of everything fed so far; the MAC stays usable (it finalizes a copy).
    public func finalize() -> [UInt8] {
        guard let copy = EVP_MAC_CTX_dup(context.pointer) else { fatalError("EVP_MAC_CTX_dup failed") }
        defer { EVP_MAC_CTX_free(copy) }
        var out = [UInt8](repeating: 0, count: hash.byteCount)
        var length = 0
        let ok = EVP_MAC_final(copy, &out, &length, out.count)
        precondition(ok == 1 && length == hash.byteCount, "EVP_MAC_final failed")
        return out
    }

    /// The HMAC tag of `message` under `key`.
    public static func authenticate(_ message: [UInt8], key: SecureBytes, hash: HashFunction) throws -> [UInt8] {
        var mac = try HMAC(key: key, hash: hash)
        mac.update(message)
        return mac.finalize()
    }

    /// Whether `tag` is the HMAC of `message` under `key`, compared in constant time.
    public static func isValid(
        _ tag: [UInt8], for message: [UInt8], key: SecureBytes, hash: HashFunction
    ) throws -> Bool {
        ConstantTime.equals(try authenticate(message, key: key, hash: hash), tag)
    }
}
