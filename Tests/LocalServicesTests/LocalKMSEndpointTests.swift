import AWS
import Attestation
import Crypto
import Foundation
import HTTPServer
import Server
import Testing
import TestSupport

@testable import LocalServices

/// The local KMS endpoint behind a real HTTP server on loopback, driven by real clients:
/// boto3, the AWS Encryption SDK for Python (KMS keyring and KMS master key provider) and our
/// own `AWSKMSClient`.
@Suite(.serialized)
struct LocalKMSEndpointTests {
    static let accessKeyId = "AKIALOCALOPERATOR001"
    static let secret = "local/operator/secret/key/for/tests/000"

    final class Harness: @unchecked Sendable {
        let dir: URL
        let kms: LocalKMS
        let server: HTTPServer
        let attestor: DevelopmentAttestor
        var endpoint: String { "http://127.0.0.1:\(server.port)" }

        init() throws {
            dir = try TestEnvironment.temporaryDirectory("lkms-ep")
            attestor = DevelopmentAttestor(
                ca: try DevelopmentCA.openOrCreate(dataDirectory: dir.path),
                measurements: DevelopmentMeasurements(pcr0: [UInt8](repeating: 0xab, count: 48)))
            kms = try LocalKMS(
                directory: dir.appendingPathComponent("kms"),
                attestationVerifier: AttestationVerifier(trustedRoots: [attestor.trustedRoot]))
            let directory = StaticAccessKeyDirectory([
                AccessKeyRecord(accessKeyId: LocalKMSEndpointTests.accessKeyId, secretAccessKey: LocalKMSEndpointTests.secret, principal: kms.defaultCaller)
            ])
            let router = Router()
            router.register(KMSRoutes(endpoint: LocalKMSEndpoint(kms: kms, directory: directory)))
            server = try HTTPServer(configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, eventLoops: 1), router: router)
            try server.start()
        }

        func stop() async {
            await server.shutdown()
            try? FileManager.default.removeItem(at: dir)
        }

