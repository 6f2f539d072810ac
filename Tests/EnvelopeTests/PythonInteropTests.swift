import Crypto
import Foundation
import Testing
import TestSupport

@testable import Envelope

/// Interop proof, second half: AWS's Python Encryption SDK (4.x with the MPL raw keyrings)
/// decrypts messages we write and writes messages we decrypt — both suites, raw RSA and raw AES
/// keyrings, sizes 0, 1, frame − 1, exact frame multiples and a few MiB.
@Suite struct PythonInteropTests {
    /// One round of the exchange. Input: a JSON manifest of cases; for each case Python decrypts
    /// `ours` (our ciphertext) into `ours.pt` and encrypts `plain` into `theirs`.
    static let peer = #"""
        import json, sys
        import aws_encryption_sdk
        from aws_encryption_sdk import CommitmentPolicy
        from aws_encryption_sdk.identifiers import AlgorithmSuite
        from aws_cryptographic_material_providers.mpl import AwsCryptographicMaterialProviders
        from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig
        from aws_cryptographic_material_providers.mpl.models import (
            AesWrappingAlg, CreateRawAesKeyringInput, CreateRawRsaKeyringInput, PaddingScheme)

        manifest = json.load(open(sys.argv[1]))
        client = aws_encryption_sdk.EncryptionSDKClient(
            commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
        mpl = AwsCryptographicMaterialProviders(config=MaterialProvidersConfig())
        keys = manifest["keys"]
        aes = mpl.create_raw_aes_keyring(input=CreateRawAesKeyringInput(
            key_namespace=keys["namespace"], key_name=keys["aes-name"],
            wrapping_key=open(keys["aes"], "rb").read(), wrapping_alg=AesWrappingAlg.ALG_AES256_GCM_IV12_TAG16))
        rsa = mpl.create_raw_rsa_keyring(input=CreateRawRsaKeyringInput(
            key_namespace=keys["namespace"], key_name=keys["rsa-name"], padding_scheme=PaddingScheme.OAEP_SHA256_MGF1,
            public_key=open(keys["rsa-public"], "rb").read(), private_key=open(keys["rsa-private"], "rb").read()))
        suites = {"0x0478": AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
                  "0x0578": AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384}
        context = manifest["context"]
        report = {}
        for case in manifest["cases"]:
            keyring = aes if case["keyring"] == "aes" else rsa
            plaintext, header = client.decrypt(source=open(case["ours"], "rb").read(), keyring=keyring)
            open(case["ours"] + ".pt", "wb").write(plaintext)
            ok_context = all(header.encryption_context.get(k) == v for k, v in context.items())
            ciphertext, _ = client.encrypt(
                source=open(case["plain"], "rb").read(), keyring=keyring, encryption_context=context,
                algorithm=suites[case["suite"]], frame_length=case["frame"])
            open(case["theirs"], "wb").write(ciphertext)
            report[case["name"]] = {"suite": "0x%04x" % header.algorithm.algorithm_id, "context": ok_context}
        json.dump(report, sys.stdout)
        """#

    struct Case {
        let name: String
        let suite: AlgorithmSuite
        let keyring: String
        let size: Int
        let frame: Int
    }

    static var cases: [Case] {
        var cases: [Case] = []
        for suite in AlgorithmSuite.encryptable {
            for keyring in ["aes", "rsa"] {
                let frame = 1024
                for size in [0, 1, frame - 1, frame, 2 * frame, 3 * frame + 7] {
                    cases.append(Case(name: "\(suite)-\(keyring)-\(size)", suite: suite, keyring: keyring, size: size, frame: frame))
                }
                let big = 2 * 1024 * 1024 + 5
                cases.append(Case(name: "\(suite)-\(keyring)-\(big)", suite: suite, keyring: keyring, size: big, frame: 65536))
            }
        }
        return cases
    }

    @Test func pythonSDKDecryptsOursAndWeDecryptTheirs() async throws {
        let directory = try TestEnvironment.temporaryDirectory("envelope-interop")
        defer { try? FileManager.default.removeItem(at: directory) }
        let namespace = "cleanroom-interop", aesName = "aes-key", rsaName = "rsa-key"
        let aesKey = try SecureBytes(randomCount: 32)
        let rsaKey = try RSA.PrivateKey(bits: 2048)
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        try Data(aesKey.copyBytes()).write(to: URL(fileURLWithPath: path("aes.key")))
        try Data(rsaKey.pemRepresentation.copyBytes()).write(to: URL(fileURLWithPath: path("rsa.pem")))
        try Data(try rsaKey.publicKey.pemRepresentation.utf8).write(to: URL(fileURLWithPath: path("rsa.pub")))
        let keyrings: [String: any Keyring] = [
            "aes": try RawAESKeyring(keyNamespace: namespace, keyName: aesName, wrappingKey: aesKey),
            "rsa": try RawRSAKeyring(keyNamespace: namespace, keyName: rsaName, privateKey: rsaKey),
        ]
        let context = try EncryptionContext([("cleanroom:dataset", "ds-1"), ("cleanroom:party", "p-ü")])

        var manifestCases: [[String: Any]] = []
        var plaintexts: [String: [UInt8]] = [:]
        for testCase in Self.cases {
            let plaintext = (0..<testCase.size).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ testCase.size) }
            plaintexts[testCase.name] = plaintext
            let ciphertext = try await MessageEncryptor.encrypt(
                plaintext, keyring: keyrings[testCase.keyring]!, encryptionContext: context, suite: testCase.suite,
                frameLength: testCase.frame)
            try Data(plaintext).write(to: URL(fileURLWithPath: path(testCase.name + ".plain")))
            try Data(ciphertext).write(to: URL(fileURLWithPath: path(testCase.name + ".ours")))
            manifestCases.append([
                "name": testCase.name, "suite": testCase.suite.description, "keyring": testCase.keyring,
                "frame": testCase.frame, "plain": path(testCase.name + ".plain"), "ours": path(testCase.name + ".ours"),
                "theirs": path(testCase.name + ".theirs"),
            ])
        }
        let manifest: [String: Any] = [
            "keys": [
                "namespace": namespace, "aes-name": aesName, "rsa-name": rsaName, "aes": path("aes.key"),
                "rsa-private": path("rsa.pem"), "rsa-public": path("rsa.pub"),
            ],
            "context": context.dictionary, "cases": manifestCases,
        ]
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: path("manifest.json")))

        let result = try ProcessRunner.python(Self.peer, [path("manifest.json")])
        try #require(result.status == 0, "Python SDK failed: \(result.stderrText)")
        let report = try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: [String: Any]])
        #expect(report.count == Self.cases.count)

        for testCase in Self.cases {
            let expected = plaintexts[testCase.name]!
            // Python decrypted ours.
            let theirPlaintext = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(testCase.name + ".ours.pt"))))
            #expect(theirPlaintext == expected, "Python decrypting our \(testCase.name)")
            #expect(report[testCase.name]?["suite"] as? String == testCase.suite.description)
            #expect(report[testCase.name]?["context"] as? Bool == true)
            // We decrypt theirs, in uneven chunks.
            let theirs = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(testCase.name + ".theirs"))))
            let (plaintext, verified) = try await decryptInChunks(
                theirs, keyring: keyrings[testCase.keyring]!, chunks: Array(repeating: 7919, count: theirs.count / 7919 + 1),
                policy: DecryptionPolicy(requiredEncryptionContext: context))
            #expect(plaintext == expected, "decrypting Python's \(testCase.name)")
            #expect(verified.suite == testCase.suite)
            #expect(verified.signatureVerified == testCase.suite.isSigned)
            #expect(verified.header.frameLength == UInt32(testCase.frame))
        }
    }
}
