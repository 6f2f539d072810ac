import Crypto

/// The few cryptographic operations the domain needs, over the `Crypto` module (OpenSSL).
enum CryptoSupport {
    static func sha256Hex(_ bytes: [UInt8]) -> String { Hex.encode(SHA256.hash(bytes)) }

    static func sha256Hex(_ text: String) -> String { sha256Hex(Array(text.utf8)) }

    /// `count` random bytes from OpenSSL's CSPRNG.
    static func random(_ count: Int) throws -> [UInt8] {
        do {
            return try SecureRandom.bytes(count: count)
        } catch {
            throw DomainError(.internalError, "random_failure", "the random generator failed")
        }
    }

    /// A random identifier: `prefix` + 20 lowercase hex characters (80 bits).
    static func identifier(_ prefix: String) throws -> String {
        prefix + Hex.encode(try random(10))
    }

    /// URL-safe base64 without padding (RFC 4648 §5), for secrets shown to people once.
    static func base64URL(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = []
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)]]
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(n >> 18 & 63)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)]]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A fresh 256-bit secret with a readable prefix, e.g. `crs_…` for credentials.
    static func secret(prefix: String) throws -> String {
        var bytes = try random(32)
        defer { for i in bytes.indices { bytes[i] = 0 } }
        return prefix + base64URL(bytes)
    }
}

/// An approval-signing public key (ECDSA P-256) as a party registered it.
public struct SigningPublicKey: Sendable {
    let key: P256.Signing.PublicKey
    /// SubjectPublicKeyInfo DER.
    public let der: [UInt8]
    /// SHA-256 of the DER SPKI, lowercase hex: the `cleanroom:owner-key` encryption-context value.
    public var fingerprint: String { CryptoSupport.sha256Hex(der) }
    /// Canonical PEM text.
    public let pem: String

    /// Parses a SubjectPublicKeyInfo PEM that must hold a P-256 key.
    public init(pem text: String) throws {
        do {
            key = try P256.Signing.PublicKey(pemRepresentation: text)
            der = try key.derRepresentation
            pem = try key.pemRepresentation
        } catch {
            throw DomainError.invalid("invalid_signing_key", "the signing key must be an ECDSA P-256 public key in SPKI PEM")
        }
    }

    /// Whether `derSignature` (ECDSA, DER) is valid over `message` with SHA-256.
    public func isValidSignature(_ derSignature: [UInt8], for message: [UInt8]) -> Bool {
        guard let signature = try? P256.Signing.ECDSASignature(derRepresentation: derSignature) else { return false }
        return key.isValidSignature(signature, for: message)
    }
}