        /// Runs Python with the operator's key and `AWS_ENDPOINT_URL_KMS` pointing at us.
        func python(_ script: String, _ args: [String] = [], secret: String = LocalKMSEndpointTests.secret) async throws
            -> (status: Int32, stdout: String, stderr: String)
        {
            try await ChildProcess.pythonOffPool(
                "import boto3, botocore, json, sys, base64\n"
                    + "kms = boto3.client('kms', endpoint_url='\(endpoint)', region_name='us-east-1')\n" + script, args,
                environment: [
                    "AWS_ACCESS_KEY_ID": LocalKMSEndpointTests.accessKeyId, "AWS_SECRET_ACCESS_KEY": secret,
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_KMS": endpoint, "AWS_SESSION_TOKEN": "",
                    "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                ])
        }
    }

    @Test func boto3RoundTripsAndRefusalsCarryKMSErrorCodes() async throws {
        let h = try Harness()
        defer { Task { await h.stop() } }
        let r = try await h.python(
            """
            out = {}
            key = kms.create_key(Description="boto3 key")["KeyMetadata"]
            out["arn"] = key["Arn"]
            ctx = {"cleanroom:dataset": "d1", "cleanroom:party": "p1"}
            dk = kms.generate_data_key(KeyId=key["Arn"], NumberOfBytes=32, EncryptionContext=ctx)
            back = kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx, KeyId=key["KeyId"])
            out["roundtrip"] = back["Plaintext"] == dk["Plaintext"] and len(dk["Plaintext"]) == 32
            enc = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"hello", EncryptionContext=ctx)
            out["encrypt"] = kms.decrypt(CiphertextBlob=enc["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == b"hello"
            key2 = kms.create_key()["KeyMetadata"]
            re = kms.re_encrypt(CiphertextBlob=enc["CiphertextBlob"], SourceEncryptionContext=ctx, DestinationKeyId=key2["KeyId"])
            out["reencrypt"] = re["KeyId"] == key2["Arn"] and kms.decrypt(CiphertextBlob=re["CiphertextBlob"])["Plaintext"] == b"hello"
            out["describe"] = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"]
            def code(f):
                try:
                    f(); return "accepted"
                except botocore.exceptions.ClientError as e:
                    return e.response["Error"]["Code"]
            out["unknownKey"] = code(lambda: kms.generate_data_key(KeyId="11111111-2222-3333-4444-555555555555", NumberOfBytes=32))
            out["wrongContext"] = code(lambda: kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"cleanroom:dataset": "d2", "cleanroom:party": "p1"}))
            print(json.dumps(out))
            """)
        #expect(r.status == 0, "\(r.stderr)")
        let out = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(out["roundtrip"] as? Bool == true)
        #expect(out["encrypt"] as? Bool == true)
        #expect(out["reencrypt"] as? Bool == true)
        #expect(out["describe"] as? String == "Enabled")
        #expect(out["unknownKey"] as? String == "NotFoundException")
        #expect(out["wrongContext"] as? String == "InvalidCiphertextException")

        // A wrong secret: the signature does not verify.
        let bad = try await h.python(
            """
            try:
                kms.list_keys() if False else kms.create_key(); print("accepted")
            except botocore.exceptions.ClientError as e:
                print(e.response["Error"]["Code"])
            """, secret: "not-the-secret")
        #expect(bad.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "InvalidSignatureException", "\(bad.stderr)")
        await h.stop()
    }

    @Test func theEncryptionSDKKeyringAndMasterKeyProviderWorkUnchanged() async throws {
        let h = try Harness()
        let key = try h.kms.createKey(description: "esdk")
        let r = try await h.python(
            """
            import aws_encryption_sdk
            from aws_encryption_sdk import CommitmentPolicy
            from aws_cryptographic_material_providers.mpl import AwsCryptographicMaterialProviders
            from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig
            from aws_cryptographic_material_providers.mpl.models import CreateAwsKmsKeyringInput
            arn = sys.argv[1]
            client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
            mpl = AwsCryptographicMaterialProviders(config=MaterialProvidersConfig())
            keyring = mpl.create_aws_kms_keyring(input=CreateAwsKmsKeyringInput(kms_key_id=arn, kms_client=kms))
            ctx = {"cleanroom:dataset": "d1", "cleanroom:party": "p1", "cleanroom:owner-key": "ab"}
            ct, _ = client.encrypt(source=b"a,b\\n1,2\\n", keyring=keyring, encryption_context=ctx)
            # Decrypt with the classic KMS master key provider (it builds its own boto client from the environment).
            mkp = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[arn])
            pt, hdr = client.decrypt(source=ct, key_provider=mkp)
            pt2, _ = client.decrypt(source=ct, keyring=keyring)
            print(json.dumps({"ok": pt == b"a,b\\n1,2\\n" and pt2 == pt, "ct": base64.b64encode(ct).decode()}))
            """, [key.arn])
        await h.stop()
        #expect(r.status == 0, "\(r.stderr)")
        let out = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(out["ok"] as? Bool == true)
    }

    @Test func aPolicyDeniedRecipientIsRefusedAndAnAllowedOneGetsOnlyCMS() async throws {
        let h = try Harness()
        let good = "ab" + String(repeating: "ab", count: 47)
        let policy = """
            {"Version":"2012-10-17","Statement":[
              {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"NotAction":"kms:Decrypt","Resource":"*"},
              {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kms:Decrypt","Resource":"*",
               "Condition":{"StringEqualsIgnoreCase":{"kms:RecipientAttestation:ImageSha384":"\(good.uppercased())"}}}]}
            """
        let allowed = try h.kms.createKey(policy: policy)
        let denied = try h.kms.createKey(policy: policy.replacingOccurrences(of: good.uppercased(), with: String(repeating: "CD", count: 48)))
        let enclaveKey = try RSA.PrivateKey(bits: 2048)
        let doc = try h.attestor.attestationDocument(publicKey: try enclaveKey.publicKey.derRepresentation, userData: nil, nonce: nil)
        let r = try await h.python(
            """
            doc = bytes.fromhex(sys.argv[3]); ctx = {"cleanroom:dataset": "d1"}
            out = {}
            for name, arn in (("allowed", sys.argv[1]), ("denied", sys.argv[2])):
                dk = kms.generate_data_key(KeyId=arn, NumberOfBytes=32, EncryptionContext=ctx)
                try:
                    a = kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx,
                                    Recipient={"AttestationDocument": doc, "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"})
                    out[name] = {"plaintext": "Plaintext" in a, "cms": base64.b64encode(a["CiphertextForRecipient"]).decode(),
                                 "key": base64.b64encode(dk["Plaintext"]).decode()}
                except botocore.exceptions.ClientError as e:
                    out[name] = {"error": e.response["Error"]["Code"]}
            print(json.dumps(out))
            """, [allowed.arn, denied.arn, doc.map { String(format: "%02x", $0) }.joined()])
        await h.stop()
        #expect(r.status == 0, "\(r.stderr)")
        let out = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: [String: Any]] ?? [:]
        #expect(out["denied"]?["error"] as? String == "AccessDeniedException")
        #expect(out["allowed"]?["plaintext"] as? Bool == false)
        let cms = try #require(Data(base64Encoded: out["allowed"]?["cms"] as? String ?? ""))
        let expectedKey = try #require(Data(base64Encoded: out["allowed"]?["key"] as? String ?? ""))
        #expect(try CMS.EnvelopedData(berEncoded: Array(cms)).decrypt(with: enclaveKey) == SecureBytes(Array(expectedKey)))
    }

    @Test func ourAWSKMSClientTalksToTheLocalEndpoint() async throws {
        let h = try Harness()
        let config = AWSConfiguration(
            region: "us-east-1",
            credentials: StaticCredentialsProvider(AWSCredentials(accessKeyId: Self.accessKeyId, secretAccessKey: Self.secret)),
            endpointOverrides: ["kms": h.endpoint])
        let client = try AWSKMSClient(configuration: config)
        let key = try await client.createKey(description: "via client")
        let dk = try await client.generateDataKey(keyID: key.arn, byteCount: 32, encryptionContext: ["a": "b"])
        let back = try await client.decrypt(keyID: key.keyId, ciphertextBlob: dk.ciphertextBlob, encryptionContext: ["a": "b"])
        #expect(back.plaintext == dk.plaintext)
        #expect(try await client.describeKey(keyID: key.keyId).arn == key.arn)
        do {
            _ = try await client.decrypt(keyID: key.keyId, ciphertextBlob: dk.ciphertextBlob, encryptionContext: ["a": "c"])
            Issue.record("mismatched context accepted")
        } catch let e as KMSError { #expect(e.code == "InvalidCiphertextException") }
        await h.stop()
    }
}
