/// The AWS document rules (aws-nitro-enclaves-nsm-api `docs/attestation_process.md` §3.2) beyond
/// CBOR types: non-empty module id, digest "SHA384", non-zero timestamp, 1 to 32 PCRs with indices
/// 0...31 and 48-byte values, certificate and cabundle entries of 1 to 1024 bytes, a non-empty
/// cabundle, and `public_key`, `user_data`, `nonce` at most 1024 bytes (`public_key` non-empty if present).
public struct StructurePolicy: AttestationPolicy {
    /// Largest accepted `public_key`, `user_data` and `nonce`.
    public static let maxOptionalFieldBytes = 1024
    /// Largest accepted certificate (leaf or cabundle entry).
    public static let maxCertificateBytes = 1024
    /// SHA-384 digest length, the only PCR length accepted.
    public static let pcrLength = 48

    public init() {}

    public func evaluate(_ document: AttestationDocument, context: AttestationPolicyContext) -> AttestationPolicyResult
    {
        if let error = Self.check(document) { return .failsToMeetPolicy(error) }
        return .meetsPolicy
    }

    static func check(_ d: AttestationDocument) -> AttestationError? {
        if d.moduleID.isEmpty { return AttestationError(.invalidModuleID, "module_id is empty") }
        if d.digest != "SHA384" {
            return AttestationError(.unsupportedDigest, "digest is \"\(d.digest.prefix(16))\", expected \"SHA384\"")
        }
        if d.timestamp == 0 { return AttestationError(.invalidTimestamp, "timestamp is zero") }
        if d.pcrs.isEmpty || d.pcrs.count > 32 {
            return AttestationError(.invalidPCRCount, "pcrs has \(d.pcrs.count) entries, expected 1...32")
        }
        for (index, value) in d.pcrs.sorted(by: { $0.key < $1.key }) where value.count != pcrLength {
            return AttestationError(.invalidPCRLength, "PCR\(index) is \(value.count) bytes, expected \(pcrLength)")
        }
        if d.certificate.isEmpty || d.certificate.count > maxCertificateBytes {
            return AttestationError(
                .invalidCertificateSize,
                "certificate is \(d.certificate.count) bytes, expected 1...\(maxCertificateBytes)"
            )
        }
        if d.cabundle.isEmpty { return AttestationError(.invalidCABundle, "cabundle is empty") }
        for (i, entry) in d.cabundle.enumerated() where entry.isEmpty || entry.count > maxCertificateBytes {
            return AttestationError(
                .invalidCABundle,
                "cabundle[\(i)] is \(entry.count) bytes, expected 1...\(maxCertificateBytes)"
            )
        }
        if let key = d.publicKey, key.isEmpty || key.count > maxOptionalFieldBytes {
            return AttestationError(
                .invalidPublicKeySize,
                "public_key is \(key.count) bytes, expected 1...\(maxOptionalFieldBytes)"
            )
        }
        if let data = d.userData, data.count > maxOptionalFieldBytes {
            return AttestationError(
                .invalidUserDataSize,
                "user_data is \(data.count) bytes, at most \(maxOptionalFieldBytes) allowed"
            )
        }
        if let nonce = d.nonce, nonce.count > maxOptionalFieldBytes {
            return AttestationError(
                .invalidNonceSize,
                "nonce is \(nonce.count) bytes, at most \(maxOptionalFieldBytes) allowed"
            )
        }
        return nil
    }
}
