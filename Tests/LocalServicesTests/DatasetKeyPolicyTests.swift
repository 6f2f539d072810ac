import AWS
import Attestation
import Crypto
import Foundation
import Testing
import TestSupport

@testable import LocalServices

/// The dataset key's policy (DESIGN §2.4): enforced by the KMS itself, so the operator of
/// `cleanroomd` (the account root of the embedded KMS) gets a party's data key only inside an
/// enclave image the party allowed, and only as CMS for that enclave.
struct DatasetKeyPolicyTests {
    static let account = "000000000000"
    static let party = KMSCaller(principalArn: DatasetKeyPolicy.localPartyPrincipal(accountId: account, partyId: "alpha"), accountId: account)
    static let otherParty = KMSCaller(principalArn: DatasetKeyPolicy.localPartyPrincipal(accountId: account, partyId: "beta"), accountId: account)
    static let good = [UInt8](repeating: 0xab, count: 48), bad = [UInt8](repeating: 0xcd, count: 48)
    static let context = ["cleanroom:dataset": "d1", "cleanroom:party": "alpha"]

    static func policy(images: [[UInt8]]) throws -> DatasetKeyPolicy {
        try DatasetKeyPolicy(
            owner: party.principalArn, keyReleasePrincipal: DatasetKeyPolicy.accountRoot(account), enclaveImages: images.map(hexString))
    }

    @Test func theDocumentReadsBackAndOtherPoliciesAreNotTakenForOne() throws {
        var policy = try Self.policy(images: [Self.good])
        #expect(DatasetKeyPolicy(document: policy.document) == policy)
        // Upper-case and repeated images are one image.
        #expect(try policy.allow([hexString(Self.good).uppercased(), hexString(Self.bad), hexString(Self.bad)]) == [hexString(Self.bad)])
        #expect(policy.enclaveImages == [hexString(Self.good), hexString(Self.bad)])
        #expect(DatasetKeyPolicy(document: policy.document) == policy)
        #expect(try policy.disallow([hexString(Self.good)]) == [hexString(Self.good)])
        #expect(try policy.disallow([hexString(Self.good)]) == [])
        // No image, or no releaser: no release statement at all.
        _ = try policy.disallow([hexString(Self.bad)])
        #expect(!policy.document.contains("kms:Decrypt"))
        #expect(DatasetKeyPolicy(document: policy.document) == DatasetKeyPolicy(document: try Self.policy(images: []).document))

        // Bad images are refused: not hex, wrong length, and the all-zero PCR0 of a debug enclave.
        for image in [String(repeating: "g", count: 96), String(repeating: "a", count: 94), String(repeating: "0", count: 96)] {
            var empty = try Self.policy(images: [])
            #expect(throws: KMSError.self) { try empty.allow([image]) }
        }
        // KMS's default policy, a hand-written one, an added statement or a Deny are not ours to rewrite.
        let ours = try Self.policy(images: [Self.good]).document
        var object = try #require(try JSONSerialization.jsonObject(with: Data(ours.utf8)) as? [String: Any])
        var statements = try #require(object["Statement"] as? [[String: Any]])
        func document(_ change: (inout [String: Any], inout [[String: Any]]) -> Void) throws -> String {
            var o = object, s = statements
            change(&o, &s)
            o["Statement"] = s
            return String(decoding: try JSONSerialization.data(withJSONObject: o), as: UTF8.self)
        }
        #expect(DatasetKeyPolicy(document: try document { _, _ in }) != nil)
        #expect(DatasetKeyPolicy(document: KMSKeyPolicy.defaultPolicy(accountId: Self.account)) == nil)
        #expect(DatasetKeyPolicy(document: try document { o, _ in o["Id"] = "mine" }) == nil)
        #expect(DatasetKeyPolicy(document: try document { _, s in s.append(["Sid": "Extra", "Effect": "Allow", "Action": "kms:*"]) }) == nil)
        #expect(DatasetKeyPolicy(document: try document { _, s in s[1]["Effect"] = "Deny" }) == nil)
        #expect(DatasetKeyPolicy(document: try document { _, s in s[1]["Action"] = "kms:*" }) == nil)
        #expect(DatasetKeyPolicy(document: try document { _, s in s[0]["Condition"] = ["Bool": ["aws:SecureTransport": "true"]] }) == nil)
        statements[1]["Condition"] = ["StringLike": ["kms:RecipientAttestation:ImageSha384": ["*"]]]
        object["Statement"] = statements
        #expect(DatasetKeyPolicy(document: String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)) == nil)
        #expect(DatasetKeyPolicy.account(ofKeyARN: "arn:aws:kms:eu-west-1:123456789012:key/abc") == "123456789012")
        #expect(DatasetKeyPolicy.account(ofKeyARN: "alias/x") == nil)
    }

