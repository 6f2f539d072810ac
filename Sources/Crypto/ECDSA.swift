import COpenSSL

/// A NIST prime curve for ECDSA. Conformers are the namespaces `P256` and `P384`.
public protocol ECDSACurve: Sendable {
    /// OpenSSL's group name ("prime256v1", "secp384r1").
    static var groupName: String { get }
    /// Human name ("P-256").
    static var curveName: String { get }
    /// Byte length of a field element / scalar (32, 48).
    static var coordinateByteCount: Int { get }
    /// The hash paired with the curve for `signature(for:)` (SHA-256, SHA-384).
    static var hash: HashFunction { get }
}

/// NIST P-256 (secp256r1) with SHA-256. Keys: `P256.Signing.PrivateKey`, `P256.Signing.PublicKey`.
public enum P256: ECDSACurve {
    public static let groupName = "prime256v1"
    public static let curveName = "P-256"
    public static let coordinateByteCount = 32
    public static let hash = HashFunction.sha256

    /// ECDSA over P-256.
    public enum Signing {
        public typealias PrivateKey = ECDSAPrivateKey<P256>
        public typealias PublicKey = ECDSAPublicKey<P256>
        public typealias ECDSASignature = Crypto.ECDSASignature<P256>
    }
}

/// NIST P-384 (secp384r1) with SHA-384. Keys: `P384.Signing.PrivateKey`, `P384.Signing.PublicKey`.
public enum P384: ECDSACurve {
    public static let groupName = "secp384r1"
    public static let curveName = "P-384"
    public static let coordinateByteCount = 48
    public static let hash = HashFunction.sha384

    /// ECDSA over P-384.
    public enum Signing {
        public typealias PrivateKey = ECDSAPrivateKey<P384>
        public typealias PublicKey = ECDSAPublicKey<P384>
        public typealias ECDSASignature = Crypto.ECDSASignature<P384>
    }
}

/// An ECDSA private key on `Curve`. Key material lives in OpenSSL (freed and cleansed with
/// the key); serialized forms come back as `SecureBytes`.
public struct ECDSAPrivateKey<Curve: ECDSACurve>: Sendable {
    let key: PKey

    /// Generates a fresh key.
    public init() throws {
        OpenSSLErrorQueue.clear()
        guard let pkey = shim_EVP_EC_gen(Curve.groupName) else {
            throw CryptoError.openSSL(.internalError, "generating a \(Curve.curveName) key")
        }
        key = PKey(taking: pkey)
    }

    init(checking key: PKey) throws {
        try ECKeyCheck.requireCurve(key, Curve.self)
        self.key = key
    }

    /// Reads PKCS#8 PrivateKeyInfo DER (or SEC1 ECPrivateKey DER).
    public init(derRepresentation: SecureBytes) throws {
        try self.init(checking: derRepresentation.withUnsafeBytes { try PKey.fromPrivateKeyDER($0) })
    }

    /// Reads PKCS#8 PrivateKeyInfo DER (or SEC1 ECPrivateKey DER).
    public init(derRepresentation: [UInt8]) throws {
        try self.init(checking: derRepresentation.withUnsafeBytes { try PKey.fromPrivateKeyDER($0) })
    }

    /// Reads PEM `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC1).
    public init(pemRepresentation: String) throws {
        let block = try PEM.decodeSingleSecret(pemRepresentation, labels: ["PRIVATE KEY", "EC PRIVATE KEY"])
        try self.init(derRepresentation: block.der)
    }

    /// PKCS#8 PrivateKeyInfo DER.
    public var derRepresentation: SecureBytes {
        get throws { try key.privateKeyPKCS8() }
    }

    /// PEM `PRIVATE KEY` (PKCS#8) text, as UTF-8 bytes zeroed on release.
    public var pemRepresentation: SecureBytes {
        get throws { PEM.encodeSecret(label: "PRIVATE KEY", der: try key.privateKeyPKCS8()) }
    }

