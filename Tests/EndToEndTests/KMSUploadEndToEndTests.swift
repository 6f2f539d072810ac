import Foundation
import TestSupport
import Testing

/// `cleanroom dataset upload` with client-side encryption: a data key from the party's own key in
/// the server's local KMS (SigV4 with the access key the party got at registration), the CSV
/// streamed through the Encryption SDK encryptor straight into the upload.
@Suite(.serialized) struct KMSUploadEndToEndTests {
    @Test func csvIsEncryptedOnThePartysMachineUnderItsKMSKey() throws {
        let root = try TestEnvironment.temporaryDirectory("e2e-kms-upload")
        defer { try? FileManager.default.removeItem(at: root) }
        let server = try CleanroomdProcess(dataDirectory: root.appendingPathComponent("data"))
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
    }
}
