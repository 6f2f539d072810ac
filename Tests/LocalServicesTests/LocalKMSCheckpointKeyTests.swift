import AWS
import Attestation
import Crypto
import Foundation
import Testing
import TestSupport

@testable import LocalServices

/// The checkpoint key: data keys only for an attested enclave of the allowed image, never in plaintext.
struct LocalKMSCheckpointKeyTests {
    @Test func checkpointKeyGivesDataKeysOnlyToTheAllowedEnclaveImage() async throws {
        let dir = try TestEnvironment.temporaryDirectory("lkms-checkpoint")
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = [UInt8](repeating: 0x3c, count: 48), upgraded = [UInt8](repeating: 0x4d, count: 48)
        let attestor = try LocalKMSTests.attestor(dir, pcr0: image)
        let upgradedAttestor = try LocalKMSTests.attestor(dir, pcr0: upgraded)
        let kms = try LocalKMS(
            directory: dir.appendingPathComponent("kms"), attestationVerifier: AttestationVerifier(trustedRoots: [attestor.trustedRoot]))
        let arn = try kms.checkpointKey(enclaveImages: [hexString(image)])
        #expect(try kms.checkpointKey(enclaveImages: [hexString(image)]) == arn, "opened again under its alias")
        let context = ["cleanroom:purpose": "training-checkpoint"]

        // The operator gets no plaintext key, with or without the SDK helpers.
        do {
            _ = try await kms.generateDataKey(keyID: arn, byteCount: 32, encryptionContext: context)
            Issue.record("GenerateDataKey without Recipient was allowed")
        } catch let e as KMSError { #expect(e.code == "AccessDeniedException") }

        let enclaveKey = try RSA.PrivateKey(bits: 2048)
        let spki = try enclaveKey.publicKey.derRepresentation
        let document = try attestor.attestationDocument(publicKey: spki, userData: nil, nonce: nil)
        let generated = try kms.generateDataKey(
            .init(keyId: arn, numberOfBytes: 32, encryptionContext: context, recipient: .init(attestationDocument: Data(document))),
            caller: kms.defaultCaller)
        #expect(generated.plaintext == nil)
        let key = try CMS.EnvelopedData(berEncoded: Array(try #require(generated.ciphertextForRecipient))).decrypt(with: enclaveKey)
        #expect(key.count == 32)

        // Nor can the operator get the stored key back: not by Decrypt without Recipient, not by
        // re-encrypting it under a key it may decrypt with.
        let operatorKey = try kms.createKey(description: "the operator's own key")
        for (name, call) in [
            ("Decrypt", { _ = try kms.decrypt(
                .init(ciphertextBlob: generated.ciphertextBlob, keyId: arn, encryptionContext: context), caller: kms.defaultCaller) }),
            ("ReEncrypt", { _ = try kms.reEncrypt(
                .init(ciphertextBlob: generated.ciphertextBlob, sourceEncryptionContext: context, sourceKeyId: arn,
                      destinationKeyId: operatorKey.arn), caller: kms.defaultCaller) }),
        ] as [(String, () throws -> Void)] {
            do {
                try call()
                Issue.record("\(name) of the checkpoint key by the operator was allowed")
            } catch let e as KMSError { #expect(e.code == "AccessDeniedException", "\(name)") }
        }

        // Another image is refused both calls.
        let otherDocument = try upgradedAttestor.attestationDocument(publicKey: spki, userData: nil, nonce: nil)
        for call in [
            { _ = try kms.decrypt(
                .init(ciphertextBlob: generated.ciphertextBlob, keyId: arn, encryptionContext: context,
                      recipient: .init(attestationDocument: Data(otherDocument))), caller: kms.defaultCaller) },
            { _ = try kms.generateDataKey(
                .init(keyId: arn, numberOfBytes: 32, encryptionContext: context, recipient: .init(attestationDocument: Data(otherDocument))),
                caller: kms.defaultCaller) },
        ] as [() throws -> Void] {
            do {
                try call()
                Issue.record("another enclave image got a checkpoint key")
            } catch let e as KMSError { #expect(e.code == "AccessDeniedException") }
        }

        // After an upgrade the policy names the new image only: the old image's key is gone for good.
        #expect(try kms.checkpointKey(enclaveImages: [hexString(upgraded)]) == arn)
        do {
            _ = try kms.decrypt(
                .init(ciphertextBlob: generated.ciphertextBlob, keyId: arn, encryptionContext: context,
                      recipient: .init(attestationDocument: Data(document))), caller: kms.defaultCaller)
            Issue.record("the old image still got the key after the policy changed")
        } catch let e as KMSError { #expect(e.code == "AccessDeniedException") }
        let reopened = try kms.decrypt(
            .init(ciphertextBlob: generated.ciphertextBlob, keyId: arn, encryptionContext: context,
                  recipient: .init(attestationDocument: Data(otherDocument))), caller: kms.defaultCaller)
        #expect(reopened.plaintext == nil && reopened.ciphertextForRecipient != nil)
        #expect(throws: KMSError.self) { try kms.checkpointKey(enclaveImages: []) }
    }
}
