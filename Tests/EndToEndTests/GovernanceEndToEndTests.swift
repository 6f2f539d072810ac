import Foundation
import TestSupport
import Testing

/// Issue #6 end to end, through real processes: `cleanroomd serve`, the `cleanroom` CLI, and the
/// Python Encryption SDK encrypting each party's CSV on "its own machine".
@Suite(.serialized) struct GovernanceEndToEndTests {
    /// Encrypts `csv` with AWS's Python Encryption SDK (suite 0x0478, raw AES key) and the given context.
    static let encryptScript = """
        import sys, json, os
        import aws_encryption_sdk
        from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy, EncryptionKeyType, WrappingAlgorithm
        from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
        from aws_encryption_sdk.key_providers.raw import RawMasterKeyProvider
        class Keys(RawMasterKeyProvider):
            provider_id = "party-local"
            def __init__(self, **kwargs):
                self._key = os.urandom(32)
            def _get_raw_key(self, key_id):
                return WrappingKey(wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
                                   wrapping_key=self._key, wrapping_key_type=EncryptionKeyType.SYMMETRIC)
        provider = Keys()
        provider.add_master_key(b"data-key-wrapper")
        client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
        context = json.loads(sys.argv[3])
        with open(sys.argv[1], "rb") as src:
            ciphertext, _ = client.encrypt(source=src.read(), key_provider=provider, encryption_context=context,
                                           algorithm=Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, frame_length=4096)
        with open(sys.argv[2], "wb") as dst:
            dst.write(ciphertext)
        """

    struct PartyMachine {
        let name: String
        let home: URL
        let server: String
        var partyId = ""
        var fingerprint = ""

        func cli(_ arguments: [String], expectStatus: Int32? = 0) throws -> ProcessResult {
            try CLI.run("cleanroom", arguments + ["--home", home.path], environment: ["CLEANROOM_SERVER": server], expectStatus: expectStatus)
        }

        func json(_ arguments: [String]) throws -> [String: Any] {
            try CLI.json(try cli(arguments + ["--json"]))
        }
    }

    static let columns = "age:integer,length_of_stay:float,prior_admissions:integer,diabetic:boolean,hba1c:float?,readmitted_30d:boolean"

