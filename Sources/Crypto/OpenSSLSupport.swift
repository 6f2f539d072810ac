import COpenSSL

// Internal plumbing shared by the public types: owned OpenSSL objects, memory BIOs and
// OSSL_PARAM arrays. Nothing here is public.

/// An owned `EVP_PKEY`. Immutable after creation, so it may be shared across threads
/// (OpenSSL allows concurrent use of a key through separate operation contexts).
final class PKey: @unchecked Sendable {
    let pointer: OpaquePointer

    init(taking pointer: OpaquePointer) { self.pointer = pointer }
    deinit { EVP_PKEY_free(pointer) }

    var baseID: Int32 { EVP_PKEY_get_base_id(pointer) }
    var bits: Int { Int(EVP_PKEY_get_bits(pointer)) }

    /// The curve name ("prime256v1", "secp384r1") of an EC key, else nil.
    var groupName: String? {
        var buffer = [CChar](repeating: 0, count: 80)
        var length = 0
        guard EVP_PKEY_get_group_name(pointer, &buffer, buffer.count, &length) == 1 else {
            ERR_clear_error()
            return nil
        }
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// SubjectPublicKeyInfo DER.
    func publicKeyDER() throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>? = nil
        let length = i2d_PUBKEY(pointer, &out)
        guard length > 0, let out else { throw CryptoError.openSSL(.internalError, "encoding public key") }
        defer { shim_OPENSSL_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(length)))
    }

    /// PKCS#8 PrivateKeyInfo DER, in a buffer zeroed on release.
    func privateKeyPKCS8() throws -> SecureBytes {
        guard let info = EVP_PKEY2PKCS8(pointer) else {
            throw CryptoError.openSSL(.internalError, "encoding private key")
        }
        defer { PKCS8_PRIV_KEY_INFO_free(info) }
        var out: UnsafeMutablePointer<UInt8>? = nil
        let length = i2d_PKCS8_PRIV_KEY_INFO(info, &out)
        guard length > 0, let out else { throw CryptoError.openSSL(.internalError, "encoding private key") }
        defer {
            OPENSSL_cleanse(out, Int(length))
            shim_OPENSSL_free(out)
        }
        return SecureBytes(copying: UnsafeRawBufferPointer(start: out, count: Int(length)))
    }

    /// Decodes a SubjectPublicKeyInfo.
    static func fromPublicKeyDER(_ der: [UInt8]) throws -> PKey {
        OpenSSLErrorQueue.clear()
        let key: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var p: UnsafePointer<UInt8>? = buffer.baseAddress
            let key = d2i_PUBKEY(nil, &p, buffer.count)
            // Reject trailing bytes: the DER must be exactly one SubjectPublicKeyInfo.
            if let key, let start = buffer.baseAddress, p != start + buffer.count {
                EVP_PKEY_free(key)
                return nil
            }
            return key
        }
        guard let key else {
            throw CryptoError.openSSL(.invalidKey, "not a DER SubjectPublicKeyInfo")
        }
        return PKey(taking: key)
    }

    /// Decodes a PKCS#8 PrivateKeyInfo or a type-specific private key (SEC1 EC, PKCS#1 RSA).
    static func fromPrivateKeyDER(_ der: UnsafeRawBufferPointer) throws -> PKey {
        OpenSSLErrorQueue.clear()
        guard der.count > 0, let base = der.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
            throw CryptoError(.invalidKey, "empty private key")
        }
        var p: UnsafePointer<UInt8>? = UnsafePointer(base)
        guard let key = d2i_AutoPrivateKey(nil, &p, der.count) else {
            throw CryptoError.openSSL(.invalidKey, "not a DER private key (PKCS#8, SEC1 or PKCS#1)")
        }
        guard p == UnsafePointer(base) + der.count else {
            EVP_PKEY_free(key)
            throw CryptoError(.invalidKey, "trailing bytes after the DER private key")
        }
        return PKey(taking: key)
    }

    /// Reads a BIGNUM parameter (e.g. "qx", "qy", "priv") as big-endian bytes padded to `width`.
    func bigNumberParameter(_ name: String, width: Int) throws -> [UInt8] {
        var bn: OpaquePointer? = nil
        guard EVP_PKEY_get_bn_param(pointer, name, &bn) == 1, let bn else {
            throw CryptoError.openSSL(.internalError, "reading key parameter \(name)")
        }
        defer { BN_clear_free(bn) }
        var out = [UInt8](repeating: 0, count: width)
        guard BN_bn2binpad(bn, &out, Int32(width)) == Int32(width) else {
            throw CryptoError.openSSL(.internalError, "key parameter \(name) too large")
        }
        return out
    }
}

