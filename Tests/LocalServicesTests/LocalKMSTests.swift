import AWS
import Attestation
import Crypto
import Foundation
import Testing
import TestSupport

@testable import LocalServices

/// The local KMS in process: keys, versions, authenticated blobs, policies and `Recipient`.
struct LocalKMSTests {
    static func withKMS(attestor: DevelopmentAttestor? = nil, _ body: (LocalKMS, URL) async throws -> Void) async throws {
        let dir = try TestEnvironment.temporaryDirectory("lkms")
        defer { try? FileManager.default.removeItem(at: dir) }
        let verifier = attestor.map { AttestationVerifier(trustedRoots: [$0.trustedRoot]) }
        try await body(try LocalKMS(directory: dir.appendingPathComponent("kms"), attestationVerifier: verifier), dir)
    }

    static let context = ["cleanroom:dataset": "d1", "cleanroom:party": "p1"]

    @Test func generateDataKeyThenDecryptWithTheSameContextRoundTrips() async throws {
        try await Self.withKMS { kms, _ in
            let key = try kms.createKey(description: "party key")
            let dk = try await kms.generateDataKey(keyID: key.arn, byteCount: 32, encryptionContext: Self.context)
            #expect(dk.plaintext.count == 32)
            #expect(dk.keyARN == key.arn)
            let back = try await kms.decrypt(keyID: key.keyId, ciphertextBlob: dk.ciphertextBlob, encryptionContext: Self.context)
            #expect(back.plaintext == dk.plaintext)
        }
    }

    @Test func aMismatchedContextAnUnknownKeyAndAWrongKeyAreRefusedWithKMSCodes() async throws {
        try await Self.withKMS { kms, _ in
            let key = try kms.createKey()
            let other = try kms.createKey()
            let dk = try await kms.generateDataKey(keyID: key.keyId, byteCount: 32, encryptionContext: Self.context)
            var wrong = Self.context
            wrong["cleanroom:party"] = "p2"
            await #expect(throws: KMSError("InvalidCiphertextException", "The ciphertext does not authenticate with this key and encryption context")) {
                _ = try await kms.decrypt(keyID: key.keyId, ciphertextBlob: dk.ciphertextBlob, encryptionContext: wrong)
            }
            await #expect(throws: KMSError.self) {
                _ = try await kms.decrypt(keyID: key.keyId, ciphertextBlob: dk.ciphertextBlob, encryptionContext: [:])
            }
            do {
                _ = try await kms.generateDataKey(keyID: "00000000-0000-0000-0000-000000000000", byteCount: 32, encryptionContext: [:])
                Issue.record("unknown key accepted")
            } catch let e as KMSError { #expect(e.code == "NotFoundException") }
            // A key id with a NUL after the real one is no key (SQLite would have ended it at the NUL).
            do {
                _ = try await kms.generateDataKey(keyID: key.keyId + "\u{0}zz", byteCount: 32, encryptionContext: [:])
                Issue.record("a key id with a NUL found the key")
            } catch let e as KMSError { #expect(e.code == "NotFoundException") }
            do {
                _ = try await kms.decrypt(keyID: other.keyId, ciphertextBlob: dk.ciphertextBlob, encryptionContext: Self.context)
                Issue.record("wrong key accepted")
            } catch let e as KMSError { #expect(e.code == "IncorrectKeyException") }
            // A flipped byte anywhere in the blob (every 7th byte tried) is caught.
            for i in stride(from: 0, to: dk.ciphertextBlob.count, by: 7) {
                var t = dk.ciphertextBlob
                t[i] ^= 0x01
                await #expect(throws: KMSError.self) {
                    _ = try await kms.decrypt(keyID: key.keyId, ciphertextBlob: t, encryptionContext: Self.context)
                }
            }
        }
    }

    @Test func rotationAddsAVersionAndOldCiphertextsStillDecrypt() async throws {
        try await Self.withKMS { kms, _ in
            let key = try kms.createKey()
            let before = try await kms.generateDataKey(keyID: key.keyId, byteCount: 32, encryptionContext: Self.context)
            #expect(try kms.rotateKey(.init(keyId: key.keyId), caller: kms.defaultCaller) == 2)
            let after = try await kms.generateDataKey(keyID: key.keyId, byteCount: 32, encryptionContext: Self.context)
            #expect(LocalKMSCiphertext.parseHeader(before.ciphertextBlob)?.version == 1)
            #expect(LocalKMSCiphertext.parseHeader(after.ciphertextBlob)?.version == 2)
            for dk in [before, after] {
                let back = try await kms.decrypt(keyID: key.keyId, ciphertextBlob: dk.ciphertextBlob, encryptionContext: Self.context)
                #expect(back.plaintext == dk.plaintext)
            }
        }
    }

    @Test func keysSurviveAReopenAndTheRootKeyFileIsOwnerOnly() async throws {
        try await Self.withKMS { kms, dir in
            let key = try kms.createKey()
            let dk = try await kms.generateDataKey(keyID: key.keyId, byteCount: 16, encryptionContext: [:])
            let kmsDir = dir.appendingPathComponent("kms")
            let mode = try FileManager.default.attributesOfItem(atPath: kmsDir.appendingPathComponent("root.key").path)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let reopened = try LocalKMS(directory: kmsDir)
            #expect(try await reopened.decrypt(keyID: key.keyId, ciphertextBlob: dk.ciphertextBlob, encryptionContext: [:]).plaintext == dk.plaintext)
            chmod(kmsDir.appendingPathComponent("root.key").path, 0o644)
            #expect(throws: KMSError.self) { _ = try LocalKMS(directory: kmsDir) }
        }
    }

