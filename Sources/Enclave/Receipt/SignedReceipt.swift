import Crypto
import Foundation

/// A receipt as partners download it: the signed payload, the signature, the receipt public key
/// and the attestation document that binds that key to the job — everything `verify` needs offline.
///
/// The signature is ECDSA P-256 / SHA-256 over `"cleanroom-receipt-v1\n" ‖ payload`, made by the
/// enclave's per-job receipt key, whose SPKI is bound into the attestation `user_data` by
/// `AttestationBinding`.
public struct SignedReceipt: Codable, Sendable, Equatable {
    /// Largest accepted serialized receipt.
    public static let maxBytes = 4 * 1024 * 1024

    /// The receipt JSON exactly as signed, base64.
    public var payload: String
    /// DER ECDSA signature, base64.
    public var signature: String
    /// The receipt public key, SubjectPublicKeyInfo DER, base64.
    public var receiptPublicKey: String
    /// The enclave's attestation document (COSE_Sign1), base64.
    public var attestationDocument: String

    public init(payload: String, signature: String, receiptPublicKey: String, attestationDocument: String) {
        self.payload = payload
        self.signature = signature
        self.receiptPublicKey = receiptPublicKey
        self.attestationDocument = attestationDocument
    }

    /// The message the signature covers.
    public static func signedMessage(payload: [UInt8]) -> [UInt8] {
        Array((Receipt.formatIdentifier + "\n").utf8) + payload
    }

    /// Signs `receipt` with the enclave's receipt key.
    public static func sign(
        _ receipt: Receipt, with key: P256.Signing.PrivateKey, attestationDocument: [UInt8]
    ) throws -> SignedReceipt {
        let payload = try receipt.encoded()
        let signature = try key.signature(for: signedMessage(payload: payload))
        return SignedReceipt(
            payload: Data(payload).base64EncodedString(),
            signature: Data(signature.derRepresentation).base64EncodedString(),
            receiptPublicKey: Data(try key.publicKey.derRepresentation).base64EncodedString(),
            attestationDocument: Data(attestationDocument).base64EncodedString())
    }

    /// The serialized form (pretty, sorted JSON).
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }

    /// Parses a serialized receipt (size-limited; every field must be base64).
    public init(bytes: [UInt8]) throws(ReceiptError) {
        guard bytes.count <= Self.maxBytes else {
            throw ReceiptError(.malformed, "the receipt is \(bytes.count) bytes; the limit is \(Self.maxBytes)")
        }
        do {
            self = try JSONDecoder().decode(SignedReceipt.self, from: Data(bytes))
        } catch {
            throw ReceiptError(.malformed, "the receipt is not a signed-receipt JSON object")
        }
    }
}

/// Why a receipt did not verify. `code` is stable; `message` says which check failed.
public struct ReceiptError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        public static let malformed = Code(rawValue: "receipt.malformed")
        public static let badSignature = Code(rawValue: "receipt.bad_signature")
        public static let policyMismatch = Code(rawValue: "receipt.policy_mismatch")
        public static let jobMismatch = Code(rawValue: "receipt.job_mismatch")
        public static let bindingMismatch = Code(rawValue: "receipt.binding_mismatch")
        public static let attestationFailed = Code(rawValue: "receipt.attestation_failed")
        public static let approvalBundleMismatch = Code(rawValue: "receipt.approval_bundle_mismatch")
        public static let outputMismatch = Code(rawValue: "receipt.output_mismatch")
        public static let outputMissing = Code(rawValue: "receipt.output_missing")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
