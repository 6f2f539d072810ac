/// A failure inside the enclave program. Messages name the dataset, column and rule that failed
/// and never contain a data value or key material; the code travels to the server in an
/// `error` channel message.
public struct EnclaveError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let protocolViolation = Code(rawValue: "enclave.protocol")
        public static let policyInvalid = Code(rawValue: "enclave.policy_invalid")
        public static let policyDigestMismatch = Code(rawValue: "enclave.policy_digest_mismatch")
        public static let policyExpired = Code(rawValue: "enclave.policy_expired")
        public static let measurementNotAllowed = Code(rawValue: "enclave.measurement_not_allowed")
        public static let approvalInvalid = Code(rawValue: "enclave.approval_invalid")
        public static let approvalMissing = Code(rawValue: "enclave.approval_missing")
        public static let bindingMismatch = Code(rawValue: "enclave.binding_mismatch")
        public static let manifestMismatch = Code(rawValue: "enclave.manifest_mismatch")
        public static let keyRelease = Code(rawValue: "enclave.key_release")
        public static let decryption = Code(rawValue: "enclave.decryption")
        public static let ciphertextMismatch = Code(rawValue: "enclave.ciphertext_mismatch")
        public static let schemaViolation = Code(rawValue: "enclave.schema_violation")
        public static let tooFewRows = Code(rawValue: "enclave.too_few_rows")
        public static let training = Code(rawValue: "enclave.training")
        public static let output = Code(rawValue: "enclave.output")
        public static let attestation = Code(rawValue: "enclave.attestation")
        public static let checkpointInvalid = Code(rawValue: "enclave.checkpoint_invalid")
        public static let cancelled = Code(rawValue: "enclave.cancelled")
        public static let `internal` = Code(rawValue: "enclave.internal")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// The error as a channel message.
    public var failure: ChannelFailure { ChannelFailure(code: code.rawValue, message: message) }
}