    @Test func theOperatorGetsAPartysDataKeyOnlyInsideAnAllowedEnclave() async throws {
        let dir = try TestEnvironment.temporaryDirectory("dataset-key-policy")
        defer { try? FileManager.default.removeItem(at: dir) }
        let attestorGood = try LocalKMSTests.attestor(dir, pcr0: Self.good)
        let attestorBad = try LocalKMSTests.attestor(dir, pcr0: Self.bad)
        try await LocalKMSTests.withKMS(attestor: attestorGood) { kms, _ in
            let operatorRoot = kms.defaultCaller
            #expect(operatorRoot.principalArn == DatasetKeyPolicy.accountRoot(Self.account))
            // The party creates its key with the policy, and uses it.
            let key = try kms.createKey(.init(description: "alpha", policy: try Self.policy(images: [Self.good]).document), caller: Self.party)
                .keyMetadata.arn
            let dk = try kms.generateDataKey(.init(keyId: key, numberOfBytes: 32, encryptionContext: Self.context), caller: Self.party)
            let blob = dk.ciphertextBlob
            let plaintext = try #require(dk.plaintext)
            #expect(try kms.decrypt(.init(ciphertextBlob: blob, encryptionContext: Self.context), caller: Self.party).plaintext == plaintext)

            func refused(_ what: String, _ call: () throws -> Void) {
                do {
                    try call()
                    Issue.record("\(what) was allowed")
                } catch let error as KMSError {
                    #expect(error.code == "AccessDeniedException", "\(what): \(error)")
                } catch {
                    Issue.record("\(what): \(error)")
                }
            }
            // The operator: no plaintext Decrypt, no re-encryption under a key it holds, no policy rewrite, no new data keys.
            let operatorKey = try kms.createKey(.init(description: "operator's own"), caller: operatorRoot).keyMetadata.arn
            refused("the operator's Decrypt without Recipient") {
                _ = try kms.decrypt(.init(ciphertextBlob: blob, encryptionContext: Self.context), caller: operatorRoot)
            }
            refused("the operator's ReEncrypt") {
                _ = try kms.reEncrypt(
                    .init(ciphertextBlob: blob, sourceEncryptionContext: Self.context, destinationKeyId: operatorKey), caller: operatorRoot)
            }
            refused("the operator's PutKeyPolicy") {
                try kms.putKeyPolicy(.init(keyId: key, policy: KMSKeyPolicy.defaultPolicy(accountId: Self.account)), caller: operatorRoot)
            }
            refused("the operator's GenerateDataKey") {
                _ = try kms.generateDataKey(.init(keyId: key, numberOfBytes: 32, encryptionContext: Self.context), caller: operatorRoot)
            }
            refused("another party's Decrypt") {
                _ = try kms.decrypt(.init(ciphertextBlob: blob, encryptionContext: Self.context), caller: Self.otherParty)
            }

            // With an attested Recipient of the allowed image: CMS only that enclave opens.
            let enclaveKey = try RSA.PrivateKey(bits: 2048)
            let spki = try enclaveKey.publicKey.derRepresentation
            let goodDocument = Data(try attestorGood.attestationDocument(publicKey: spki, userData: nil, nonce: nil))
            let badDocument = Data(try attestorBad.attestationDocument(publicKey: spki, userData: nil, nonce: nil))
            func release(_ document: Data) throws -> KMSWire.DecryptResponse {
                try kms.decrypt(
                    .init(ciphertextBlob: blob, keyId: key, encryptionContext: Self.context, recipient: .init(attestationDocument: document)),
                    caller: operatorRoot)
            }
            let answer = try release(goodDocument)
            #expect(answer.plaintext == nil)
            let cms = try #require(answer.ciphertextForRecipient)
            #expect(try CMS.EnvelopedData(berEncoded: Array(cms)).decrypt(with: enclaveKey) == SecureBytes(Array(plaintext)))
            refused("release to an image the party did not allow") { _ = try release(badDocument) }

            // The party withdraws the image: nothing is released any more.
            var withdrawn = try Self.policy(images: [Self.good])
            try withdrawn.disallow([hexString(Self.good)])
            try kms.putKeyPolicy(.init(keyId: key, policy: withdrawn.document), caller: Self.party)
            refused("release after the image was withdrawn") { _ = try release(goodDocument) }
        }
    }

