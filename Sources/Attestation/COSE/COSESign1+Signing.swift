import Crypto

/// A public key that can check a COSE signature: P-256 for ES256, P-384 for ES384.
public enum COSEVerificationKey: Sendable {
    case p256(P256.Signing.PublicKey)
    case p384(P384.Signing.PublicKey)

    /// The key of a certificate, if it is an ECDSA key on P-256 or P-384.
    public init?(certificate: Certificate) {
        switch certificate.publicKey {
        case .p256(let key): self = .p256(key)
        case .p384(let key): self = .p384(key)
        default: return nil
        }
    }
}

/// A private key that can make a COSE signature.
public enum COSESigningKey: Sendable {
    case p256(P256.Signing.PrivateKey)
    case p384(P384.Signing.PrivateKey)

    /// ES256 for P-256, ES384 for P-384.
    public var algorithm: COSEAlgorithm {
        switch self {
        case .p256: return .es256
        case .p384: return .es384
        }
    }
}

extension COSESign1 {
    /// Signs `payload` (attached) with `key`; the protected header is `{1: alg}` exactly as AWS writes it,
    /// the unprotected header empty. The signature is raw r ‖ s (RFC 9053 §2.1).
    public static func sign(
        payload: [UInt8],
        with key: COSESigningKey,
        tagged: Bool = false,
        externalAAD: [UInt8] = []
    ) throws -> COSESign1 {
        let algorithm = key.algorithm
        let protected = algorithm.protectedHeaderBytes
        let toBeSigned = signatureStructure(protectedHeaderBytes: protected, externalAAD: externalAAD, payload: payload)
        let signature: [UInt8]
        switch key {
        case .p256(let k): signature = try k.signature(for: toBeSigned).rawRepresentation
        case .p384(let k): signature = try k.signature(for: toBeSigned).rawRepresentation
        }
        return COSESign1(
            protectedHeaderBytes: protected,
            algorithm: algorithm,
            unprotectedHeader: [],
            payload: payload,
            signature: signature,
            tagged: tagged
        )
    }

    /// Checks the signature over the Sig_structure with `key`. The key's curve must match the
    /// algorithm named in the protected header (ES256 ↔ P-256, ES384 ↔ P-384); high-S signatures
    /// are accepted, as the Nitro Security Module produces them.
    public func verify(with key: COSEVerificationKey, externalAAD: [UInt8] = []) throws(AttestationError) {
        guard payload != nil else { throw AttestationError(.detachedPayload, "the COSE_Sign1 payload is detached") }
        guard signature.count == algorithm.signatureLength else {
            throw AttestationError(
                .malformedSignature,
                "a \(algorithm) signature is \(algorithm.signatureLength) bytes, found \(signature.count)"
            )
        }
        let message = signatureStructure(externalAAD: externalAAD)
        let valid: Bool
        switch (algorithm, key) {
        case (.es256, .p256(let k)):
            guard let sig = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else {
                throw AttestationError(.malformedSignature, "the signature is not a raw P-256 signature")
            }
            valid = k.isValidSignature(sig, for: message)
        case (.es384, .p384(let k)):
            guard let sig = try? P384.Signing.ECDSASignature(rawRepresentation: signature) else {
                throw AttestationError(.malformedSignature, "the signature is not a raw P-384 signature")
            }
            valid = k.isValidSignature(sig, for: message)
        default:
            throw AttestationError(.unsupportedAlgorithm, "the key's curve does not match \(algorithm)")
        }
        guard valid else { throw AttestationError(.signatureInvalid, "the \(algorithm) signature does not verify") }
    }
}

extension COSEAlgorithm: CustomStringConvertible {
    public var description: String { self == .es256 ? "ES256" : "ES384" }
}
