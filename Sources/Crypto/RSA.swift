import Dispatch
import Synchronization
import COpenSSL

/// RSA keys and encryption (RSA-OAEP with SHA-256 or SHA-1, PKCS#1 v1.5 for decrypting old data).
///
/// Keys read from SubjectPublicKeyInfo / PKCS#8 and from PKCS#1 (`RSA PUBLIC KEY`,
/// `RSA PRIVATE KEY`); they are written as SPKI and PKCS#8.
public enum RSA {
    /// Encryption padding. OAEP uses MGF1 with the same hash and an empty label.
    public enum Padding: Sendable, Equatable {
        /// RSAES-OAEP with SHA-256 and MGF1-SHA-256 (use this for new data).
        case oaepSHA256
        /// RSAES-OAEP with SHA-1 and MGF1-SHA-1 (old Encryption SDK messages).
        case oaepSHA1
        /// RSAES-PKCS1-v1_5: decrypt only, for old messages. Not offered for encryption.
        case pkcs1v15
    }

    /// Key sizes offered for generation.
    public static let allowedGenerationSizes: Set<Int> = [2048, 3072, 4096]

    /// Smallest modulus accepted when reading a key.
    public static let minimumKeySize = 2048
    /// Largest modulus accepted when reading a key.
    public static let maximumKeySize = 16384

    /// A flag that racing key searches poll (through OpenSSL's progress callback) and the winner sets.
    final class StopFlag: @unchecked Sendable {  // read and written only with C atomics
        let pointer: UnsafeMutablePointer<Int32>
        init() {
            pointer = .allocate(capacity: 1)
            pointer.initialize(to: 0)
        }
        func set() { shim_atomic_set(pointer) }
        deinit { pointer.deallocate() }
    }

    static func requireRSA(_ key: PKey) throws {
        guard key.baseID == EVP_PKEY_RSA else {
            throw CryptoError(.wrongKeyType, "expected an RSA key, got another key type")
        }
        guard key.bits >= minimumKeySize, key.bits <= maximumKeySize else {
            throw CryptoError(.invalidKey, "RSA key of \(key.bits) bits; allowed \(minimumKeySize)...\(maximumKeySize)")
        }
    }

