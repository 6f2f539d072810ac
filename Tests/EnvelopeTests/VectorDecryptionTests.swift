import Crypto
import Foundation
import Testing

@testable import Envelope

/// Interop proof, first half: every vector under ../shared/vectors/esdk decrypts, or fails with the right error.
@Suite struct VectorDecryptionTests {
    static let expectedFailures: [String: EnvelopeError.Code] = [
        "neg-v2-0478-aes-bad-commitment": .keyCommitmentMismatch,
        "neg-v2-0478-rsa-bad-frame-tag": .frameAuthenticationFailed,
        "neg-v2-0578-rsa-bad-signature": .signatureInvalid,
        "neg-v2-0478-aes-bad-header-tag": .headerAuthenticationFailed,
    ]

    @Test func decryptsEveryPythonSDKVectorWithItsManifestKeys() async throws {
        let manifest = try VectorFiles.json("manifest.json")
        let tests = try #require(manifest["tests"] as? [String: [String: Any]])
        #expect(tests.count == 12)
        var failuresSeen = 0
        for (name, test) in tests.sorted(by: { $0.key < $1.key }) {
            let ciphertextPath = (test["ciphertext"] as? String ?? "").replacingOccurrences(of: "file://", with: "")
            let message = try VectorFiles.data(ciphertextPath)
            let entries = try #require(test["master-keys"] as? [[String: Any]])
            let result = try #require(test["result"] as? [String: Any])
            // The spec: a test passes if ANY ONE of the listed master keys decrypts it.
            for entry in entries {
                let keyring = try VectorKeys.keyring(for: entry)
                if let output = result["output"] as? [String: Any] {
                    let plaintextPath = (output["plaintext"] as? String ?? "").replacingOccurrences(of: "file://", with: "")
                    let expected = try VectorFiles.data(plaintextPath)
                    let (plaintext, verified) = try await MessageDecryptor.decrypt(message, keyring: keyring)
                    #expect(plaintext == expected, "\(name)")
                    #expect(verified.signatureVerified == verified.suite.isSigned, "\(name)")
                    #expect(verified.encryptionContext["über-key"] == "wärt", "\(name)")
                } else {
                    let expectedCode = try #require(Self.expectedFailures[name], "\(name) has no expected error code")
                    let code = await errorCode { _ = try await MessageDecryptor.decrypt(message, keyring: keyring) }
                    #expect(code == expectedCode, "\(name)")
                    failuresSeen += 1
                }
            }
        }
        #expect(failuresSeen == 4)
    }

    @Test func derivedKeysAndCommitmentsMatchTheIndependentDecoder() throws {
        for (name, detail) in try VectorFiles.details() where detail["expected-failure"] == nil {
            let header = try MessageHeaderParser().parseComplete(try VectorFiles.data("ciphertexts/\(name)"))
            let dataKey = try #require(VectorFiles.base64(detail["plaintext-data-key-b64"]))
            let keys = try ContentKeys(suite: header.suite, dataKey: SecureBytes(dataKey), messageID: header.messageID)
            #expect(keys.contentKey.copyBytes() == VectorFiles.base64(detail["derived-key-b64"]), "\(name)")
            if header.suite.isCommitting {
                #expect(keys.commitment == VectorFiles.base64(detail["commit-key-b64"]), "\(name)")
            }
        }
    }

    @Test func decryptsMultiKeyringVectorWithEitherKeyAlone() async throws {
        let message = try VectorFiles.data("ciphertexts/v2-0478-multi-8192")
        let expected = try VectorFiles.data("plaintexts/8192b")
        let aes = try RawAESKeyring(keyNamespace: "aws-raw-vectors-persistent", keyName: "aes-256", wrappingKey: try VectorKeys.aes256())
        let rsa = try RawRSAKeyring(
            keyNamespace: "aws-raw-vectors-persistent", keyName: "rsa-4096-private", privateKey: try VectorKeys.rsaPrivate())
        for keyring in [aes, rsa] as [any Keyring] {
            #expect(try await MessageDecryptor.decrypt(message, keyring: keyring).plaintext == expected)
        }
        let multi = try MultiKeyring(generator: rsa, children: [aes])
        #expect(try await MessageDecryptor.decrypt(message, keyring: multi).plaintext == expected)
    }

