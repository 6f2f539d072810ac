import Crypto

/// The COSE_Sign1 must name ES384 and its signature must verify with the P-384 key of the
/// document's leaf certificate (AWS §3.2.2). High-S signatures are accepted: the NSM makes them.
public struct SignaturePolicy: AttestationPolicy {
    public init() {}

    public func evaluate(_ document: AttestationDocument, context: AttestationPolicyContext) -> AttestationPolicyResult
    {
        do throws(AttestationError) {
            guard document.cose.algorithm == .es384 else {
                throw AttestationError(
                    .unsupportedAlgorithm,
                    "Nitro documents are signed with ES384, found \(document.cose.algorithm)"
                )
            }
            let leaf: Certificate
            if let parsed = context.leafCertificate {
                leaf = parsed
            } else {
                leaf = try ParsedCertificates.parse(document).leaf
            }
            guard case .p384(let key) = leaf.publicKey else {
                throw AttestationError(.unsupportedLeafKey, "the leaf certificate's key is not an EC P-384 key")
            }
            try document.cose.verify(with: .p384(key))
            return .meetsPolicy
        } catch {
            return .failsToMeetPolicy(error)
        }
    }
}
