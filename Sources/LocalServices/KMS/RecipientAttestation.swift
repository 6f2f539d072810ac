import Attestation
import Crypto

/// What the local KMS learns from a verified `Recipient` attestation document: the PCRs its
/// key policies test and the RSA key the answer is encrypted to.
public struct VerifiedRecipient: Sendable {
    public let pcrs: [Int: [UInt8]]
    public let publicKey: RSA.PublicKey
    public init(pcrs: [Int: [UInt8]], publicKey: RSA.PublicKey) {
        self.pcrs = pcrs
        self.publicKey = publicKey
    }
}

/// Verifies the attestation document of a KMS `Recipient`. Throws when it does not verify.
public protocol RecipientAttestationVerifier: Sendable {
    func verifyRecipient(_ document: [UInt8]) throws -> VerifiedRecipient
}

extension AttestationVerifier: RecipientAttestationVerifier {
    /// As AWS KMS: authenticity, chain and freshness are checked here; which measurements may
    /// receive a key is the key policy's business (`kms:RecipientAttestation:*` conditions), so
    /// debug-mode documents pass this step and fail PCR conditions instead.
    public func verifyRecipient(_ document: [UInt8]) throws -> VerifiedRecipient {
        let verified = try verify(document, expectations: AttestationExpectations(allowDebug: true, requirePublicKey: true))
        guard let key = verified.publicKey else { throw KMSRecipientError("the attestation document has no public key") }
        return VerifiedRecipient(pcrs: verified.pcrs, publicKey: try RSA.PublicKey(derRepresentation: key))
    }
}

struct KMSRecipientError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
