import Crypto
import Foundation
import Testing
@testable import Enclave

@Suite struct ReceiptTests {
    let key = try! P256.Signing.PrivateKey()
    let policyDigest = SHA256.hash(Array("policy".utf8))
    let bundle = Array(#"{"format":"cleanroom-approval-bundle-v1"}"#.utf8)
    let model = Array("model ciphertext".utf8), metrics = Array("metrics ciphertext".utf8)
    let document = Array("attestation document".utf8)

    func receipt(jobID: String = "job-1", development: Bool = true) -> Receipt {
        Receipt(
            jobID: jobID, policyDigest: Hex.encode(policyDigest), approvalBundleDigest: Hex.encode(SHA256.hash(bundle)),
            development: development, issuedAt: 1_790_000_000,
            outputs: [
                .init(name: "model", recipient: "alpha", ciphertextSHA256: Hex.encode(SHA256.hash(model)), byteCount: 16),
                .init(name: "metrics", recipient: "beta", ciphertextSHA256: Hex.encode(SHA256.hash(metrics)), byteCount: 18),
            ])
    }

    /// An attestation check that accepts `document` and reports `userData` bound to `jobID`.
    func attest(jobID: String = "job-1", development: Bool = true) throws -> ReceiptVerifier.AttestationCheck {
        let userData = AttestationBinding.userData(
            policyDigest: policyDigest, jobID: jobID, receiptPublicKey: try key.publicKey.derRepresentation)
        let expected = document
        return { doc in
            guard doc == expected else { throw ReceiptError(.attestationFailed, "unknown document") }
            return AttestedFacts(userData: userData, pcr0: Array(repeating: 1, count: 48), development: development)
        }
    }

    func verifier(jobID: String? = "job-1", attest: @escaping ReceiptVerifier.AttestationCheck) -> ReceiptVerifier {
        ReceiptVerifier(expectedPolicyDigest: Hex.encode(policyDigest), expectedJobID: jobID, attest: attest)
    }

    func expectCode(_ code: ReceiptError.Code, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("expected \(code)")
        } catch let error as ReceiptError {
            #expect(error.code == code, "\(error)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func signedReceiptVerifiesWithOutputsAndBundle() throws {
        let signed = try SignedReceipt.sign(receipt(), with: key, attestationDocument: document)
        let parsed = try SignedReceipt(bytes: try signed.encoded())
        let verified = try verifier(attest: try attest()).verify(
            parsed, approvalBundle: bundle,
            outputs: [.init(name: "model", recipient: "alpha", sha256: SHA256.hash(model))])
        #expect(verified.receipt == receipt())
        #expect(verified.checkedOutputs.map(\.name) == ["model"])
        #expect(verified.attestation.development)
    }

    @Test func bindingIsLengthPrefixedAndSensitiveToEveryField() throws {
        let spki = try key.publicKey.derRepresentation
        let base = AttestationBinding.userData(policyDigest: policyDigest, jobID: "job-1", receiptPublicKey: spki)
        #expect(base.count == 48)
        #expect(AttestationBinding.userData(policyDigest: policyDigest, jobID: "job-2", receiptPublicKey: spki) != base)
        #expect(AttestationBinding.userData(policyDigest: SHA256.hash([1]), jobID: "job-1", receiptPublicKey: spki) != base)
        #expect(AttestationBinding.userData(policyDigest: policyDigest, jobID: "job-1", receiptPublicKey: spki + [0]) != base)
        // Moving a byte across a field boundary changes the hash (length prefixes).
        #expect(
            AttestationBinding.userData(policyDigest: [1, 2], jobID: "3", receiptPublicKey: [4])
                != AttestationBinding.userData(policyDigest: [1], jobID: "\u{2}3", receiptPublicKey: [4]))
    }

