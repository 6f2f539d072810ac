import Crypto
import Foundation

/// What an attestation check established about a document (filled in by the caller's verifier:
/// COSE signature, chain to the trusted root, PCRs in the policy's allowed set).
public struct AttestedFacts: Sendable, Equatable {
    /// The document's `user_data`.
    public var userData: [UInt8]
    /// PCR0 (the image measurement), for display.
    public var pcr0: [UInt8]
    /// Whether the document chains to the development root rather than AWS's.
    public var development: Bool

    public init(userData: [UInt8], pcr0: [UInt8], development: Bool) {
        self.userData = userData
        self.pcr0 = pcr0
        self.development = development
    }
}

/// A receipt whose every requested check passed. Only `ReceiptVerifier` makes one.
public struct VerifiedReceipt: Sendable {
    public let receipt: Receipt
    public let attestation: AttestedFacts
    /// Outputs whose ciphertext hash was checked against the receipt.
    public let checkedOutputs: [Receipt.Output]
}

/// Verifies a `SignedReceipt` offline. Each check is a step that either passes or throws a
/// `ReceiptError` naming what failed:
///
/// 1. the signature over the payload with the receipt public key;
/// 2. the payload's format, policy digest and (if given) job id;
/// 3. the attestation document, through `attest` (chain, PCRs, debug rules — the caller's policy);
/// 4. the attestation `user_data` equals `AttestationBinding` of (policy digest, job id, receipt key);
/// 5. the development flag in the receipt agrees with the attestation's root;
/// 6. (if given) the approval bundle's SHA-256 equals the receipt's;
/// 7. (if given) each output's ciphertext SHA-256 equals the receipt's entry for its name and recipient.
public struct ReceiptVerifier {
    /// Checks an attestation document and returns what it attests; throws if it does not verify.
    public typealias AttestationCheck = ([UInt8]) throws -> AttestedFacts

    public var expectedPolicyDigest: String
    public var expectedJobID: String?
    public var attest: AttestationCheck

    public init(expectedPolicyDigest: String, expectedJobID: String? = nil, attest: @escaping AttestationCheck) {
        self.expectedPolicyDigest = expectedPolicyDigest.lowercased()
        self.expectedJobID = expectedJobID
        self.attest = attest
    }

    /// An output file to check: its name, recipient and ciphertext bytes' SHA-256.
    public struct OutputFile: Sendable {
        public var name: String
        public var recipient: String
        public var sha256: [UInt8]

        public init(name: String, recipient: String, sha256: [UInt8]) {
            self.name = name
            self.recipient = recipient
            self.sha256 = sha256
        }
    }

    public func verify(
        _ signed: SignedReceipt, approvalBundle: [UInt8]? = nil, outputs: [OutputFile] = []
    ) throws(ReceiptError) -> VerifiedReceipt {
        guard let payload = Data(base64Encoded: signed.payload).map(Array.init),
            let signatureDER = Data(base64Encoded: signed.signature).map(Array.init),
            let keyDER = Data(base64Encoded: signed.receiptPublicKey).map(Array.init),
            let document = Data(base64Encoded: signed.attestationDocument).map(Array.init)
        else { throw ReceiptError(.malformed, "a receipt field is not valid base64") }

        // 1. Signature.
        let key: P256.Signing.PublicKey
        let signature: P256.Signing.ECDSASignature
        do {
            key = try P256.Signing.PublicKey(derRepresentation: keyDER)
            signature = try P256.Signing.ECDSASignature(derRepresentation: signatureDER)
        } catch {
            throw ReceiptError(.malformed, "the receipt public key or signature is not a valid P-256 encoding")
        }
        guard key.isValidSignature(signature, for: SignedReceipt.signedMessage(payload: payload)) else {
            throw ReceiptError(.badSignature, "the receipt signature does not verify with the receipt public key")
        }

        // 2. Payload.
        let receipt: Receipt
        do {
            receipt = try JSONDecoder().decode(Receipt.self, from: Data(payload))
        } catch {
            throw ReceiptError(.malformed, "the signed payload is not a receipt")
        }
        guard receipt.format == Receipt.formatIdentifier else {
            throw ReceiptError(.malformed, "unknown receipt format \(receipt.format)")
        }
        guard receipt.policyDigest == expectedPolicyDigest else {
            throw ReceiptError(
                .policyMismatch, "the receipt is for policy \(receipt.policyDigest), not \(expectedPolicyDigest)")
        }
        if let expectedJobID, receipt.jobID != expectedJobID {
            throw ReceiptError(.jobMismatch, "the receipt is for job \(receipt.jobID), not \(expectedJobID)")
        }
        guard let policyDigest = Crypto.Hex.decode(receipt.policyDigest), policyDigest.count == 32 else {
            throw ReceiptError(.malformed, "the receipt's policy digest is not 32 bytes of hex")
        }

        // 3. Attestation.
        let facts: AttestedFacts
        do {
            facts = try attest(document)
        } catch let error as ReceiptError {
            throw error
        } catch {
            throw ReceiptError(.attestationFailed, "the attestation document does not verify: \(error)")
        }

        // 4. Binding.
        let expected = AttestationBinding.userData(
            policyDigest: policyDigest, jobID: receipt.jobID, receiptPublicKey: keyDER)
        guard ConstantTime.equals(facts.userData, expected) else {
            throw ReceiptError(
                .bindingMismatch,
                "the attestation user_data does not bind this receipt key to job \(receipt.jobID) and this policy")
        }

        // 5. Development flag.
        guard facts.development == receipt.development else {
            throw ReceiptError(
                .attestationFailed,
                facts.development
                    ? "the attestation is from the development root but the receipt does not say so"
                    : "the receipt claims development mode but the attestation is from a production root")
        }

        // 6. Approval bundle.
        if let approvalBundle {
            let digest = Crypto.Hex.encode(SHA256.hash(approvalBundle))
            guard digest == receipt.approvalBundleDigest else {
                throw ReceiptError(
                    .approvalBundleMismatch, "the approval bundle's SHA-256 is \(digest), the receipt says \(receipt.approvalBundleDigest)")
            }
        }

        // 7. Outputs.
        var checked: [Receipt.Output] = []
        for file in outputs {
            guard let entry = receipt.outputs.first(where: { $0.name == file.name && $0.recipient == file.recipient })
            else {
                throw ReceiptError(.outputMissing, "the receipt lists no output \(file.name) for \(file.recipient)")
            }
            guard entry.ciphertextSHA256 == Crypto.Hex.encode(file.sha256) else {
                throw ReceiptError(
                    .outputMismatch, "output \(file.name) for \(file.recipient) does not match the receipt's SHA-256")
            }
            checked.append(entry)
        }
        return VerifiedReceipt(receipt: receipt, attestation: facts, checkedOutputs: checked)
    }
}

