import Crypto
import Foundation
import TestSupport
import Testing

/// The KMS `CiphertextForRecipient` sample next to the Nitro documents parses, with the Crypto
/// module's CMS parser, into exactly the parts `expected.json` lists (it cannot be decrypted: the
/// RSA private key was never published).
@Suite struct KMSRecipientSampleTests {
    @Test func theCMSSampleParsesIntoTheListedParts() throws {
        let expected = NitroVector.file.kms_cms_sample
        let ber = [UInt8](try Data(contentsOf: TestEnvironment.vector("nitro/\(expected.file)")))
        let enveloped = try CMS.EnvelopedData(berEncoded: ber)
        #expect(enveloped.version == 2)
        #expect(enveloped.recipients.count == 1)
        let recipient = try #require(enveloped.recipients.first)
        #expect(recipient.version == 2)
        guard case .subjectKeyIdentifier(let ski) = recipient.identifier else {
            Issue.record("the recipient is not named by subjectKeyIdentifier")
            return
        }
        #expect(ski.count == 32)
        #expect(recipient.padding == .oaepSHA256)
        #expect(recipient.encryptedKey.count == expected.expected_encrypted_key_len)
        #expect(Hex.encode(Array(recipient.encryptedKey.prefix(8))) == expected.expected_encrypted_key_prefix_hex)
        #expect(Hex.encode(enveloped.initializationVector) == expected.expected_iv_hex)
        #expect(Hex.encode(enveloped.encryptedContent) == expected.expected_ciphertext_hex)
        // Truncated BER is an error, not a crash.
        #expect(throws: (any Error).self) { _ = try CMS.EnvelopedData(berEncoded: Array(ber.dropLast(11))) }
    }
}