    @Test func decryptsEveryAWSCompatibilityVectorOrRejectsItsCommitment() async throws {
        let vectors = try VectorFiles.compatibilityVectors()
        var passed = 0, rejected = 0
        for (index, vector) in vectors.enumerated() {
            let message = try #require(VectorFiles.base64(vector["ciphertext"]))
            let keyring = StaticKeyring(dataKey: try #require(VectorFiles.base64(vector["decrypted-dek"])))
            if vector["status"] as? Bool == true {
                let frames = (vector["plaintext-frames"] as? [String]) ?? []
                let expected = frames.flatMap { Array($0.utf8) }
                let (plaintext, verified) = try await MessageDecryptor.decrypt(message, keyring: keyring)
                #expect(plaintext == expected, "case \(index + 1)")
                #expect(verified.signatureVerified == verified.suite.isSigned, "case \(index + 1)")
                passed += 1
            } else {
                let code = await errorCode { _ = try await MessageDecryptor.decrypt(message, keyring: keyring) }
                #expect(code == .keyCommitmentMismatch, "case \(index + 1)")
                rejected += 1
            }
        }
        #expect(passed == 41)
        #expect(rejected == 5)
    }

    @Test func decryptsEveryFormatOneFixture() async throws {
        let fixtures = try VectorFiles.v1Fixtures()
        #expect(fixtures.count == 9)
        for (name, fixture) in fixtures {
            let message = try #require(VectorFiles.base64(fixture["ciphertext-b64"]))
            let keyring = StaticKeyring(dataKey: try #require(VectorFiles.base64(fixture["plaintext-data-key-b64"])))
            let result = fixture["result"]
            if let result = result as? [String: Any], let error = result["error"] as? String {
                let code = await errorCode { _ = try await MessageDecryptor.decrypt(message, keyring: keyring) }
                let expected: EnvelopeError.Code = error.contains("signature") ? .signatureInvalid : .frameOutOfSequence
                #expect(code == expected, "\(name)")
            } else {
                let expectedText = ((result as? [String: Any])?["plaintext-b64"] as? String) ?? Self.pythonDictValue(result)
                let expected = try #require(VectorFiles.base64(expectedText), "\(name)")
                let (plaintext, verified) = try await MessageDecryptor.decrypt(message, keyring: keyring)
                #expect(plaintext == expected, "\(name)")
                #expect(verified.header.version == .v1)
            }
        }
    }

    /// One fixture's result is stored as the text of a Python dict: "{'plaintext-b64': '...'}".
    static func pythonDictValue(_ value: Any?) -> String? {
        guard let text = value as? String, let start = text.range(of: ": '"), let end = text.range(of: "'}") else {
            return nil
        }
        return String(text[start.upperBound..<end.lowerBound])
    }

    @Test func requiredContextIsEnforcedAfterAuthentication() async throws {
        let message = try VectorFiles.data("ciphertexts/v2-0478-aes-10000")
        let keyring = try RawAESKeyring(keyNamespace: "aws-raw-vectors-persistent", keyName: "aes-256", wrappingKey: try VectorKeys.aes256())
        let good = DecryptionPolicy(requiredEncryptionContext: try EncryptionContext([("dataset", "esdk-vectors")]))
        #expect(try await MessageDecryptor.decrypt(message, keyring: keyring, policy: good).plaintext.count == 10000)
        let bad = DecryptionPolicy(requiredEncryptionContext: try EncryptionContext([("dataset", "other")]))
        #expect(await errorCode { _ = try await MessageDecryptor.decrypt(message, keyring: keyring, policy: bad) } == .encryptionContextMismatch)
        #expect(await errorCode {
            _ = try await MessageDecryptor.decrypt(
                try VectorFiles.data("ciphertexts/v1-0178-aes-10000"), keyring: keyring, policy: .committingOnly)
        } == .algorithmSuiteNotAllowed)
    }

    @Test func wrongKeysFailWithNoDecryptableDataKey() async throws {
        let message = try VectorFiles.data("ciphertexts/v2-0478-aes-10000")
        let otherName = try RawAESKeyring(keyNamespace: "aws-raw-vectors-persistent", keyName: "other", wrappingKey: try VectorKeys.aes256())
        let otherKey = try RawAESKeyring(
            keyNamespace: "aws-raw-vectors-persistent", keyName: "aes-256", wrappingKey: SecureBytes([UInt8](repeating: 1, count: 32)))
        for keyring in [otherName, otherKey] {
            #expect(await errorCode { _ = try await MessageDecryptor.decrypt(message, keyring: keyring) } == .noDecryptableDataKey)
        }
    }
}
