import Crypto

/// The footer verification key of a signed suite, read from `aws-crypto-public-key`.
enum FooterVerifier {
    case p256(P256.Signing.PublicKey)
    case p384(P384.Signing.PublicKey)

    /// Reads the base64 compressed point of the context; precise errors for a missing or bad key.
    init(suite: AlgorithmSuite, context: EncryptionContext) throws {
        guard let text = context[EncryptionContext.publicKeyKey] else {
            throw EnvelopeError(
                .missingVerificationKey,
                "suite \(suite) is signed but the encryption context has no \(EncryptionContext.publicKeyKey)")
        }
        guard let point = base64Decode(text) else {
            throw EnvelopeError(.invalidVerificationKey, "\(EncryptionContext.publicKeyKey) is not base64")
        }
        do {
            switch suite.signature {
            case .ecdsaP256SHA256: self = .p256(try P256.Signing.PublicKey(compressedRepresentation: point))
            case .ecdsaP384SHA384: self = .p384(try P384.Signing.PublicKey(compressedRepresentation: point))
            case .none: throw EnvelopeError(.invalidArgument, "suite \(suite) is not signed")
            }
        } catch let error as EnvelopeError {
            throw error
        } catch {
            throw EnvelopeError(.invalidVerificationKey, "\(EncryptionContext.publicKeyKey) is not a valid point: \(error)")
        }
    }

    var hash: HashFunction {
        switch self {
        case .p256: .sha256
        case .p384: .sha384
        }
    }

    /// Whether `der` is a valid signature over `digest`.
    func isValid(der: [UInt8], digest: [UInt8]) -> Bool {
        switch self {
        case .p256(let key):
            guard let signature = try? P256.Signing.ECDSASignature(derRepresentation: der) else { return false }
            return key.isValidSignature(signature, forDigest: digest)
        case .p384(let key):
            guard let signature = try? P384.Signing.ECDSASignature(derRepresentation: der) else { return false }
            return key.isValidSignature(signature, forDigest: digest)
        }
    }
}

/// A fresh P-384 signing key for one 0x0578 message; its public half goes in the encryption context.
struct FooterSigner {
    let key: P384.Signing.PrivateKey

    init() throws {
        do {
            key = try P384.Signing.PrivateKey()
        } catch {
            throw EnvelopeError(.cryptoFailure, "could not generate the message signing key: \(error)")
        }
    }

    /// base64 of the compressed public point, for `aws-crypto-public-key`.
    func publicKeyBase64() throws -> String {
        do {
            return base64Encode(try key.publicKey.compressedRepresentation)
        } catch {
            throw EnvelopeError(.cryptoFailure, "could not encode the message verification key: \(error)")
        }
    }

    /// The footer: signature length (2) ‖ DER signature over `digest` (SHA-384 of header and body).
    func footer(digest: [UInt8]) throws -> [UInt8] {
        let der: [UInt8]
        do {
            der = try key.signature(forDigest: digest).derRepresentation
        } catch {
            throw EnvelopeError(.cryptoFailure, "could not sign the message: \(error)")
        }
        var out: [UInt8] = []
        out.appendUInt16(UInt16(der.count))
        return out + der
    }
}
