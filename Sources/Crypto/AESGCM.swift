import COpenSSL

/// AES-256-GCM with 12-byte nonces and 16-byte detached tags.
///
/// One shot: `AESGCM.seal` / `AESGCM.open`. Streaming: `AESGCM.Encryptor` and
/// `AESGCM.Decryptor` take any number of `update` calls. A streaming decryptor's output is
/// **unauthenticated** until `finalize(tag:)` returns; callers (e.g. the Encryption SDK frame
/// reader) must hold it back until then. Never reuse a (key, nonce) pair.
public enum AESGCM {
    public static let keyByteCount = 32
    public static let nonceByteCount = 12
    public static let tagByteCount = 16

    /// Ciphertext (same length as the plaintext) and its tag.
    public struct SealedBox: Sendable, Equatable {
        public let ciphertext: [UInt8]
        public let tag: [UInt8]
        public init(ciphertext: [UInt8], tag: [UInt8]) {
            self.ciphertext = ciphertext
            self.tag = tag
        }
    }

    /// Encrypts `plaintext` and authenticates it together with `aad`.
    public static func seal(
        _ plaintext: [UInt8], key: SecureBytes, nonce: [UInt8], authenticating aad: [UInt8] = []
    ) throws -> SealedBox {
        let encryptor = try Encryptor(key: key, nonce: nonce, authenticating: aad)
        let ciphertext = try encryptor.update(plaintext)
        return SealedBox(ciphertext: ciphertext, tag: try encryptor.finalize())
    }

    /// Encrypts a secret (e.g. a data key being wrapped).
    public static func seal(
        _ plaintext: SecureBytes, key: SecureBytes, nonce: [UInt8], authenticating aad: [UInt8] = []
    ) throws -> SealedBox {
        let encryptor = try Encryptor(key: key, nonce: nonce, authenticating: aad)
        var ciphertext = [UInt8](repeating: 0, count: plaintext.count)
        _ = try plaintext.withUnsafeBytes { input in
            try ciphertext.withUnsafeMutableBytes { try encryptor.update(input, into: $0) }
        }
        return SealedBox(ciphertext: ciphertext, tag: try encryptor.finalize())
    }

    /// Decrypts and authenticates; throws `.authenticationFailure` (and returns nothing) when the
    /// key, nonce, AAD, ciphertext or tag do not match.
    public static func open(
        _ ciphertext: [UInt8], tag: [UInt8], key: SecureBytes, nonce: [UInt8], authenticating aad: [UInt8] = []
    ) throws -> [UInt8] {
        let decryptor = try Decryptor(key: key, nonce: nonce, authenticating: aad)
        var plaintext = try decryptor.update(ciphertext)
        do {
            try decryptor.finalize(tag: tag)
        } catch {
            plaintext.withUnsafeMutableBytes { if let b = $0.baseAddress { OPENSSL_cleanse(b, $0.count) } }
            throw error
        }
        return plaintext
    }

    /// Like `open`, for plaintexts that are secrets (e.g. wrapped data keys).
    public static func openSecret(
        _ ciphertext: [UInt8], tag: [UInt8], key: SecureBytes, nonce: [UInt8], authenticating aad: [UInt8] = []
    ) throws -> SecureBytes {
        let decryptor = try Decryptor(key: key, nonce: nonce, authenticating: aad)
        let plaintext = try SecureBytes(unsafeUninitializedCapacity: ciphertext.count) { out in
            try ciphertext.withUnsafeBytes { try decryptor.update($0, into: out) }
        }
        try decryptor.finalize(tag: tag)
        return plaintext
    }

    /// Streaming encryption: `update` any number of times, then `finalize` for the tag.
    public final class Encryptor {
        private let cipher: GCMContext

        /// Starts encrypting under `key` (32 bytes) and `nonce` (12 bytes), authenticating `aad`.
        public init(key: SecureBytes, nonce: [UInt8], authenticating aad: [UInt8] = []) throws {
            cipher = try GCMContext(encrypt: true, key: key, nonce: nonce, aad: aad)
        }

        /// Encrypts more plaintext; the ciphertext has the same length.
        public func update(_ plaintext: [UInt8]) throws -> [UInt8] {
            var out = [UInt8](repeating: 0, count: plaintext.count)
            _ = try plaintext.withUnsafeBytes { input in
                try out.withUnsafeMutableBytes { try cipher.update(input, into: $0) }
            }
            return out
        }

        /// Encrypts `input` into `output` (at least as large) without allocating; returns the bytes written.
        public func update(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
            try cipher.update(input, into: output)
        }