    static func csv(rows: Int, seed: Int) -> String {
        var lines = ["age,length_of_stay,prior_admissions,diabetic,hba1c,readmitted_30d"]
        var state = UInt64(seed)
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 33)
        }
        for _ in 0..<rows {
            lines.append("\(20 + next() % 70),\(Double(next() % 200) / 10),\(next() % 5),\(next() % 2 == 0),\(next() % 7 == 0 ? "" : String(Double(50 + next() % 60) / 10)),\(next() % 3 == 0)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Registers a party through the CLI with an enrollment token from `cleanroomd admin enroll`.
    static func onboard(_ name: String, server: CleanroomdProcess, root: URL) throws -> PartyMachine {
        var machine = PartyMachine(name: name, home: root.appendingPathComponent(name), server: server.url)
        let token = try CLI.run("cleanroomd", ["admin", "enroll", "--data-dir", server.dataDirectory.path]).stdoutText
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let keys = try machine.json(["keys", "init", "--result-key-bits", "3072"])
        machine.fingerprint = try #require(keys["signingKeyFingerprint"] as? String)
        let registered = try machine.json(["register", "--token", token, "--name", name])
        machine.partyId = try #require((registered["party"] as? [String: Any])?["id"] as? String)
        // The profile holding the credential is private to the user.
        let profile = machine.home.appendingPathComponent("profiles/default.json").path
        let mode = try FileManager.default.attributesOfItem(atPath: profile)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        return machine
    }

    /// Creates a dataset and uploads `csv`: encrypted by the CLI itself under the party's KMS key
    /// (`viaKMS`), or by AWS's Python Encryption SDK and uploaded with `--ciphertext`.
    static func upload(_ machine: PartyMachine, csv: String, root: URL, viaKMS: Bool = false) throws -> String {
        if viaKMS {
            let created = try machine.json(["dataset", "create", "--name", "admissions-2024", "--columns", columns])
            let datasetId = try #require(created["id"] as? String)
            let plain = root.appendingPathComponent("\(machine.name).csv")
            try csv.write(to: plain, atomically: true, encoding: .utf8)
            let uploaded = try machine.json(["dataset", "upload", datasetId, plain.path])
            #expect(uploaded["status"] as? String == "available")
            #expect((uploaded["encryptionContext"] as? [String: String])?["cleanroom:owner-key"] == machine.fingerprint)
            return datasetId
        }
        let (datasetId, sealed) = try sealedDataset(machine, csv: csv, name: "admissions-2024", root: root)
        let uploaded = try machine.json(["dataset", "upload", datasetId, sealed.path, "--ciphertext"])
        #expect(uploaded["status"] as? String == "available")
        #expect(uploaded["size"] as? Int == (try Data(contentsOf: sealed)).count)
        return datasetId
    }

    /// Creates a dataset named `name` and encrypts `csv` for it with AWS's Python Encryption SDK,
    /// under the encryption context the server requires; returns its id and the ciphertext's file.
    static func sealedDataset(_ machine: PartyMachine, csv: String, name: String, root: URL) throws -> (id: String, sealed: URL) {
        let created = try machine.json(["dataset", "create", "--name", name, "--columns", columns])
        let datasetId = try #require(created["id"] as? String)
        let plain = root.appendingPathComponent("\(machine.name)-\(name).csv")
        let sealed = root.appendingPathComponent("\(machine.name)-\(name).esdk")
        try csv.write(to: plain, atomically: true, encoding: .utf8)
        let context = try JSONSerialization.data(withJSONObject: [
            "cleanroom:dataset": datasetId, "cleanroom:party": machine.partyId, "cleanroom:owner-key": machine.fingerprint,
        ])
        let encrypted = try ProcessRunner.python(encryptScript, [plain.path, sealed.path, String(decoding: context, as: UTF8.self)])
        #expect(encrypted.status == 0, "\(encrypted.stderrText)")
        return (datasetId, sealed)
    }

    /// Onboards St Mary, Riverside and Northgate, each uploading `rows` rows (through the CLI under
    /// its KMS key when `viaKMS(index)`, else with AWS's Python SDK); their machines and dataset ids.
    static func threeHospitals(
        server: CleanroomdProcess, root: URL, rows: Int, viaKMS: (Int) -> Bool
    ) throws -> (machines: [PartyMachine], datasets: [String]) {
        var machines: [PartyMachine] = []
        var datasets: [String] = []
        for (i, name) in ["St Mary", "Riverside", "Northgate"].enumerated() {
            let machine = try onboard(name, server: server, root: root)
            datasets.append(try upload(machine, csv: csv(rows: rows, seed: i + 1), root: root, viaKMS: viaKMS(i)))
            machines.append(machine)
        }
        return (machines, datasets)
    }

    /// The hospitals example policy with the parties and datasets the server assigned; each party
    /// receives the model and the metrics.
    static func hospitalsPolicy(_ machines: [PartyMachine], datasets: [String]) throws -> [String: Any] {
        var policy = try JSONSerialization.jsonObject(
            with: Data(contentsOf: TestEnvironment.repoRoot.appendingPathComponent("policies/examples/hospitals-union.json")))
            as! [String: Any]
        policy["parties"] = machines.map { ["id": $0.partyId] }
        var datasetEntries = policy["datasets"] as! [[String: Any]]
        for i in datasetEntries.indices {
            datasetEntries[i]["id"] = datasets[i]
            datasetEntries[i]["owner"] = machines[i].partyId
        }
        policy["datasets"] = datasetEntries
        policy["outputs"] = machines.map { ["recipient": $0.partyId, "artifacts": ["model", "metrics"]] }
        return policy
    }

    @Test func threePartiesRegisterUploadOneProposesAllApprove() throws {
        let root = try TestEnvironment.temporaryDirectory("e2e-governance")
        defer { try? FileManager.default.removeItem(at: root) }
        let server = try CleanroomdProcess(dataDirectory: root.appendingPathComponent("data"), keepsPort: true)
        try server.start()
        defer { server.stop() }

        // Two parties encrypt with the CLI under their KMS keys, one with AWS's Python SDK.
        let (machines, datasets) = try Self.threeHospitals(server: server, root: root, rows: 200, viaKMS: { $0 < 2 })

        // The hospitals example, with the ids the server assigned.
        var policy = try Self.hospitalsPolicy(machines, datasets: datasets)
        let policyFile = root.appendingPathComponent("policy.json")
        try JSONSerialization.data(withJSONObject: policy, options: [.prettyPrinted]).write(to: policyFile)

        // Refusals read as one line each (the detail that repeats the message is not printed again),
        // and a policy the trainer would refuse is refused now, not when a job runs.
        var broken = policy
        var parties = try #require(broken["parties"] as? [[String: Any]])
        parties[1]["id"] = "nobody"
        broken["parties"] = parties
        let brokenFile = root.appendingPathComponent("broken-policy.json")
        try JSONSerialization.data(withJSONObject: broken).write(to: brokenFile)
        let unknownParty = try machines[0].cli(["policy", "propose", brokenFile.path], expectStatus: 1)
        #expect(
            unknownParty.stderrText == "error: unknown_party: parties[1].id names nobody, which is not an active registered party\n",
            "\(unknownParty.stderrText)")
        broken = policy
        var training = try #require(broken["training"] as? [String: Any])
        training["hyperparameters"] = ["l2": 1.0]
        broken["training"] = training
        try JSONSerialization.data(withJSONObject: broken).write(to: brokenFile)
        let unknownParameter = try machines[0].cli(["policy", "propose", brokenFile.path], expectStatus: 1)
        #expect(
            unknownParameter.stderrText
                == "error: invalid_policy: the policy's training section cannot run: invalid_parameter: unknown parameter 'l2'\n",
            "\(unknownParameter.stderrText)")

        let proposed = try machines[0].json(["policy", "propose", policyFile.path])
        let collaboration = try #require(proposed["id"] as? String)
        let digest = try #require(proposed["digest"] as? String)

        // Usage errors, refused before anything is signed or shown: a lifetime out of range, and no
        // --yes where nobody can answer the question (the tests' stdin is not a terminal).
        let zeroDays = try machines[1].cli(["policy", "approve", collaboration, "--yes", "--expires-in", "0"], expectStatus: 2)
        #expect(zeroDays.stderrText.contains("--expires-in is a number of days from 1 to 3650"), "\(zeroDays.stderrText)")
        let zeroDaysJSON = try machines[1].cli(
            ["policy", "approve", collaboration, "--yes", "--expires-in", "0", "--json"], expectStatus: 2)
        #expect(
            zeroDaysJSON.stdoutText == #"{"error":{"code":"usage","message":"--expires-in is a number of days from 1 to 3650, not 0"}}"# + "\n",
            "\(zeroDaysJSON.stdoutText)")
        let unattended = try machines[1].cli(["policy", "approve", collaboration], expectStatus: 2)
        #expect(unattended.stdoutText.isEmpty && unattended.stderrText.contains("pass --yes"), "\(unattended.stderrText)")

        // Each party reads the summary and approves with its own key.
        let shown = try machines[1].cli(["policy", "show", collaboration])
        #expect(shown.stdoutText.contains("Who receives what"))
        #expect(shown.stdoutText.contains(digest))
        for machine in machines {
            let approved = try machine.json(["policy", "approve", collaboration, "--yes", "--digest", digest])
            #expect(approved["partyId"] as? String == machine.partyId)
            #expect(approved["policyDigest"] as? String == digest)
        }
        let state = try machines[2].json(["policy", "show", collaboration])
        let approvals = try #require(state["approvals"] as? [[String: Any]])
        #expect(Set(approvals.compactMap { $0["partyId"] as? String }) == Set(machines.map(\.partyId)))

        // A diff against the proposed file: no differences, only a count of what the server filled
        // in (--all lists those); a real change stands alone.
        let diff = try machines[0].json(["policy", "diff", collaboration, policyFile.path])
        #expect((diff["changes"] as? [Any])?.isEmpty == true, "\(diff)")
        let filled = try #require(diff["filledByServer"] as? [String])
        #expect(filled.contains("parties[0].resultKey") && filled.contains("datasets[0].sha256"), "\(filled)")
        let everything = try machines[0].json(["policy", "diff", collaboration, policyFile.path, "--all"])
        let listed = (everything["changes"] as? [[String: Any]] ?? []).compactMap { $0["path"] as? String }
        #expect(Set(listed) == Set(filled), "\(listed)")
        var revised = policy
        revised["name"] = "a revised name"
        let revisedFile = root.appendingPathComponent("revised-policy.json")
        try JSONSerialization.data(withJSONObject: revised).write(to: revisedFile)
        let one = try machines[0].cli(["policy", "diff", collaboration, revisedFile.path])
        #expect(one.stdoutText.hasPrefix("changed name: "), "\(one.stdoutText)")
        #expect(one.stdoutText.split(separator: "\n").count == 2, "the change and the note: \(one.stdoutText)")

        // Every party verifies the collaboration's audit trail; the operator verifies the whole log.
        for machine in machines {
            let verified = try machine.json(["audit", "verify", collaboration])
            #expect(verified["valid"] as? Bool == true)
            #expect(verified["entries"] as? Int == 4)  // proposal + three approvals
        }
        let whole = try CLI.json(try CLI.run("cleanroomd", ["audit", "verify", "--data-dir", server.dataDirectory.path, "--json"]))
        #expect(whole["valid"] as? Bool == true)

        // Approving let the policy's enclave image decrypt each party's data keys; revoking takes it
        // out again, unless another policy the party still approves names the same image.
        let image = try #require(
            ((policy["enclave"] as? [String: Any])?["measurements"] as? [[String: Any]])?.first?["pcr0"] as? String)
        policy["name"] = "the same model, a second collaboration"
        try JSONSerialization.data(withJSONObject: policy, options: [.prettyPrinted]).write(to: policyFile)
        let second = try machines[0].json(["policy", "propose", policyFile.path])
        let secondId = try #require(second["id"] as? String)
        let secondDigest = try #require(second["digest"] as? String)
        let secondApproved = try machines[0].json(["policy", "approve", secondId, "--yes", "--digest", secondDigest])
        let secondApproval = try #require(secondApproved["id"] as? String)
        let firstApproval = try #require(
            (approvals.first { $0["partyId"] as? String == machines[0].partyId })?["id"] as? String)
        #expect(try machines[0].json(["kms", "show"])["enclaveImages"] as? [String] == [image])
        let revokedFirst = try machines[0].json(["policy", "revoke", collaboration, firstApproval])
        #expect((revokedFirst["kmsKey"] as? [String: Any])?["kept"] as? [String] == [image], "\(revokedFirst)")
        #expect(try machines[0].json(["kms", "show"])["enclaveImages"] as? [String] == [image])
        let revokedSecond = try machines[0].cli(["policy", "revoke", secondId, secondApproval])
        #expect(revokedSecond.stdoutText.contains("no longer releases data keys to enclave image(s) \(image)"), "\(revokedSecond.stdoutText)")
        #expect(try machines[0].json(["kms", "show"])["enclaveImages"] as? [String] == [])
        // A revocation whose key update did not happen (the server went away in between, in a crash
        // review): revoking again says it was revoked already and does the update.
        _ = try machines[0].json(["kms", "allow-image", image])
        let again = try machines[0].json(["policy", "revoke", secondId, secondApproval])
        #expect(again["alreadyRevoked"] as? Bool == true, "\(again)")
        #expect(try machines[0].json(["kms", "show"])["enclaveImages"] as? [String] == [])
        // Another party's key is untouched: its approval stands.
        #expect(try machines[1].json(["kms", "show"])["enclaveImages"] as? [String] == [image])
    }

    /// The operator gives a party's registration another result key before a policy is proposed: the
    /// server copies it into the policy, so every output granted to that party would be encrypted
    /// to the operator's key, and an approval would vouch for that. The party's CLI refuses to
    /// propose or approve such a policy, saying why; the other parties see the key's fingerprint in
    /// the summary. (Found by an adversarial review: `approve` used to check only the approval key.)
    @Test func aPolicyNamingAnotherResultKeyForAPartyIsNeitherProposedNorApprovedByIt() throws {
        let root = try TestEnvironment.temporaryDirectory("e2e-result-key-swap")
        defer { try? FileManager.default.removeItem(at: root) }
        let server = try CleanroomdProcess(dataDirectory: root.appendingPathComponent("data"), keepsPort: true)
        try server.start()
        defer { server.stop() }
        let (machines, datasets) = try Self.threeHospitals(server: server, root: root, rows: 50, viaKMS: { _ in false })
        let victim = machines[0], accomplice = machines[2]
        let keys = try machines.map { try $0.json(["keys", "show"]) }
        let resultFingerprints = try keys.map { try #require($0["resultKeyFingerprint"] as? String) }
        #expect(Set(resultFingerprints).count == 3 && resultFingerprints.allSatisfy { $0.count == 64 })

        // The operator (here: a party it controls) swaps the victim's result key in the store.
        let database = server.dataDirectory.appendingPathComponent("cleanroom.sqlite").path
        let swapped = try ProcessRunner.python(
            """
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1])
            c.execute("UPDATE party SET resultKey = (SELECT resultKey FROM party WHERE id = ?) WHERE id = ?", (sys.argv[2], sys.argv[3]))
            c.commit()
            """, [database, accomplice.partyId, victim.partyId])
        #expect(swapped.status == 0, "\(swapped.stderrText)")

        let policy = try Self.hospitalsPolicy(machines, datasets: datasets)
        let policyFile = root.appendingPathComponent("policy.json")
        try JSONSerialization.data(withJSONObject: policy).write(to: policyFile)

        // The victim's CLI compares the server's record of its party with its own keys before it
        // proposes anything: it refuses, naming the problem, and nothing is proposed.
        let proposed = try victim.cli(["policy", "propose", policyFile.path], expectStatus: 1)
        #expect(
            proposed.stderrText.contains("the server's registration names a different result key for \(victim.partyId)"),
            "\(proposed.stderrText)")
        #expect(proposed.stderrText.contains("yours: \(resultFingerprints[0].prefix(16))"), "\(proposed.stderrText)")
        #expect((try victim.json(["policy", "list"])["items"] as? [Any])?.isEmpty == true)

        // Another party proposes it; the server fills in the key it now holds for the victim.
        let collaboration = try #require(try machines[1].json(["policy", "propose", policyFile.path])["id"] as? String)

        // Another party sees, in the summary it approves, which result key each party is named with.
        let summary = try machines[1].cli(["policy", "show", collaboration]).stdoutText
        #expect(summary.contains("\(victim.partyId) (St Mary), approval key \(victim.fingerprint.prefix(16))…, result key \(resultFingerprints[2].prefix(16))…"), "\(summary)")
        #expect(summary.contains("result key \(resultFingerprints[1].prefix(16))…"), "\(summary)")
        _ = try machines[1].json(["policy", "approve", collaboration, "--yes"])

        // The victim's approval is refused before anything is signed or sent.
        let refused = try victim.cli(["policy", "approve", collaboration, "--yes"], expectStatus: 1)
        #expect(refused.stderrText.contains("the policy names a different result key for \(victim.partyId)"), "\(refused.stderrText)")
        #expect(refused.stdoutText.isEmpty, "no summary is offered for approval: \(refused.stdoutText)")
        let state = try machines[1].json(["policy", "show", collaboration])
        let approvers = (state["approvals"] as? [[String: Any]] ?? []).compactMap { $0["partyId"] as? String }
        #expect(approvers == [machines[1].partyId], "\(approvers)")
    }

    @Test func enrollRefusesADirectoryNoServerUsesAndCreatesNothing() throws {
        let root = try TestEnvironment.temporaryDirectory("enroll")
        defer { try? FileManager.default.removeItem(at: root) }
        let missing = root.appendingPathComponent("typo")
        let result = try CLI.run("cleanroomd", ["admin", "enroll", "--data-dir", missing.path], expectStatus: nil)
        #expect(result.status == 2, "a usage error: \(result.stderrText)")
        #expect(result.stdoutText.isEmpty, "a token was printed for a directory no server uses")
        #expect(result.stderrText.contains("no cleanroomd data directory at \(missing.path)"), "\(result.stderrText)")
        #expect(!FileManager.default.fileExists(atPath: missing.path))
    }

    @Test func auditTamperingIsDetectedByCleanroomdAuditVerify() throws {
        let root = try TestEnvironment.temporaryDirectory("e2e-audit")
        defer { try? FileManager.default.removeItem(at: root) }
        let server = try CleanroomdProcess(dataDirectory: root.appendingPathComponent("data"), keepsPort: true)
        try server.start()
        let machine = try Self.onboard("Alpha", server: server, root: root)
        _ = try Self.upload(machine, csv: Self.csv(rows: 10, seed: 9), root: root)
        server.stop()
        let database = server.dataDirectory.appendingPathComponent("cleanroom.sqlite").path
        func verify() throws -> [String: Any] {
            try CLI.json(
                try CLI.run("cleanroomd", ["audit", "verify", "--data-dir", server.dataDirectory.path, "--json"], expectStatus: nil))
        }
        #expect(try verify()["valid"] as? Bool == true)
        // Fold the WAL into the main file so one file holds the whole log.
        let folded = try ProcessRunner.python(
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()", [database])
        #expect(folded.status == 0, "\(folded.stderrText)")
        let backup = root.appendingPathComponent("backup.sqlite")
        try FileManager.default.copyItem(atPath: database, toPath: backup.path)
        for (name, sql, code) in [
            ("edit", "UPDATE auditEntry SET actor = 'mallory' WHERE seq = 2", "audit_entry_edited"),
            ("delete", "DELETE FROM auditEntry WHERE seq = 2", "audit_entry_missing"),
            ("reorder", "UPDATE auditEntry SET seq = -1 WHERE seq = 2; UPDATE auditEntry SET seq = 2 WHERE seq = 3; UPDATE auditEntry SET seq = 3 WHERE seq = -1", nil),
        ] as [(String, String, String?)] {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + suffix) }
            try FileManager.default.copyItem(atPath: backup.path, toPath: database)
            let tampered = try ProcessRunner.python("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()", [database, sql])
            #expect(tampered.status == 0, "\(tampered.stderrText)")
            let result = try verify()
            #expect(result["valid"] as? Bool == false, "\(name) is detected")
            if let code { #expect(result["code"] as? String == code, "\(name)") }
        }
    }
}
