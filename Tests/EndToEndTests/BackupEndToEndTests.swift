import Foundation
import Testing
import TestSupport

/// `cleanroomd admin backup` on a running server and `cleanroomd admin restore` after losing its
/// database, through the real processes and the party CLI.
@Suite(.serialized) struct BackupEndToEndTests {
    @Test func aBackupTakenWhileServingRestoresTheStateOfThatMomentAndNothingElse() throws {
        let root = try TestEnvironment.temporaryDirectory("e2e-backup")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = root.appendingPathComponent("data")
        let server = try CleanroomdProcess(dataDirectory: data, keepsPort: true)
        try server.start()
        defer { server.stop() }
        let alpha = try GovernanceEndToEndTests.onboard("Alpha", server: server, root: root)
        let datasetId = try GovernanceEndToEndTests.upload(
            alpha, csv: GovernanceEndToEndTests.csv(rows: 5, seed: 1), root: root, viaKMS: true)

        // Online: the server keeps serving while the copy is taken.
        let backup = root.appendingPathComponent("backup")
        let taken = try CLI.json(try CLI.run("cleanroomd", ["admin", "backup", "--data-dir", data.path, "--out", backup.path, "--json"]))
        let files = try #require(taken["files"] as? [[String: Any]]).compactMap { $0["path"] as? String }
        for expected in ["cleanroom.sqlite", "kms/keys.sqlite", "kms/root.key", "audit-signing-key.pem", "operator-credentials.json"] {
            #expect(files.contains(expected), "\(files)")
        }
        #expect(!files.contains { $0.hasPrefix("objects") })
        var info = stat()
        #expect(stat(backup.path, &info) == 0 && info.st_mode & 0o077 == 0)
        // A second backup into the same folder is refused; the first stays as it was.
        let again = try CLI.run("cleanroomd", ["admin", "backup", "--data-dir", data.path, "--out", backup.path], expectStatus: 2)
        #expect(again.stderrText.contains("not empty"), "\(again.stderrText)")

        // After the backup: a second party, which the restored server will not know.
        let beta = try GovernanceEndToEndTests.onboard("Beta", server: server, root: root)

        // Not while the server runs.
        let running = try CLI.run("cleanroomd", ["admin", "restore", "--from", backup.path, "--data-dir", data.path, "--replace"], expectStatus: 2)
        #expect(running.stderrText.contains("stop the server"), "\(running.stderrText)")
        #expect(server.stop() == 0)

        // The database is lost (garbage in its place, its WAL left behind), and the KMS's keys with it.
        try FileManager.default.removeItem(at: data.appendingPathComponent("kms"))
        let database = data.appendingPathComponent("cleanroom.sqlite")
        let garbage = Data(repeating: 0x5A, count: 4096)
        try garbage.write(to: database)
        let notReplacing = try CLI.run("cleanroomd", ["admin", "restore", "--from", backup.path, "--data-dir", data.path], expectStatus: 2)
        #expect(notReplacing.stderrText.contains("--replace"), "\(notReplacing.stderrText)")

        // A backup whose database was altered is refused, and nothing changes.
        let altered = root.appendingPathComponent("altered")
        try FileManager.default.copyItem(at: backup, to: altered)
        let alteredDatabase = altered.appendingPathComponent("cleanroom.sqlite")
        var bytes = try Data(contentsOf: alteredDatabase)
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: alteredDatabase)
        let refused = try CLI.run(
            "cleanroomd", ["admin", "restore", "--from", altered.path, "--data-dir", data.path, "--replace"], expectStatus: 1)
        #expect(refused.stderrText.contains("cleanroom.sqlite") && refused.stderrText.contains("SHA-256"), "\(refused.stderrText)")
        #expect(try Data(contentsOf: database) == garbage)

        let restored = try CLI.run("cleanroomd", ["admin", "restore", "--from", backup.path, "--data-dir", data.path, "--replace"])
        #expect(restored.stdoutText.contains("restored"), "\(restored.stdoutText)")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: data.path).filter { $0.hasPrefix(".restore") }
        #expect(leftovers.isEmpty)

        try server.start()
        // The audit log verifies, and holds what it held at the backup.
        let audit = try CLI.json(try CLI.run("cleanroomd", ["audit", "verify", "--data-dir", data.path, "--json"]))
        #expect(audit["valid"] as? Bool == true)
        #expect(audit["entries"] as? Int == taken["auditEntries"] as? Int)
        // Alpha, registered before the backup, works as before, its uploaded dataset included.
        let datasets = try alpha.json(["dataset", "list"])
        let listed = try #require(datasets["items"] as? [[String: Any]])
        #expect(listed.contains { $0["id"] as? String == datasetId && $0["status"] as? String == "available" }, "\(listed)")
        // The restored KMS still holds Alpha's dataset key (made before the backup).
        #expect(try alpha.cli(["kms", "show"]).status == 0)
        // Beta, registered after it, is unknown.
        let unknown = try beta.cli(["dataset", "list"], expectStatus: 1)
        #expect(unknown.stderrText.contains("unauthorized"), "\(unknown.stderrText)")
    }
}