    /// The CloudFormation templates in `infrastructure/` write exactly the policies the code writes
    /// (the CLI's dataset key, the embedded KMS's checkpoint key).
    @Test func theInfrastructureTemplatesWriteTheSamePolicies() throws {
        let images = [hexString(Self.good), hexString(Self.bad)]
        let releaser = "arn:aws:iam::111122223333:role/cleanroomd"
        func keyPolicy(_ template: String, _ parameters: [String: Any]) throws -> Any {
            let url = TestEnvironment.repoRoot.appendingPathComponent("infrastructure/\(template)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
            let declared = try #require(object["Parameters"] as? [String: Any])
            #expect(Set(declared.keys).subtracting(["AliasName"]) == Set(parameters.keys))
            let resources = try #require(object["Resources"] as? [String: Any])
            let key = try #require(resources.values.compactMap { $0 as? [String: Any] }.first { $0["Type"] as? String == "AWS::KMS::Key" })
            let properties = try #require(key["Properties"] as? [String: Any])
            // Resolve the intrinsic functions the policies use: Ref and Fn::Sub of the account id.
            func resolve(_ value: Any) -> Any {
                if let map = value as? [String: Any] {
                    if map.count == 1, let name = map["Ref"] as? String { return parameters[name] ?? "unresolved \(name)" }
                    if map.count == 1, let text = map["Fn::Sub"] as? String {
                        return text.replacingOccurrences(of: "${AWS::AccountId}", with: Self.account)
                    }
                    return map.mapValues(resolve)
                }
                if let list = value as? [Any] { return list.map(resolve) }
                return value
            }
            let resolved = resolve(try #require(properties["KeyPolicy"]))
            // The local KMS reads it as a policy.
            _ = try KMSKeyPolicy(json: String(decoding: try JSONSerialization.data(withJSONObject: resolved), as: UTF8.self))
            return resolved
        }
        func same(_ a: Any, _ b: String) throws -> Bool {
            let canonical = { (value: Any) in try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]) }
            return try canonical(a) == canonical(try JSONSerialization.jsonObject(with: Data(b.utf8)))
        }
        let dataset = try keyPolicy("dataset-key.json", ["KeyReleasePrincipal": releaser, "EnclaveImages": images])
        let expected = try DatasetKeyPolicy(owner: DatasetKeyPolicy.accountRoot(Self.account), keyReleasePrincipal: releaser, enclaveImages: images)
        #expect(try same(dataset, expected.document))
        let checkpoint = try keyPolicy("checkpoint-key.json", ["EnclaveImages": images])
        #expect(try same(checkpoint, LocalKMS.checkpointKeyPolicy(accountId: Self.account, enclaveImages: images)))
    }
}
