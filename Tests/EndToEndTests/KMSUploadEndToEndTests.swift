import Foundation
import TestSupport
import Testing

/// `cleanroom dataset upload` with client-side encryption: a data key from the party's own key in
/// the server's local KMS (SigV4 with the access key the party got at registration), the CSV
/// streamed through the Encryption SDK encryptor straight into the upload; the key's policy lets
/// the party, not the operator, open what is stored.
@Suite(.serialized) struct KMSUploadEndToEndTests {
    @Test func csvIsEncryptedOnThePartysMachineUnderItsKMSKey() throws {
        let root = try TestEnvironment.temporaryDirectory("e2e-kms-upload")
        defer { try? FileManager.default.removeItem(at: root) }
        let server = try CleanroomdProcess(dataDirectory: root.appendingPathComponent("data"), keepsPort: true)
        try server.start()
        defer { server.stop() }
        let machine = try GovernanceEndToEndTests.onboard("Alpha", server: server, root: root)
        let created = try machine.json(["dataset", "create", "--name", "kms", "--columns", GovernanceEndToEndTests.columns])
        let datasetId = try #require(created["id"] as? String)
        let csv = GovernanceEndToEndTests.csv(rows: 5000, seed: 11)
        let plain = root.appendingPathComponent("alpha.csv")
        try csv.write(to: plain, atomically: true, encoding: .utf8)

        let uploaded = try machine.json(["dataset", "upload", datasetId, plain.path])
        #expect(uploaded["status"] as? String == "available")
        #expect(uploaded["suite"] as? String == "0x0478")
        let context = try #require(uploaded["encryptionContext"] as? [String: String])
        #expect(context["cleanroom:dataset"] == datasetId)
        #expect(context["cleanroom:party"] == machine.partyId)
        #expect(context["cleanroom:owner-key"] == machine.fingerprint)
        // The KMS key was created for the party and remembered.
        let profile = try JSONSerialization.jsonObject(
            with: Data(contentsOf: machine.home.appendingPathComponent("profiles/default.json"))) as! [String: Any]
        #expect((profile["kmsKeyId"] as? String)?.hasPrefix("arn:aws:kms:") == true)
        // What the server stored is ciphertext: no CSV text in any stored object.
        let objects = server.dataDirectory
        let files = (FileManager.default.enumerator(atPath: objects.path)?.allObjects as? [String] ?? [])
        let header = Data("age,length_of_stay".utf8)
        for file in files where !file.hasSuffix(".sqlite") && !file.hasSuffix(".log") {
            let data = (try? Data(contentsOf: objects.appendingPathComponent(file))) ?? Data()
            #expect(data.range(of: header) == nil, "\(file) holds plaintext")
        }
        #expect(uploaded["size"] as? Int ?? 0 > csv.utf8.count)

        // The key's policy (DESIGN §2.4): the party alone uses it; no enclave image is allowed yet.
        let shown = try machine.json(["kms", "show"])
        #expect(shown["managed"] as? Bool == true)
        #expect(shown["owner"] as? String == "arn:aws:iam::000000000000:user/cleanroom/\(machine.partyId)")
        #expect(shown["keyReleasePrincipal"] is NSNull, "nobody may release while no image is allowed")
        #expect((shown["enclaveImages"] as? [String]) == [])
        #expect(!(shown["policy"] as? String ?? "kms:Decrypt").contains("kms:Decrypt"))

        // The stored object, opened with KMS credentials: the party may, the operator (the
        // account root of the embedded KMS) may not, even holding the ciphertext.
        let stored = try #require(
            files.map { objects.appendingPathComponent($0) }.first {
                (try? $0.resourceValues(forKeys: [.fileSizeKey]).fileSize) == uploaded["size"] as? Int
            })
        let operatorKeys = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: objects.appendingPathComponent("operator-credentials.json")))
                as? [String: Any])
        let partyProfile = profile
        func decrypt(as keys: (String, String)) throws -> ProcessResult {
            try CLI.run(
                "cleanroom", ["decrypt", "--kms", "--in", stored.path, "--out", root.appendingPathComponent("opened.csv").path],
                environment: [
                    "AWS_ACCESS_KEY_ID": keys.0, "AWS_SECRET_ACCESS_KEY": keys.1, "AWS_REGION": "us-east-1",
                    "AWS_ENDPOINT_URL_KMS": server.url, "HOME": root.path,
                ], expectStatus: nil)
        }
        let byOperator = try decrypt(as: (operatorKeys["accessKeyId"] as! String, operatorKeys["secretAccessKey"] as! String))
        #expect(byOperator.status == 1)
        #expect(byOperator.stderrText.contains("AccessDeniedException"), "\(byOperator.stderrText)")
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("opened.csv").path))
        let byParty = try decrypt(as: (partyProfile["accessKeyId"] as! String, partyProfile["secretAccessKey"] as! String))
        #expect(byParty.status == 0, "\(byParty.stderrText)")
        #expect(try String(contentsOf: root.appendingPathComponent("opened.csv"), encoding: .utf8) == csv)

        // Images are added and removed by the party; a debug enclave's all-zero PCR0 never is.
        let image = String(repeating: "ab", count: 48)
        let allowed = try machine.json(["kms", "allow-image", image.uppercased()])
        #expect(allowed["added"] as? [String] == [image])
        let withImage = try machine.json(["kms", "show"])
        #expect(withImage["enclaveImages"] as? [String] == [image])
        #expect(withImage["keyReleasePrincipal"] as? String == "arn:aws:iam::000000000000:root")
        let debug = try machine.cli(["kms", "allow-image", String(repeating: "0", count: 96)], expectStatus: 2)
        #expect(debug.stderrText.contains("debug-mode"))
        #expect(try machine.json(["kms", "remove-image", image])["removed"] as? [String] == [image])
        #expect(try machine.json(["kms", "show"])["enclaveImages"] as? [String] == [])
        // Image flags at upload only apply to a key being created.
        let misplaced = try machine.cli(["dataset", "upload", datasetId, plain.path, "--enclave-image", image], expectStatus: 2)
        #expect(misplaced.stderrText.contains("kms allow-image"))

        // A policy the party writes itself (here with boto3, as with AWS's own tools) is never rewritten.
        let keyId = try #require(partyProfile["kmsKeyId"] as? String)
        let own = #"{"Version":"2012-10-17","Statement":[{"Sid":"Mine","Effect":"Allow","Principal":{"AWS":"OWNER"},"Action":"kms:*","Resource":"*"}]}"#
            .replacingOccurrences(of: "OWNER", with: "arn:aws:iam::000000000000:user/cleanroom/\(machine.partyId)")
        let put = try ProcessRunner.python(
            """
            import boto3, sys
            kms = boto3.client("kms", endpoint_url=sys.argv[1], region_name="us-east-1",
                               aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
            kms.put_key_policy(KeyId=sys.argv[4], PolicyName="default", Policy=sys.argv[5])
            print(kms.get_key_policy(KeyId=sys.argv[4], PolicyName="default")["Policy"])
            """,
            [server.url, partyProfile["accessKeyId"] as! String, partyProfile["secretAccessKey"] as! String, keyId, own])
        #expect(put.status == 0, "\(put.stdoutText) \(put.stderrText)")
        #expect(try machine.json(["kms", "show"])["managed"] as? Bool == false)
        let refusedEdit = try machine.cli(["kms", "allow-image", image], expectStatus: 1)
        #expect(refusedEdit.stderrText.contains("not written by cleanroom"))
    }

    /// The embedded KMS named another way (`localhost`, a trailing slash) is still the embedded
    /// KMS: the key belongs to the party's own principal, not to the operator's account root.
    @Test func theEmbeddedKMSIsRecognisedUnderAnotherNameForTheServer() throws {
        let root = try TestEnvironment.temporaryDirectory("e2e-kms-alias")
        defer { try? FileManager.default.removeItem(at: root) }
        let server = try CleanroomdProcess(dataDirectory: root.appendingPathComponent("data"), keepsPort: true)
        try server.start()
        defer { server.stop() }
        let machine = try GovernanceEndToEndTests.onboard("Beta", server: server, root: root)
        let created = try machine.json(["dataset", "create", "--name", "alias", "--columns", GovernanceEndToEndTests.columns])
        let datasetId = try #require(created["id"] as? String)
        let plain = root.appendingPathComponent("beta.csv")
        try GovernanceEndToEndTests.csv(rows: 50, seed: 3).write(to: plain, atomically: true, encoding: .utf8)
        let alias = server.url.replacingOccurrences(of: "127.0.0.1", with: "localhost") + "/"
        let uploaded = try machine.json(["dataset", "upload", datasetId, plain.path, "--kms-endpoint", alias])
        #expect(uploaded["status"] as? String == "available")
        let shown = try machine.json(["kms", "show"])
        #expect(shown["managed"] as? Bool == true)
        #expect(shown["owner"] as? String == "arn:aws:iam::000000000000:user/cleanroom/\(machine.partyId)")
    }
}
