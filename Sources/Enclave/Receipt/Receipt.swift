import Foundation

/// What an enclave attests it delivered for one job (DESIGN §4): the job, the exact policy and
/// approval bundle it ran under, and the SHA-256 of every encrypted output, per recipient.
///
/// A receipt is signed as opaque bytes (`SignedReceipt.payload`); this is its decoded content.
public struct Receipt: Codable, Sendable, Equatable {
    /// The format identifier; also the signature's domain-separation prefix.
    public static let formatIdentifier = "cleanroom-receipt-v1"

    /// One encrypted output.
    public struct Output: Codable, Sendable, Equatable {
        /// The artifact: `model`, `metrics` or `scores:own`.
        public var name: String
        /// The recipient party id.
        public var recipient: String
        /// SHA-256 of the output ciphertext (an Encryption SDK message), lowercase hex.
        public var ciphertextSHA256: String
        /// Length of the ciphertext.
        public var byteCount: Int64

        public init(name: String, recipient: String, ciphertextSHA256: String, byteCount: Int64) {
            self.name = name
            self.recipient = recipient
            self.ciphertextSHA256 = ciphertextSHA256
            self.byteCount = byteCount
        }
    }

    public var format: String
    public var jobID: String
    /// SHA-256 of the policy's canonical form, lowercase hex.
    public var policyDigest: String
    /// SHA-256 of the approval bundle's bytes, lowercase hex.
    public var approvalBundleDigest: String
    /// True when the attestation came from the development attestor (local mode), not a Nitro Enclave.
    public var development: Bool
    /// The enclave's clock when it signed, seconds since 1970 (informational: enclave clocks are not trusted).
    public var issuedAt: Int64
    public var outputs: [Output]

    public init(
        jobID: String, policyDigest: String, approvalBundleDigest: String, development: Bool, issuedAt: Int64,
        outputs: [Output]
    ) {
        self.format = Self.formatIdentifier
        self.jobID = jobID
        self.policyDigest = policyDigest
        self.approvalBundleDigest = approvalBundleDigest
        self.development = development
        self.issuedAt = issuedAt
        self.outputs = outputs
    }

    /// The bytes that get signed (sorted-key JSON).
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }
}