    @Test func tamperedPayloadOrForeignKeyFailsTheSignature() throws {
        var signed = try SignedReceipt.sign(receipt(), with: key, attestationDocument: document)
        var payload = Array(Data(base64Encoded: signed.payload)!)
        payload[payload.count / 2] ^= 0x01
        signed.payload = Data(payload).base64EncodedString()
        expectCode(.badSignature) { _ = try verifier(attest: try attest()).verify(signed) }

        let other = try P256.Signing.PrivateKey()
        var foreign = try SignedReceipt.sign(receipt(), with: key, attestationDocument: document)
        foreign.receiptPublicKey = Data(try other.publicKey.derRepresentation).base64EncodedString()
        expectCode(.badSignature) { _ = try verifier(attest: try attest()).verify(foreign) }
    }

    @Test func receiptSignedByAKeyNotBoundInTheAttestationIsRefused() throws {
        // A well-signed receipt from another key: the attestation's user_data binds the enclave's key only.
        let forger = try P256.Signing.PrivateKey()
        let signed = try SignedReceipt.sign(receipt(), with: forger, attestationDocument: document)
        expectCode(.bindingMismatch) { _ = try verifier(attest: try attest()).verify(signed) }
        // And an attestation bound to another job does not cover this one.
        let honest = try SignedReceipt.sign(receipt(), with: key, attestationDocument: document)
        expectCode(.bindingMismatch) { _ = try verifier(attest: try attest(jobID: "job-2")).verify(honest) }
    }

    @Test func policyMismatchIsNamed() throws {
        let signed = try SignedReceipt.sign(receipt(), with: key, attestationDocument: document)
        expectCode(.policyMismatch) {
            _ = try ReceiptVerifier(expectedPolicyDigest: Hex.encode(SHA256.hash([9])), attest: try attest()).verify(signed)
        }
    }

    @Test func jobMismatchIsNamed() throws {
        let signed = try SignedReceipt.sign(receipt(), with: key, attestationDocument: document)
        expectCode(.jobMismatch) { _ = try verifier(jobID: "job-9", attest: try attest()).verify(signed) }
    }

    @Test func developmentMismatchIsNamed() throws {
        let signed = try SignedReceipt.sign(receipt(), with: key, attestationDocument: document)
        expectCode(.attestationFailed) { _ = try verifier(attest: try attest(development: false)).verify(signed) }
    }

    @Test func failingAttestationIsNamed() throws {
        let signed = try SignedReceipt.sign(receipt(), with: key, attestationDocument: document)
        expectCode(.attestationFailed) {
            _ = try verifier(attest: { _ in throw CryptoError(.invalidSignature, "bad COSE signature") }).verify(signed)
        }
    }

    @Test func outputAndBundleMismatchesAreNamed() throws {
        let signed = try SignedReceipt.sign(receipt(), with: key, attestationDocument: document)
        let v = verifier(attest: try attest())
        expectCode(.outputMismatch) {
            _ = try v.verify(signed, outputs: [.init(name: "model", recipient: "alpha", sha256: SHA256.hash(metrics))])
        }
        expectCode(.outputMissing) {
            _ = try v.verify(signed, outputs: [.init(name: "model", recipient: "beta", sha256: SHA256.hash(model))])
        }
        expectCode(.approvalBundleMismatch) { _ = try v.verify(signed, approvalBundle: bundle + [0x20]) }
    }

    @Test func malformedReceiptsAreRefused() throws {
        expectCode(.malformed) { _ = try SignedReceipt(bytes: Array("not json".utf8)) }
        expectCode(.malformed) { _ = try SignedReceipt(bytes: Array(#"{"payload":1}"#.utf8)) }
        expectCode(.malformed) { _ = try SignedReceipt(bytes: Array(repeating: 0x20, count: SignedReceipt.maxBytes + 1)) }
        var signed = try SignedReceipt.sign(receipt(), with: key, attestationDocument: document)
        signed.signature = "!!!"
        expectCode(.malformed) { _ = try verifier(attest: try attest()).verify(signed) }
    }
}
