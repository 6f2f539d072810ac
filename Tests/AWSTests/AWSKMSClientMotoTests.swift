import Foundation
import Testing
import TestSupport

@testable import AWS

/// `AWSKMSClient` against moto's KMS (header signatures checked).
@Suite(.serialized)
struct AWSKMSClientMotoTests {
    @Test func kmsRoundTripsWithEncryptionContextAndRefusals() async throws {
        let moto = try MotoServer()
        defer { moto.stop() }
        let client = try AWSKMSClient(configuration: moto.configuration())
        let key = try await client.createKey(description: "cleanroom test")
        #expect(try await client.describeKey(keyID: key.keyId).arn == key.arn)
        let context = ["cleanroom:dataset": "d1", "cleanroom:party": "p1"]
        let dk = try await client.generateDataKey(keyID: key.arn, byteCount: 32, encryptionContext: context)
        #expect(dk.plaintext.count == 32)
        let back = try await client.decrypt(keyID: key.keyId, ciphertextBlob: dk.ciphertextBlob, encryptionContext: context)
        #expect(back.plaintext == dk.plaintext)
        let enc = try await client.encrypt(keyID: key.keyId, plaintext: dk.plaintext, encryptionContext: context)
        let key2 = try await client.createKey()
        let re = try await client.reEncrypt(
            ciphertextBlob: enc.ciphertextBlob, sourceEncryptionContext: context, destinationKeyID: key2.keyId,
            destinationEncryptionContext: ["x": "y"])
        let back2 = try await client.decrypt(keyID: key2.keyId, ciphertextBlob: Array(re.ciphertextBlob), encryptionContext: ["x": "y"])
        #expect(back2.plaintext == dk.plaintext)
        do {
            _ = try await client.decrypt(keyID: key.keyId, ciphertextBlob: dk.ciphertextBlob, encryptionContext: ["cleanroom:dataset": "d2"])
            Issue.record("a mismatched encryption context was accepted")
        } catch let e as KMSError {
            #expect(e.code == "InvalidCiphertextException")
        }
        do {
            _ = try await client.describeKey(keyID: "11111111-2222-3333-4444-555555555555")
            Issue.record("an unknown key was described")
        } catch let e as KMSError {
            #expect(e.code == "NotFoundException")
        }
        // A dataset key's policy goes in and comes back as the same policy (PutKeyPolicy answers an empty body).
        let account = try #require(DatasetKeyPolicy.account(ofKeyARN: key.arn))
        let policy = try DatasetKeyPolicy(
            owner: DatasetKeyPolicy.accountRoot(account), keyReleasePrincipal: "arn:aws:iam::\(account):role/cleanroomd",
            enclaveImages: [String(repeating: "ab", count: 48)])
        #expect(DatasetKeyPolicy(document: try await client.keyPolicy(keyID: key.keyId)) == nil)  // the default policy
        try await client.putKeyPolicy(keyID: key.keyId, policy: policy.document)
        #expect(DatasetKeyPolicy(document: try await client.keyPolicy(keyID: key.keyId)) == policy)
        var bad = moto.credentials
        bad.secretAccessKey += "x"
        let badClient = try AWSKMSClient(
            configuration: AWSConfiguration(region: "us-east-1", credentials: StaticCredentialsProvider(bad), endpointOverrides: ["": moto.endpoint]))
        do {
            _ = try await badClient.describeKey(keyID: key.keyId)
            Issue.record("a wrong signature was accepted")
        } catch let e as KMSError {
            #expect(["SignatureDoesNotMatch", "InvalidSignatureException", "IncompleteSignature"].contains(e.code), "\(e.message)")
        }
    }
}