    /// The matching public key.
    public var publicKey: ECDSAPublicKey<Curve> {
        get throws { try ECDSAPublicKey(derRepresentation: try key.publicKeyDER()) }
    }

    /// Signs `message` hashed with the curve's hash (SHA-256 for P-256, SHA-384 for P-384).
    public func signature(for message: [UInt8]) throws -> ECDSASignature<Curve> {
        try signature(forDigest: Curve.hash.hash(message))
    }

    /// Signs `message` hashed with `hash` (e.g. P-384 with SHA-256 for X.509 issuance).
    public func signature(for message: [UInt8], hash: HashFunction) throws -> ECDSASignature<Curve> {
        try signature(forDigest: hash.hash(message))
    }

    /// Signs a precomputed digest (the caller hashed the message, e.g. incrementally).
    public func signature(forDigest digest: [UInt8]) throws -> ECDSASignature<Curve> {
        OpenSSLErrorQueue.clear()
        guard let ctx = EVP_PKEY_CTX_new(key.pointer, nil) else {
            throw CryptoError.openSSL(.internalError, "EVP_PKEY_CTX_new")
        }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_sign_init(ctx) == 1 else { throw CryptoError.openSSL(.internalError, "ECDSA sign init") }
        var length = 0
        guard EVP_PKEY_sign(ctx, nil, &length, digest, digest.count) == 1 else {
            throw CryptoError.openSSL(.internalError, "ECDSA sign size")
        }
        var der = [UInt8](repeating: 0, count: length)
        guard EVP_PKEY_sign(ctx, &der, &length, digest, digest.count) == 1 else {
            throw CryptoError.openSSL(.internalError, "ECDSA sign")
        }
        return try ECDSASignature(derRepresentation: Array(der.prefix(length)))
    }
}

/// An ECDSA public key on `Curve`, from/to SubjectPublicKeyInfo DER/PEM and SEC1 points
/// (uncompressed `04‖x‖y` = "x963", compressed `02/03‖x`, which the Encryption SDK's 0x0578
/// suite stores base64-encoded in the encryption context).
public struct ECDSAPublicKey<Curve: ECDSACurve>: Sendable {
    let key: PKey

    init(checking key: PKey) throws {
        try ECKeyCheck.requireCurve(key, Curve.self)
        self.key = key
    }

    /// Reads SubjectPublicKeyInfo DER.
    public init(derRepresentation: [UInt8]) throws {
        try self.init(checking: try PKey.fromPublicKeyDER(derRepresentation))
    }