        /// Ends the message and returns the 16-byte tag.
        public func finalize() throws -> [UInt8] {
            try cipher.finishEncrypting()
        }
    }

    /// Streaming decryption. Output of `update` is unauthenticated until `finalize(tag:)` succeeds.
    public final class Decryptor {
        private let cipher: GCMContext

        /// Starts decrypting under `key` (32 bytes) and `nonce` (12 bytes), authenticating `aad`.
        public init(key: SecureBytes, nonce: [UInt8], authenticating aad: [UInt8] = []) throws {
            cipher = try GCMContext(encrypt: false, key: key, nonce: nonce, aad: aad)
        }

        /// Decrypts more ciphertext (unauthenticated until `finalize(tag:)`).
        public func update(_ ciphertext: [UInt8]) throws -> [UInt8] {
            var out = [UInt8](repeating: 0, count: ciphertext.count)
            _ = try ciphertext.withUnsafeBytes { input in
                try out.withUnsafeMutableBytes { try cipher.update(input, into: $0) }
            }
            return out
        }

        /// Decrypts `input` into `output` (at least as large) without allocating; returns the bytes written.
        public func update(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
            try cipher.update(input, into: output)
        }

        /// Checks the 16-byte tag; throws `.authenticationFailure` if it does not match.
        public func finalize(tag: [UInt8]) throws {
            try cipher.finishDecrypting(tag: tag)
        }
    }
}

/// One `EVP_CIPHER_CTX` for AES-256-GCM (frees and cleanses the key schedule on release).
final class GCMContext {
    private let ctx: OpaquePointer
    private let encrypting: Bool
    private var finished = false

    init(encrypt: Bool, key: SecureBytes, nonce: [UInt8], aad: [UInt8]) throws {
        // 32-byte keys (AES-256) for everything new; 16 and 24 bytes only so the Envelope module can
        // read old Encryption SDK messages (suites 0x0014/0x0046/0x0114/0x0146/0x0214/0x0346) and
        // raw AES keyrings with 128/192-bit wrapping keys.
        let cipher: OpaquePointer?
        switch key.count {
        case 16: cipher = EVP_aes_128_gcm()
        case 24: cipher = EVP_aes_192_gcm()
        case AESGCM.keyByteCount: cipher = EVP_aes_256_gcm()
        default: throw CryptoError(.invalidArgument, "AES-GCM needs a 32-byte key (16 or 24 to read old data), got \(key.count)")
        }
        guard nonce.count == AESGCM.nonceByteCount else {
            throw CryptoError(.invalidArgument, "AES-GCM needs a 12-byte nonce, got \(nonce.count)")
        }
        OpenSSLErrorQueue.clear()
        guard let ctx = EVP_CIPHER_CTX_new() else { throw CryptoError.openSSL(.internalError, "EVP_CIPHER_CTX_new") }
        self.ctx = ctx
        encrypting = encrypt
        let ok = key.withUnsafeBytes { keyBytes in
            nonce.withUnsafeBufferPointer { iv in
                EVP_CipherInit_ex(
                    ctx, cipher, nil, keyBytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
                    iv.baseAddress, encrypt ? 1 : 0)
            }
        }
        guard ok == 1 else { throw CryptoError.openSSL(.internalError, "AES-GCM init") }
        if !aad.isEmpty {
            var outLength: Int32 = 0
            var offset = 0
            while offset < aad.count {
                let chunk = min(aad.count - offset, 1 << 30)
                let ok = aad.withUnsafeBufferPointer {
                    EVP_CipherUpdate(ctx, nil, &outLength, $0.baseAddress! + offset, Int32(chunk))
                }
                guard ok == 1 else { throw CryptoError.openSSL(.internalError, "AES-GCM AAD") }
                offset += chunk
            }
        }
    }

    deinit { EVP_CIPHER_CTX_free(ctx) }

    func update(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        guard !finished else { throw CryptoError(.invalidState, "AES-GCM update after finalize") }
        guard output.count >= input.count else {
            throw CryptoError(.invalidArgument, "AES-GCM output buffer smaller than the input")
        }
        guard input.count > 0 else { return 0 }
        let inBase = input.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let outBase = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var offset = 0
        while offset < input.count {
            let chunk = min(input.count - offset, 1 << 30)
            var written: Int32 = 0
            guard EVP_CipherUpdate(ctx, outBase + offset, &written, inBase + offset, Int32(chunk)) == 1,
                Int(written) == chunk
            else { throw CryptoError.openSSL(.internalError, "AES-GCM update") }
            offset += chunk
        }
        return input.count
    }