    static func configure(_ ctx: OpaquePointer, _ padding: Padding) throws {
        switch padding {
        case .pkcs1v15:
            guard EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 else {
                throw CryptoError.openSSL(.internalError, "setting RSA padding")
            }
        case .oaepSHA256, .oaepSHA1:
            let md = padding == .oaepSHA256 ? EVP_sha256() : EVP_sha1()
            guard EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1,
                EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) == 1,
                EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) == 1
            else { throw CryptoError.openSSL(.internalError, "setting RSA-OAEP parameters") }
        }
    }

    /// An RSA private key. Serialized forms come back as `SecureBytes`.
    public struct PrivateKey: Sendable {
        let key: PKey

        /// Generates a key of `bits` (2048, 3072 or 4096), public exponent 65537.
        public init(bits: Int) throws {
            guard RSA.allowedGenerationSizes.contains(bits) else {
                throw CryptoError(.invalidArgument, "RSA key size must be 2048, 3072 or 4096, not \(bits)")
            }
            OpenSSLErrorQueue.clear()
            guard let pkey = shim_EVP_RSA_gen(UInt32(bits)) else {
                throw CryptoError.openSSL(.internalError, "generating an RSA-\(bits) key")
            }
            key = PKey(taking: pkey)
        }

        /// Generates a key of `bits` with `attempts` searches racing on their own threads: the
        /// first key found is taken and the other searches stop. An RSA key is a random search for
        /// primes whose time varies several-fold (80–480 ms for 2048 bits here), so the first of two
        /// is both faster on average and far steadier, when a core is free to run the second.
        public init(bits: Int, racing attempts: Int) throws {
            guard attempts > 1 else {
                try self.init(bits: bits)
                return
            }
            guard RSA.allowedGenerationSizes.contains(bits) else {
                throw CryptoError(.invalidArgument, "RSA key size must be 2048, 3072 or 4096, not \(bits)")
            }
            let stop = RSA.StopFlag()
            let found = Mutex<PKey?>(nil)
            DispatchQueue.concurrentPerform(iterations: attempts) { _ in
                guard let pkey = shim_EVP_RSA_gen_stoppable(UInt32(bits), stop.pointer) else { return }
                stop.set()
                let key = PKey(taking: pkey)
                found.withLock { if $0 == nil { $0 = key } }
            }
            guard let key = found.withLock({ $0 }) else {
                throw CryptoError.openSSL(.internalError, "generating an RSA-\(bits) key")
            }
            try self.init(checking: key)
        }

        init(checking key: PKey) throws {
            try RSA.requireRSA(key)
            self.key = key
        }

        /// Reads PKCS#8 PrivateKeyInfo DER or PKCS#1 RSAPrivateKey DER.
        public init(derRepresentation: SecureBytes) throws {
            try self.init(checking: derRepresentation.withUnsafeBytes { try PKey.fromPrivateKeyDER($0) })
        }

        /// Reads PKCS#8 PrivateKeyInfo DER or PKCS#1 RSAPrivateKey DER.
        public init(derRepresentation: [UInt8]) throws {
            try self.init(checking: derRepresentation.withUnsafeBytes { try PKey.fromPrivateKeyDER($0) })
        }

        /// Reads PEM `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1).
        public init(pemRepresentation: String) throws {
            let block = try PEM.decodeSingleSecret(pemRepresentation, labels: ["PRIVATE KEY", "RSA PRIVATE KEY"])
            try self.init(derRepresentation: block.der)
        }

        /// Modulus size in bits.
        public var bits: Int { key.bits }

        /// PKCS#8 PrivateKeyInfo DER.
        public var derRepresentation: SecureBytes {
            get throws { try key.privateKeyPKCS8() }
        }

        /// PEM `PRIVATE KEY` (PKCS#8) text as UTF-8 bytes zeroed on release.
        public var pemRepresentation: SecureBytes {
            get throws { PEM.encodeSecret(label: "PRIVATE KEY", der: try key.privateKeyPKCS8()) }
        }

        /// The matching public key.
        public var publicKey: PublicKey {
            get throws { try PublicKey(derRepresentation: try key.publicKeyDER()) }
        }

        /// Decrypts `ciphertext` (exactly the modulus length) with `padding`.
        /// Failures are `.decryptionFailure` and say nothing about where the padding broke.
        public func decrypt(_ ciphertext: [UInt8], padding: Padding) throws -> SecureBytes {
            let modulusBytes = (bits + 7) / 8
            guard ciphertext.count == modulusBytes else {
                throw CryptoError(
                    .decryptionFailure, "RSA ciphertext is \(ciphertext.count) bytes; the key needs \(modulusBytes)")
            }
            OpenSSLErrorQueue.clear()
            guard let ctx = EVP_PKEY_CTX_new(key.pointer, nil) else {
                throw CryptoError.openSSL(.internalError, "EVP_PKEY_CTX_new")
            }
            defer { EVP_PKEY_CTX_free(ctx) }
            guard EVP_PKEY_decrypt_init(ctx) == 1 else { throw CryptoError.openSSL(.internalError, "decrypt init") }
            try RSA.configure(ctx, padding)
            return try SecureBytes(unsafeUninitializedCapacity: modulusBytes) { out in
                var length = modulusBytes
                let ok = EVP_PKEY_decrypt(
                    ctx, out.baseAddress?.assumingMemoryBound(to: UInt8.self), &length, ciphertext, ciphertext.count)
                guard ok == 1 else { throw CryptoError.openSSL(.decryptionFailure, "RSA decryption failed") }
                return length
            }
        }
    }

    /// An RSA public key.
    public struct PublicKey: Sendable {
        let key: PKey

        init(checking key: PKey) throws {
            try RSA.requireRSA(key)
            self.key = key
        }

        /// Reads SubjectPublicKeyInfo DER.
        public init(derRepresentation: [UInt8]) throws {
            try self.init(checking: try PKey.fromPublicKeyDER(derRepresentation))
        }

        /// Reads PKCS#1 RSAPublicKey DER (`SEQUENCE { modulus, publicExponent }`).
        public init(pkcs1DERRepresentation der: [UInt8]) throws {
            OpenSSLErrorQueue.clear()
            let parsed: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
                guard let base = buffer.baseAddress else { return nil }
                var p: UnsafePointer<UInt8>? = base
                guard let key = d2i_PublicKey(EVP_PKEY_RSA, nil, &p, buffer.count) else { return nil }
                if p != base + buffer.count {
                    EVP_PKEY_free(key)
                    return nil
                }
                return key
            }
            guard let parsed else { throw CryptoError.openSSL(.invalidKey, "not a DER PKCS#1 RSAPublicKey") }
            try self.init(checking: PKey(taking: parsed))
        }

        /// Reads PEM `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY` (PKCS#1).
        public init(pemRepresentation: String) throws {
            let block = try PEM.decodeSingle(pemRepresentation, labels: ["PUBLIC KEY", "RSA PUBLIC KEY"])
            if block.label == "RSA PUBLIC KEY" {
                try self.init(pkcs1DERRepresentation: block.der)
            } else {
                try self.init(derRepresentation: block.der)
            }
        }

        /// Modulus size in bits.
        public var bits: Int { key.bits }

        /// SubjectPublicKeyInfo DER.
        public var derRepresentation: [UInt8] {
            get throws { try key.publicKeyDER() }
        }

        /// PEM `PUBLIC KEY` (SPKI) text.
        public var pemRepresentation: String {
            get throws { PEM.encode(label: "PUBLIC KEY", der: try key.publicKeyDER()) }
        }

        /// PKCS#1 RSAPublicKey DER.
        public var pkcs1DERRepresentation: [UInt8] {
            get throws {
                var out: UnsafeMutablePointer<UInt8>? = nil
                let length = i2d_PublicKey(key.pointer, &out)
                guard length > 0, let out else { throw CryptoError.openSSL(.internalError, "encoding RSAPublicKey") }
                defer { shim_OPENSSL_free(out) }
                return Array(UnsafeBufferPointer(start: out, count: Int(length)))
            }
        }

        /// Encrypts `plaintext` with RSA-OAEP (`.oaepSHA256` or `.oaepSHA1`).
        public func encrypt(_ plaintext: SecureBytes, padding: Padding) throws -> [UInt8] {
            guard padding != .pkcs1v15 else {
                throw CryptoError(.invalidArgument, "PKCS#1 v1.5 is offered for decryption only")
            }
            let hashLength = padding == .oaepSHA256 ? 32 : 20
            let modulusBytes = (bits + 7) / 8
            guard plaintext.count <= modulusBytes - 2 * hashLength - 2 else {
                throw CryptoError(
                    .invalidArgument,
                    "RSA-OAEP plaintext is at most \(modulusBytes - 2 * hashLength - 2) bytes for this key")
            }
            OpenSSLErrorQueue.clear()
            guard let ctx = EVP_PKEY_CTX_new(key.pointer, nil) else {
                throw CryptoError.openSSL(.internalError, "EVP_PKEY_CTX_new")
            }
            defer { EVP_PKEY_CTX_free(ctx) }
            guard EVP_PKEY_encrypt_init(ctx) == 1 else { throw CryptoError.openSSL(.internalError, "encrypt init") }
            try RSA.configure(ctx, padding)
            var out = [UInt8](repeating: 0, count: modulusBytes)
            var length = modulusBytes
            let ok = plaintext.withUnsafeBytes { input in
                EVP_PKEY_encrypt(
                    ctx, &out, &length, input.baseAddress?.assumingMemoryBound(to: UInt8.self), input.count)
            }
            guard ok == 1 else { throw CryptoError.openSSL(.internalError, "RSA encryption failed") }
            return Array(out.prefix(length))
        }

        /// Encrypts `plaintext` with RSA-OAEP (`.oaepSHA256` or `.oaepSHA1`).
        public func encrypt(_ plaintext: [UInt8], padding: Padding) throws -> [UInt8] {
            try encrypt(SecureBytes(plaintext), padding: padding)
        }
    }
}