    /// Reads PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    public init(pemRepresentation: String) throws {
        try self.init(derRepresentation: PEM.decodeSingle(pemRepresentation, labels: ["PUBLIC KEY"]).der)
    }

    /// Reads an uncompressed SEC1 point `04‖x‖y`.
    public init(x963Representation: [UInt8]) throws {
        guard x963Representation.count == 1 + 2 * Curve.coordinateByteCount, x963Representation.first == 0x04 else {
            throw CryptoError(.invalidKey, "an uncompressed \(Curve.curveName) point is 04‖x‖y")
        }
        key = try ECKeyCheck.fromPoint(x963Representation, Curve.self)
    }

    /// Reads a compressed SEC1 point `02‖x` or `03‖x`.
    public init(compressedRepresentation: [UInt8]) throws {
        guard compressedRepresentation.count == 1 + Curve.coordinateByteCount,
            compressedRepresentation.first == 0x02 || compressedRepresentation.first == 0x03
        else {
            throw CryptoError(.invalidKey, "a compressed \(Curve.curveName) point is 02/03‖x")
        }
        key = try ECKeyCheck.fromPoint(compressedRepresentation, Curve.self)
    }

    /// SubjectPublicKeyInfo DER.
    public var derRepresentation: [UInt8] {
        get throws { try key.publicKeyDER() }
    }

    /// PEM `PUBLIC KEY` text.
    public var pemRepresentation: String {
        get throws { PEM.encode(label: "PUBLIC KEY", der: try key.publicKeyDER()) }
    }

    /// The uncompressed point `04‖x‖y`.
    public var x963Representation: [UInt8] {
        get throws {
            [0x04] + (try key.bigNumberParameter(OSSL_PKEY_PARAM_EC_PUB_X, width: Curve.coordinateByteCount))
                + (try key.bigNumberParameter(OSSL_PKEY_PARAM_EC_PUB_Y, width: Curve.coordinateByteCount))
        }
    }

    /// The compressed point `02‖x` (y even) or `03‖x` (y odd).
    public var compressedRepresentation: [UInt8] {
        get throws {
            let x = try key.bigNumberParameter(OSSL_PKEY_PARAM_EC_PUB_X, width: Curve.coordinateByteCount)
            let y = try key.bigNumberParameter(OSSL_PKEY_PARAM_EC_PUB_Y, width: Curve.coordinateByteCount)
            return [0x02 | (y.last! & 1)] + x
        }
    }

    /// Whether `signature` is valid for `message` hashed with the curve's hash. High-S
    /// signatures are accepted (AWS Nitro produces them).
    public func isValidSignature(_ signature: ECDSASignature<Curve>, for message: [UInt8]) -> Bool {
        isValidSignature(signature, forDigest: Curve.hash.hash(message))
    }

    /// Whether `signature` is valid for `message` hashed with `hash`.
    public func isValidSignature(_ signature: ECDSASignature<Curve>, for message: [UInt8], hash: HashFunction) -> Bool {
        isValidSignature(signature, forDigest: hash.hash(message))
    }

    /// Whether `signature` is valid for a precomputed digest.
    public func isValidSignature(_ signature: ECDSASignature<Curve>, forDigest digest: [UInt8]) -> Bool {
        OpenSSLErrorQueue.clear()
        defer { OpenSSLErrorQueue.clear() }
        guard let ctx = EVP_PKEY_CTX_new(key.pointer, nil) else { return false }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_verify_init(ctx) == 1 else { return false }
        let der = signature.derRepresentation
        return EVP_PKEY_verify(ctx, der, der.count, digest, digest.count) == 1
    }
}

/// An ECDSA signature (r, s) on `Curve`, convertible between DER (`Ecdsa-Sig-Value`, as X.509
/// and the Encryption SDK use) and raw fixed-width `r‖s` (as COSE/JWS use).
public struct ECDSASignature<Curve: ECDSACurve>: Sendable, Equatable {
    /// `r‖s`, each left-padded to the coordinate size.
    public let rawRepresentation: [UInt8]

    /// From raw `r‖s` (exactly twice the coordinate size).
    public init(rawRepresentation: [UInt8]) throws {
        guard rawRepresentation.count == 2 * Curve.coordinateByteCount else {
            throw CryptoError(
                .invalidSignature,
                "a raw \(Curve.curveName) signature is \(2 * Curve.coordinateByteCount) bytes, got \(rawRepresentation.count)")
        }
        self.rawRepresentation = rawRepresentation
    }

    /// From strict DER `SEQUENCE { r INTEGER, s INTEGER }` with no trailing bytes.
    public init(derRepresentation: [UInt8]) throws {
        OpenSSLErrorQueue.clear()
        let n = Curve.coordinateByteCount
        let parsed: OpaquePointer? = derRepresentation.withUnsafeBufferPointer { buffer in
            var p: UnsafePointer<UInt8>? = buffer.baseAddress
            guard let sig = d2i_ECDSA_SIG(nil, &p, buffer.count) else { return nil }
            if p != buffer.baseAddress! + buffer.count {
                ECDSA_SIG_free(sig)
                return nil
            }
            return sig
        }
        guard let sig = parsed else {
            throw CryptoError.openSSL(.invalidSignature, "not a DER ECDSA signature")
        }
        defer { ECDSA_SIG_free(sig) }
        var raw = [UInt8](repeating: 0, count: 2 * n)
        let rOK = raw.withUnsafeMutableBufferPointer { BN_bn2binpad(ECDSA_SIG_get0_r(sig), $0.baseAddress, Int32(n)) }
        let sOK = raw.withUnsafeMutableBufferPointer {
            BN_bn2binpad(ECDSA_SIG_get0_s(sig), $0.baseAddress! + n, Int32(n))
        }
        guard rOK == Int32(n), sOK == Int32(n) else {
            throw CryptoError(.invalidSignature, "ECDSA signature values too large for \(Curve.curveName)")
        }
        self.rawRepresentation = raw
        // Only canonical DER: re-encoding must give back the input.
        guard self.derRepresentation == derRepresentation else {
            throw CryptoError(.invalidSignature, "ECDSA signature is not canonical DER")
        }
    }