    func finishEncrypting() throws -> [UInt8] {
        guard !finished else { throw CryptoError(.invalidState, "AES-GCM finalized twice") }
        finished = true
        var scratch = [UInt8](repeating: 0, count: 16)
        var written: Int32 = 0
        guard EVP_CipherFinal_ex(ctx, &scratch, &written) == 1 else {
            throw CryptoError.openSSL(.internalError, "AES-GCM final")
        }
        var tag = [UInt8](repeating: 0, count: AESGCM.tagByteCount)
        guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, Int32(tag.count), &tag) == 1 else {
            throw CryptoError.openSSL(.internalError, "AES-GCM get tag")
        }
        return tag
    }

    func finishDecrypting(tag: [UInt8]) throws {
        guard !finished else { throw CryptoError(.invalidState, "AES-GCM finalized twice") }
        finished = true
        guard tag.count == AESGCM.tagByteCount else {
            throw CryptoError(.authenticationFailure, "AES-GCM tag must be 16 bytes, got \(tag.count)")
        }
        var copy = tag
        guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, Int32(copy.count), &copy) == 1 else {
            throw CryptoError.openSSL(.internalError, "AES-GCM set tag")
        }
        var scratch = [UInt8](repeating: 0, count: 16)
        var written: Int32 = 0
        guard EVP_CipherFinal_ex(ctx, &scratch, &written) == 1 else {
            OpenSSLErrorQueue.clear()
            throw CryptoError(.authenticationFailure, "AES-GCM authentication failed (wrong key, nonce, AAD or tag, or altered data)")
        }
    }
}

extension AESGCM {
    /// One AES-256-GCM key set up once and used for many (nonce, message) pairs, such as the
    /// frames of an Encryption SDK message: the key schedule is computed once, each call only
    /// sets a new nonce. Not thread-safe: use one per stream. Never reuse a nonce under one key.
    public final class FrameCipher {
        private let encryptContext: OpaquePointer
        private let decryptContext: OpaquePointer

        /// Sets up `key` (32 bytes).
        public init(key: SecureBytes) throws {
            guard key.count == AESGCM.keyByteCount else {
                throw CryptoError(.invalidArgument, "AES-256-GCM needs a 32-byte key, got \(key.count)")
            }
            OpenSSLErrorQueue.clear()
            guard let e = EVP_CIPHER_CTX_new() else { throw CryptoError.openSSL(.internalError, "EVP_CIPHER_CTX_new") }
            guard let d = EVP_CIPHER_CTX_new() else {
                EVP_CIPHER_CTX_free(e)
                throw CryptoError.openSSL(.internalError, "EVP_CIPHER_CTX_new")
            }
            encryptContext = e
            decryptContext = d
            let ok = key.withUnsafeBytes { k -> Bool in
                let keyPointer = k.baseAddress?.assumingMemoryBound(to: UInt8.self)
                return EVP_CipherInit_ex(e, EVP_aes_256_gcm(), nil, keyPointer, nil, 1) == 1
                    && EVP_CipherInit_ex(d, EVP_aes_256_gcm(), nil, keyPointer, nil, 0) == 1
            }
            guard ok else { throw CryptoError.openSSL(.internalError, "AES-GCM key setup") }
        }

        deinit {
            EVP_CIPHER_CTX_free(encryptContext)
            EVP_CIPHER_CTX_free(decryptContext)
        }

        private func start(_ ctx: OpaquePointer, nonce: [UInt8], aad: UnsafeRawBufferPointer) throws {
            guard nonce.count == AESGCM.nonceByteCount else {
                throw CryptoError(.invalidArgument, "AES-GCM needs a 12-byte nonce, got \(nonce.count)")
            }
            guard EVP_CipherInit_ex(ctx, nil, nil, nil, nonce, -1) == 1 else {
                throw CryptoError.openSSL(.internalError, "AES-GCM nonce")
            }
            if aad.count > 0 {
                guard aad.count < 1 << 30 else { throw CryptoError(.invalidArgument, "AES-GCM AAD too large") }
                var written: Int32 = 0
                guard EVP_CipherUpdate(
                    ctx, nil, &written, aad.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(aad.count)) == 1
                else { throw CryptoError.openSSL(.internalError, "AES-GCM AAD") }
            }
        }