/// A memory BIO for reading (over a copy) or writing.
final class MemoryBIO {
    let pointer: OpaquePointer

    /// A writable, growable BIO.
    init() throws {
        guard let bio = BIO_new(BIO_s_mem()) else { throw CryptoError.openSSL(.internalError, "BIO_new") }
        pointer = bio
    }

    /// A BIO holding a copy of `bytes`, to read from. With `secret`, the copy is cleansed when freed.
    init(_ bytes: [UInt8], secret: Bool = false) throws {
        guard let bio = BIO_new(secret ? BIO_s_secmem() : BIO_s_mem()) else {
            throw CryptoError.openSSL(.internalError, "BIO_new")
        }
        pointer = bio
        if !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { BIO_write(bio, $0.baseAddress, Int32($0.count)) }
            guard written == Int32(bytes.count) else { throw CryptoError.openSSL(.internalError, "BIO_write") }
        }
    }

    deinit { BIO_free(pointer) }

    /// Everything written so far.
    var contents: [UInt8] {
        var data: UnsafeMutablePointer<CChar>? = nil
        let length = shim_BIO_get_mem_data(pointer, &data)
        guard length > 0, let data else { return [] }
        return data.withMemoryRebound(to: UInt8.self, capacity: length) {
            Array(UnsafeBufferPointer(start: $0, count: length))
        }
    }
}

/// Builds an `OSSL_PARAM` array whose strings and octet buffers it owns (zeroed on release).
final class ParameterList {
    private var storage: [(UnsafeMutableRawPointer, Int)] = []
    private var params: [OSSL_PARAM] = []

    deinit {
        for (pointer, count) in storage {
            OPENSSL_cleanse(pointer, count)
            pointer.deallocate()
        }
    }

    private func own(_ bytes: UnsafeRawBufferPointer, extraZero: Bool) -> UnsafeMutableRawPointer {
        let count = bytes.count + (extraZero ? 1 : 0)
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 8)
        if let base = bytes.baseAddress, bytes.count > 0 { pointer.copyMemory(from: base, byteCount: bytes.count) }
        if extraZero { pointer.storeBytes(of: 0, toByteOffset: bytes.count, as: UInt8.self) }
        storage.append((pointer, max(count, 1)))
        return pointer
    }

    private func ownedKey(_ key: String) -> UnsafePointer<CChar> {
        let bytes = Array(key.utf8)
        let pointer = bytes.withUnsafeBytes { own($0, extraZero: true) }
        return UnsafePointer(pointer.assumingMemoryBound(to: CChar.self))
    }

    func addString(_ key: String, _ value: String) {
        let k = ownedKey(key)
        let bytes = Array(value.utf8)
        let v = bytes.withUnsafeBytes { own($0, extraZero: true) }
        params.append(OSSL_PARAM_construct_utf8_string(k, v.assumingMemoryBound(to: CChar.self), bytes.count))
    }

    func addOctets(_ key: String, _ value: UnsafeRawBufferPointer) {
        let k = ownedKey(key)
        let v = own(value, extraZero: false)
        params.append(OSSL_PARAM_construct_octet_string(k, v, value.count))
    }

    func addInt(_ key: String, _ value: Int32) {
        let k = ownedKey(key)
        let v = withUnsafeBytes(of: value) { own($0, extraZero: false) }
        params.append(OSSL_PARAM_construct_int(k, v.assumingMemoryBound(to: Int32.self)))
    }

    func addSizeT(_ key: String, _ value: Int) {
        let k = ownedKey(key)
        let v = withUnsafeBytes(of: value) { own($0, extraZero: false) }
        params.append(OSSL_PARAM_construct_size_t(k, v.assumingMemoryBound(to: Int.self)))
    }

    /// Calls `body` with the terminated array.
    func withParameters<R>(_ body: (UnsafePointer<OSSL_PARAM>) throws -> R) rethrows -> R {
        var terminated = params
        terminated.append(OSSL_PARAM_construct_end())
        return try terminated.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }
}

/// Hexadecimal text for public values (digests, fingerprints, serial numbers); never for secrets.
public enum Hex {
    /// Lowercase hexadecimal.
    public static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses hexadecimal (upper or lower case, no separators); nil if malformed.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        var index = 0
        while index < chars.count {
            guard let high = value(chars[index]), let low = value(chars[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }
}