    /// Canonical DER `SEQUENCE { r INTEGER, s INTEGER }`.
    public var derRepresentation: [UInt8] {
        let n = Curve.coordinateByteCount
        func integer(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
            var value = Array(bytes.drop { $0 == 0 })
            if value.isEmpty { value = [0] }
            if value[0] & 0x80 != 0 { value.insert(0, at: 0) }
            return [0x02] + DERLength.encode(value.count) + value
        }
        let body = integer(rawRepresentation[0..<n]) + integer(rawRepresentation[n..<(2 * n)])
        return [0x30] + DERLength.encode(body.count) + body
    }
}

/// DER definite length octets.
enum DERLength {
    static func encode(_ length: Int) -> [UInt8] {
        precondition(length >= 0)
        if length < 0x80 { return [UInt8(length)] }
        var bytes: [UInt8] = []
        var value = length
        while value > 0 {
            bytes.insert(UInt8(value & 0xff), at: 0)
            value >>= 8
        }
        return [0x80 | UInt8(bytes.count)] + bytes
    }
}

enum ECKeyCheck {
    static func requireCurve<Curve: ECDSACurve>(_ key: PKey, _: Curve.Type) throws {
        guard key.baseID == EVP_PKEY_EC else {
            throw CryptoError(.wrongKeyType, "expected a \(Curve.curveName) EC key, got another key type")
        }
        guard let group = key.groupName, group == Curve.groupName else {
            throw CryptoError(.wrongKeyType, "expected a \(Curve.curveName) key, got curve \(key.groupName ?? "unknown")")
        }
    }

    /// Imports a SEC1-encoded point (compressed or not), checking it lies on the curve.
    static func fromPoint<Curve: ECDSACurve>(_ point: [UInt8], _: Curve.Type) throws -> PKey {
        OpenSSLErrorQueue.clear()
        guard let ctx = EVP_PKEY_CTX_new_from_name(nil, "EC", nil) else {
            throw CryptoError.openSSL(.internalError, "EVP_PKEY_CTX_new_from_name")
        }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_fromdata_init(ctx) == 1 else { throw CryptoError.openSSL(.internalError, "fromdata init") }
        let params = ParameterList()
        params.addString(OSSL_PKEY_PARAM_GROUP_NAME, Curve.groupName)
        point.withUnsafeBytes { params.addOctets(OSSL_PKEY_PARAM_PUB_KEY, $0) }
        var pkey: OpaquePointer? = nil
        let ok = params.withParameters { p in
            EVP_PKEY_fromdata(ctx, &pkey, shim_EVP_PKEY_PUBLIC_KEY(), UnsafeMutablePointer(mutating: p))
        }
        guard ok == 1, let pkey else { throw CryptoError.openSSL(.invalidKey, "not a point on \(Curve.curveName)") }
        let key = PKey(taking: pkey)
        guard let check = EVP_PKEY_CTX_new(pkey, nil) else { throw CryptoError.openSSL(.internalError, "check ctx") }
        defer { EVP_PKEY_CTX_free(check) }
        guard EVP_PKEY_public_check(check) == 1 else {
            throw CryptoError.openSSL(.invalidKey, "not a valid point on \(Curve.curveName)")
        }
        return key
    }
}
