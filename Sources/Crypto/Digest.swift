import COpenSSL

/// The hash functions the module offers, for APIs that take one as a parameter
/// (HMAC, HKDF, RSA-OAEP, signing a message).
public enum HashFunction: String, Sendable, CaseIterable {
    /// SHA-1: only for reading old RSA-OAEP ciphertexts; never for new signatures.
    case sha1 = "SHA1"
    case sha256 = "SHA256"
    case sha384 = "SHA384"
    case sha512 = "SHA512"

    /// Digest length in bytes.
    public var byteCount: Int {
        switch self {
        case .sha1: return 20
        case .sha256: return 32
        case .sha384: return 48
        case .sha512: return 64
        }
    }

    /// OpenSSL's implicitly fetched `EVP_MD` (static, never freed).
    var evpMD: OpaquePointer {
        switch self {
        case .sha1: return EVP_sha1()
        case .sha256: return EVP_sha256()
        case .sha384: return EVP_sha384()
        case .sha512: return EVP_sha512()
        }
    }

    /// The one-shot digest of `data` with this function.
    public func hash(_ data: [UInt8]) -> [UInt8] {
        var hasher = IncrementalHash(self)
        hasher.update(data)
        return hasher.finalize()
    }
}

/// An incremental hash with value semantics: copying a hasher forks its state (copy on write),
/// so a caller can take the digest of a prefix and keep going.
public struct IncrementalHash: Sendable {
    final class Context: @unchecked Sendable {
        let pointer: OpaquePointer
        init(function: HashFunction) {
            guard let ctx = EVP_MD_CTX_new(), EVP_DigestInit_ex(ctx, function.evpMD, nil) == 1 else {
                fatalError("OpenSSL could not initialise \(function.rawValue): \(OpenSSLErrorQueue.drain())")
            }
            pointer = ctx
        }
        init(copying other: Context) {
            guard let ctx = EVP_MD_CTX_new(), EVP_MD_CTX_copy_ex(ctx, other.pointer) == 1 else {
                fatalError("OpenSSL could not copy a digest context: \(OpenSSLErrorQueue.drain())")
            }
            pointer = ctx
        }
        deinit { EVP_MD_CTX_free(pointer) }
    }

    /// Which function this hasher computes.
    public let function: HashFunction
    private var context: Context

    /// A fresh hasher.
    public init(_ function: HashFunction) {
        self.function = function
        context = Context(function: function)
    }

    private mutating func uniqueContext() -> OpaquePointer {
        if !isKnownUniquelyReferenced(&context) { context = Context(copying: context) }
        return context.pointer
    }

    /// Feeds more bytes.
    public mutating func update(_ data: [UInt8]) {
        data.withUnsafeBytes { update($0) }
    }

    /// Feeds more bytes from raw memory (no copy).
    public mutating func update(_ data: UnsafeRawBufferPointer) {
        guard data.count > 0 else { return }
        let ctx = uniqueContext()
        // EVP_DigestUpdate on a software digest cannot fail for valid inputs.
        let ok = EVP_DigestUpdate(ctx, data.baseAddress, data.count)
        precondition(ok == 1, "EVP_DigestUpdate failed")
    }

    /// The digest of everything fed so far. The hasher stays usable (it finalizes a copy).
    public func finalize() -> [UInt8] {
        let copy = Context(copying: context)
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = EVP_DigestFinal_ex(copy.pointer, &out, &length)
        precondition(ok == 1, "EVP_DigestFinal_ex failed")
        return Array(out.prefix(Int(length)))
    }
}

/// SHA-256: `SHA256.hash(bytes)` for one shot; `var h = SHA256(); h.update(...); h.finalize()`.
public struct SHA256: Sendable {
    private var state = IncrementalHash(.sha256)
    public static let byteCount = 32
    public init() {}
    /// The SHA-256 digest of `data` (32 bytes).
    public static func hash(_ data: [UInt8]) -> [UInt8] { HashFunction.sha256.hash(data) }
    public mutating func update(_ data: [UInt8]) { state.update(data) }
    public mutating func update(_ data: UnsafeRawBufferPointer) { state.update(data) }
    /// The digest so far; the hasher stays usable.
    public func finalize() -> [UInt8] { state.finalize() }
}

/// SHA-384: `SHA384.hash(bytes)` for one shot; `var h = SHA384(); h.update(...); h.finalize()`.
public struct SHA384: Sendable {
    private var state = IncrementalHash(.sha384)
    public static let byteCount = 48
    public init() {}
    /// The SHA-384 digest of `data` (48 bytes).
    public static func hash(_ data: [UInt8]) -> [UInt8] { HashFunction.sha384.hash(data) }
    public mutating func update(_ data: [UInt8]) { state.update(data) }
    public mutating func update(_ data: UnsafeRawBufferPointer) { state.update(data) }
    /// The digest so far; the hasher stays usable.
    public func finalize() -> [UInt8] { state.finalize() }
}

/// SHA-512: `SHA512.hash(bytes)` for one shot; `var h = SHA512(); h.update(...); h.finalize()`.
public struct SHA512: Sendable {
    private var state = IncrementalHash(.sha512)
    public static let byteCount = 64
    public init() {}
    /// The SHA-512 digest of `data` (64 bytes).
    public static func hash(_ data: [UInt8]) -> [UInt8] { HashFunction.sha512.hash(data) }
    public mutating func update(_ data: [UInt8]) { state.update(data) }
    public mutating func update(_ data: UnsafeRawBufferPointer) { state.update(data) }
    /// The digest so far; the hasher stays usable.
    public func finalize() -> [UInt8] { state.finalize() }
}