    static func nitroPolicy(imageSha384: String, account: String = "000000000000") -> String {
        """
        {"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::\(account):root"},"NotAction":"kms:Decrypt","Resource":"*"},
          {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::\(account):root"},"Action":"kms:Decrypt","Resource":"*",
           "Condition":{"StringEqualsIgnoreCase":{"kms:RecipientAttestation:ImageSha384":"\(imageSha384)"}}}]}
        """
    }

    static func attestor(_ dir: URL, pcr0: [UInt8]) throws -> DevelopmentAttestor {
        DevelopmentAttestor(
            ca: try DevelopmentCA.openOrCreate(dataDirectory: dir.path), measurements: DevelopmentMeasurements(pcr0: pcr0))
    }

    @Test func recipientGetsThePlaintextOnlyAsCMSForTheAttestedKeyAndOnlyWhenThePolicyAllowsIt() async throws {
        let dir = try TestEnvironment.temporaryDirectory("lkms-att")
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = [UInt8](repeating: 0xab, count: 48), bad = [UInt8](repeating: 0xcd, count: 48)
        let attestorGood = try Self.attestor(dir, pcr0: good)
        let attestorBad = try Self.attestor(dir, pcr0: bad)
        try await Self.withKMS(attestor: attestorGood) { kms, _ in
            // Upper-case hex in the policy: StringEqualsIgnoreCase.
            let key = try kms.createKey(policy: Self.nitroPolicy(imageSha384: hexString(good).uppercased()))
            let dk = try await kms.generateDataKey(keyID: key.keyId, byteCount: 32, encryptionContext: Self.context)
            // Without Recipient the policy refuses Decrypt.
            do {
                _ = try await kms.decrypt(keyID: key.keyId, ciphertextBlob: dk.ciphertextBlob, encryptionContext: Self.context)
                Issue.record("Decrypt without attestation was allowed")
            } catch let e as KMSError { #expect(e.code == "AccessDeniedException") }

            let enclaveKey = try RSA.PrivateKey(bits: 2048)
            let spki = try enclaveKey.publicKey.derRepresentation
            let doc = try attestorGood.attestationDocument(publicKey: spki, userData: nil, nonce: nil)
            let answer = try kms.decrypt(
                .init(ciphertextBlob: Data(dk.ciphertextBlob), keyId: key.arn, encryptionContext: Self.context,
                    recipient: .init(attestationDocument: Data(doc))), caller: kms.defaultCaller)
            #expect(answer.plaintext == nil)
            let cms = try #require(answer.ciphertextForRecipient)
            let opened = try CMS.EnvelopedData(berEncoded: Array(cms)).decrypt(with: enclaveKey)
            #expect(opened == dk.plaintext)

            // Another measurement (same CA, so the document verifies) is refused by the policy.
            let badDoc = try attestorBad.attestationDocument(publicKey: spki, userData: nil, nonce: nil)
            do {
                _ = try kms.decrypt(
                    .init(ciphertextBlob: Data(dk.ciphertextBlob), encryptionContext: Self.context,
                        recipient: .init(attestationDocument: Data(badDoc))), caller: kms.defaultCaller)
                Issue.record("a non-matching PCR0 was allowed")
            } catch let e as KMSError { #expect(e.code == "AccessDeniedException") }

            // GenerateDataKey with Recipient: no Plaintext, CMS instead.
            let gen = try kms.generateDataKey(
                .init(keyId: key.keyId, numberOfBytes: 32, encryptionContext: Self.context, recipient: .init(attestationDocument: Data(doc))),
                caller: kms.defaultCaller)
            #expect(gen.plaintext == nil)
            let genKey = try CMS.EnvelopedData(berEncoded: Array(try #require(gen.ciphertextForRecipient))).decrypt(with: enclaveKey)
            #expect(genKey.count == 32)

            // A forged document does not verify at all.
            var forged = doc
            forged[forged.count - 5] ^= 1
            do {
                _ = try kms.decrypt(
                    .init(ciphertextBlob: Data(dk.ciphertextBlob), encryptionContext: Self.context,
                        recipient: .init(attestationDocument: Data(forged))), caller: kms.defaultCaller)
                Issue.record("a forged attestation document was accepted")
            } catch let e as KMSError { #expect(e.code == "ValidationException") }
        }
    }

    @Test func policyPrincipalsSeparatePartiesOfTheSameAccount() throws {
        let policy = try KMSKeyPolicy(json: """
            {"Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::000000000000:user/party-a"]},"Action":"kms:*","Resource":"*"},
             {"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:cleanroom:party":"blocked"}}}]}
            """)
        func ctx(_ p: String, _ action: String, _ ec: [String: String] = [:]) -> KMSKeyPolicy.RequestContext {
            .init(principalArn: "arn:aws:iam::000000000000:user/\(p)", accountId: "000000000000", action: action, encryptionContext: ec)
        }
        #expect(policy.allows(ctx("party-a", "kms:Decrypt")))
        #expect(!policy.allows(ctx("party-b", "kms:Decrypt")))
        #expect(!policy.allows(ctx("party-a", "kms:Decrypt", ["cleanroom:party": "blocked"])))
        #expect(throws: KMSError.self) { _ = try KMSKeyPolicy(json: "[]") }
    }
}
