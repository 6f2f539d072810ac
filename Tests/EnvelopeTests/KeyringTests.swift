import Crypto
import Foundation
import Testing

@testable import Envelope

/// An in-memory KMS for keyring logic tests: wraps with AES-GCM under a per-key secret, binds the
/// encryption context as AAD, and answers with the key's ARN (the real clients are tested against
/// moto and the local KMS in their own modules).
final class InMemoryKMS: KeyManagementService, @unchecked Sendable {
    let keys: [String: SecureBytes]  // ARN -> wrapping key
    var answerARN: String?  // when set, Decrypt claims this ARN (a misbehaving KMS)
    private(set) var calls: [String] = []
    private let lock = NSLock()

    init(arns: [String]) throws {
        keys = Dictionary(uniqueKeysWithValues: try arns.map { ($0, try SecureBytes(randomCount: 32)) })
    }

    private func record(_ call: String) { lock.withLock { calls.append(call) } }

    private func aad(_ context: [String: String]) throws -> [UInt8] { try EncryptionContext(context).serialized() }

    func generateDataKey(keyID: String, byteCount: Int, encryptionContext: [String: String]) async throws
        -> KMSGeneratedDataKey
    {
        record("GenerateDataKey \(keyID)")
        let plaintext = try SecureBytes(randomCount: byteCount)
        let encrypted = try await encrypt(keyID: keyID, plaintext: plaintext, encryptionContext: encryptionContext)
        return KMSGeneratedDataKey(plaintext: plaintext, ciphertextBlob: encrypted.ciphertextBlob, keyARN: encrypted.keyARN)
    }

    func encrypt(keyID: String, plaintext: SecureBytes, encryptionContext: [String: String]) async throws
        -> KMSEncryptedKey
    {
        record("Encrypt \(keyID)")
        guard let key = keys[keyID] else { throw EnvelopeError(.invalidArgument, "NotFoundException") }
        let nonce = try SecureRandom.bytes(count: 12)
        let box = try AESGCM.seal(plaintext, key: key, nonce: nonce, authenticating: try aad(encryptionContext))
        return KMSEncryptedKey(ciphertextBlob: nonce + box.ciphertext + box.tag, keyARN: keyID)
    }

    func decrypt(keyID: String, ciphertextBlob: [UInt8], encryptionContext: [String: String]) async throws
        -> KMSDecryptedKey
    {
        record("Decrypt \(keyID)")
        guard let key = keys[keyID], ciphertextBlob.count > 28 else { throw EnvelopeError(.invalidArgument, "InvalidCiphertextException") }
        let nonce = Array(ciphertextBlob[0..<12]), tag = Array(ciphertextBlob.suffix(16))
        let body = Array(ciphertextBlob[12..<(ciphertextBlob.count - 16)])
        let plaintext = try AESGCM.openSecret(body, tag: tag, key: key, nonce: nonce, authenticating: try aad(encryptionContext))
        return KMSDecryptedKey(plaintext: plaintext, keyARN: answerARN ?? keyID)
    }
}

@Suite struct KeyringTests {
    static let arnA = "arn:aws:kms:eu-west-1:111122223333:key/aaaa"
    static let arnB = "arn:aws:kms:eu-west-1:111122223333:key/bbbb"

    @Test func kmsKeyringWritesTheARNAndDecryptsWithTheSameContext() async throws {
        let kms = try InMemoryKMS(arns: [Self.arnA])
        let keyring = try KMSKeyring(kms: kms, keyID: Self.arnA)
        let context = try EncryptionContext([("cleanroom:dataset", "d1")])
        let message = try await MessageEncryptor.encrypt(Array("rows".utf8), keyring: keyring, encryptionContext: context)
        let header = try MessageHeaderParser().parseComplete(message)
        #expect(header.encryptedDataKeys.count == 1)
        #expect(header.encryptedDataKeys[0].providerID == "aws-kms")
        #expect(header.encryptedDataKeys[0].providerInfoText == Self.arnA)
        #expect(kms.calls == ["GenerateDataKey \(Self.arnA)", "Encrypt \(Self.arnA)"])
        #expect(try await MessageDecryptor.decrypt(message, keyring: keyring).plaintext == Array("rows".utf8))
        #expect(try await MessageDecryptor.decrypt(message, keyring: KMSKeyring(discovery: kms)).plaintext == Array("rows".utf8))
    }

    @Test func kmsKeyringRefusesOtherKeysAndLyingAnswers() async throws {
        let kms = try InMemoryKMS(arns: [Self.arnA, Self.arnB])
        let message = try await MessageEncryptor.encrypt([1, 2, 3], keyring: try KMSKeyring(kms: kms, keyID: Self.arnA))
        // A keyring for another key does not even call KMS for this EDK.
        let other = try KMSKeyring(kms: kms, keyID: Self.arnB)
        #expect(await errorCode { _ = try await MessageDecryptor.decrypt(message, keyring: other) } == .noDecryptableDataKey)
        kms.answerARN = Self.arnB
        #expect(await errorCode {
            _ = try await MessageDecryptor.decrypt(message, keyring: KMSKeyring(discovery: kms))
        } == .noDecryptableDataKey)
        #expect(await errorCode { _ = try await MessageEncryptor(keyring: KMSKeyring(discovery: kms)) } == .keyringConfiguration)
    }

    @Test func multiKeyringWrapsForEveryChildAndAnyOneDecrypts() async throws {
        let kms = try InMemoryKMS(arns: [Self.arnA])
        let aes = try RawAESKeyring(keyNamespace: "ns", keyName: "aes", wrappingKey: SecureBytes(randomCount: 32))
        let rsa = try RawRSAKeyring(keyNamespace: "ns", keyName: "rsa", privateKey: RSA.PrivateKey(bits: 2048))
        let multi = try MultiKeyring(generator: KMSKeyring(kms: kms, keyID: Self.arnA), children: [aes, rsa])
        let message = try await MessageEncryptor.encrypt([9, 9], keyring: multi, suite: .aes256GCMHKDFSHA512CommitECDSAP384)
        let header = try MessageHeaderParser().parseComplete(message)
        #expect(header.encryptedDataKeys.map(\.providerID) == ["aws-kms", "ns", "ns"])
        for keyring in [aes, rsa, multi] as [any Keyring] {
            #expect(try await MessageDecryptor.decrypt(message, keyring: keyring).plaintext == [9, 9])
        }
        #expect(throws: EnvelopeError.self) { try MultiKeyring(generator: nil, children: []) }
    }

    @Test func rawKeyringsValidateTheirConfiguration() throws {
        #expect(throws: EnvelopeError.self) {
            try RawAESKeyring(keyNamespace: "aws-kms", keyName: "k", wrappingKey: SecureBytes(randomCount: 32))
        }
        #expect(throws: EnvelopeError.self) {
            try RawAESKeyring(keyNamespace: "ns", keyName: "k", wrappingKey: SecureBytes(randomCount: 20))
        }
        #expect(throws: EnvelopeError.self) { try RawRSAKeyring(keyNamespace: "ns", keyName: "k") }
    }

    @Test func rawAESKeyringUsesAES128And192WrappingKeys() async throws {
        for length in [16, 24] {
            let keyring = try RawAESKeyring(keyNamespace: "ns", keyName: "k", wrappingKey: SecureBytes(randomCount: length))
            let message = try await MessageEncryptor.encrypt([1], keyring: keyring)
            #expect(try await MessageDecryptor.decrypt(message, keyring: keyring).plaintext == [1])
        }
    }
}
