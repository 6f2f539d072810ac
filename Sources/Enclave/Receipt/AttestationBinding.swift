import Crypto

/// The attestation `user_data` an enclave commits to for one job (DESIGN §4):
///
///     SHA-384( lp("cleanroom-enclave-binding-v1") ‖ lp(policy digest, 32 bytes)
///              ‖ lp(job id, UTF-8) ‖ lp(receipt public key, SPKI DER) )
///
/// where `lp(x)` is `x` prefixed with its length as a 32-bit big-endian integer, so no two
/// different triples hash the same input. A verifier that recomputes this from a receipt and
/// finds it in a verified attestation document knows the receipt key lived in that enclave and
/// was made for that job and policy.
public enum AttestationBinding {
    /// The domain-separation label.
    public static let label = "cleanroom-enclave-binding-v1"

    /// The 48-byte `user_data` value.
    public static func userData(policyDigest: [UInt8], jobID: String, receiptPublicKey: [UInt8]) -> [UInt8] {
        var hash = SHA384()
        for field in [Array(label.utf8), policyDigest, Array(jobID.utf8), receiptPublicKey] {
            let n = UInt32(field.count)
            hash.update([UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)])
            hash.update(field)
        }
        return hash.finalize()
    }
}
