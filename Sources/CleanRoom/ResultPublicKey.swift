import Crypto

/// A party's result-encryption public key: RSA of at least 3072 bits, SubjectPublicKeyInfo PEM.
/// Outputs are encrypted to it (RSA-OAEP-SHA256 raw keyring), so the server only checks its shape.
public struct ResultPublicKey: Sendable {
    /// Canonical PEM text.
    public let pem: String
    /// The modulus size in bits.
    public let bits: Int

    /// The smallest modulus accepted.
    public static let minimumBits = 3072

    public init(pem text: String) throws {
        let bad = DomainError.invalid(
            "invalid_result_key", "the result key must be an RSA public key of at least 3072 bits in SPKI PEM")
        guard let key = try? RSA.PublicKey(pemRepresentation: text), let der = try? key.derRepresentation else {
            throw bad
        }
        guard key.bits >= Self.minimumBits else {
            throw DomainError.invalid(
                "result_key_too_small", "the result key has \(key.bits) bits; at least \(Self.minimumBits) are required")
        }
        bits = key.bits
        pem = PEM.encode(label: "PUBLIC KEY", der: der)
    }
}