        private func process(_ ctx: OpaquePointer, _ input: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer)
            throws
        {
            guard output.count >= input.count else {
                throw CryptoError(.invalidArgument, "AES-GCM output buffer smaller than the input")
            }
            guard input.count > 0 else { return }
            guard input.count < 1 << 30 else { throw CryptoError(.invalidArgument, "AES-GCM message too large for one call") }
            var written: Int32 = 0
            guard EVP_CipherUpdate(
                ctx, output.baseAddress!.assumingMemoryBound(to: UInt8.self), &written,
                input.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(input.count)) == 1,
                Int(written) == input.count
            else { throw CryptoError.openSSL(.internalError, "AES-GCM update") }
        }

        /// Encrypts `plaintext` into `ciphertext` (at least as large) and returns the 16-byte tag.
        public func seal(
            _ plaintext: UnsafeRawBufferPointer, nonce: [UInt8], authenticating aad: UnsafeRawBufferPointer,
            into ciphertext: UnsafeMutableRawBufferPointer
        ) throws -> [UInt8] {
            OpenSSLErrorQueue.clear()
            try start(encryptContext, nonce: nonce, aad: aad)
            try process(encryptContext, plaintext, ciphertext)
            var scratch = [UInt8](repeating: 0, count: 16)
            var written: Int32 = 0
            guard EVP_CipherFinal_ex(encryptContext, &scratch, &written) == 1 else {
                throw CryptoError.openSSL(.internalError, "AES-GCM final")
            }
            var tag = [UInt8](repeating: 0, count: AESGCM.tagByteCount)
            guard EVP_CIPHER_CTX_ctrl(encryptContext, EVP_CTRL_GCM_GET_TAG, Int32(tag.count), &tag) == 1 else {
                throw CryptoError.openSSL(.internalError, "AES-GCM get tag")
            }
            return tag
        }

        /// Decrypts `ciphertext` into `plaintext` (at least as large) and checks `tag`. On failure
        /// the output buffer is zeroed and `.authenticationFailure` is thrown.
        public func open(
            _ ciphertext: UnsafeRawBufferPointer, tag: [UInt8], nonce: [UInt8], authenticating aad: UnsafeRawBufferPointer,
            into plaintext: UnsafeMutableRawBufferPointer
        ) throws {
            OpenSSLErrorQueue.clear()
            guard tag.count == AESGCM.tagByteCount else {
                throw CryptoError(.authenticationFailure, "AES-GCM tag must be 16 bytes, got \(tag.count)")
            }
            try start(decryptContext, nonce: nonce, aad: aad)
            try process(decryptContext, ciphertext, plaintext)
            var copy = tag
            guard EVP_CIPHER_CTX_ctrl(decryptContext, EVP_CTRL_GCM_SET_TAG, Int32(copy.count), &copy) == 1 else {
                throw CryptoError.openSSL(.internalError, "AES-GCM set tag")
            }
            var scratch = [UInt8](repeating: 0, count: 16)
            var written: Int32 = 0
            guard EVP_CipherFinal_ex(decryptContext, &scratch, &written) == 1 else {
                OpenSSLErrorQueue.clear()
                if let base = plaintext.baseAddress, ciphertext.count > 0 { OPENSSL_cleanse(base, ciphertext.count) }
                throw CryptoError(.authenticationFailure, "AES-GCM authentication failed (wrong key, nonce, AAD or tag, or altered data)")
            }
        }

        /// Array convenience for `seal(_:nonce:authenticating:into:)`.
        public func seal(_ plaintext: [UInt8], nonce: [UInt8], authenticating aad: [UInt8] = []) throws -> SealedBox {
            var ciphertext = [UInt8](repeating: 0, count: plaintext.count)
            let tag = try plaintext.withUnsafeBytes { p in
                try aad.withUnsafeBytes { a in
                    try ciphertext.withUnsafeMutableBytes { try seal(p, nonce: nonce, authenticating: a, into: $0) }
                }
            }
            return SealedBox(ciphertext: ciphertext, tag: tag)
        }

        /// Array convenience for `open(_:tag:nonce:authenticating:into:)`.
        public func open(_ ciphertext: [UInt8], tag: [UInt8], nonce: [UInt8], authenticating aad: [UInt8] = []) throws
            -> [UInt8]
        {
            var plaintext = [UInt8](repeating: 0, count: ciphertext.count)
            try ciphertext.withUnsafeBytes { c in
                try aad.withUnsafeBytes { a in
                    try plaintext.withUnsafeMutableBytes {
                        try open(c, tag: tag, nonce: nonce, authenticating: a, into: $0)
                    }
                }
            }
            return plaintext
        }
    }
}
