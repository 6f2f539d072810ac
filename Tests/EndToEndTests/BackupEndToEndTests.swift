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
        // A second backup into the same folder is refused; the first stays as it was. So is one
        // onto a file (it stays) or into the data directory; an empty folder (a mount point, say) is fine.
        let again = try CLI.run("cleanroomd", ["admin", "backup", "--data-dir", data.path, "--out", backup.path], expectStatus: 2)
        #expect(again.stderrText.contains("not empty"), "\(again.stderrText)")
        let file = root.appendingPathComponent("notes.txt")
        try Data("keep me".utf8).write(to: file)
        let ontoFile = try CLI.run("cleanroomd", ["admin", "backup", "--data-dir", data.path, "--out", file.path], expectStatus: 2)
        #expect(ontoFile.stderrText.contains("not a folder"), "\(ontoFile.stderrText)")
        #expect(try Data(contentsOf: file) == Data("keep me".utf8))
        let inside = data.appendingPathComponent("cleanroom.sqlite").path
        let intoData = try CLI.run("cleanroomd", ["admin", "backup", "--data-dir", data.path, "--out", inside], expectStatus: 2)
        #expect(intoData.stderrText.contains("inside the data directory"), "\(intoData.stderrText)")
        let empty = root.appendingPathComponent("empty-volume")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: false)
        try CLI.run("cleanroomd", ["admin", "backup", "--data-dir", data.path, "--out", empty.path])
        #expect(try FileManager.default.contentsOfDirectory(atPath: empty.path).sorted().contains("manifest.json"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: empty.path).allSatisfy { !$0.hasPrefix(".") })

        // After the backup: a second party, which the restored server will not know, and a dataset
        // Alpha withdraws (a change a restore undoes).
        let beta = try GovernanceEndToEndTests.onboard("Beta", server: server, root: root)
        let extra = try alpha.json(["dataset", "create", "--name", "extra", "--columns", GovernanceEndToEndTests.columns])
        try alpha.cli(["dataset", "withdraw", try #require(extra["id"] as? String)])

        // Not while the server runs.
        let running = try CLI.run("cleanroomd", ["admin", "restore", "--from", backup.path, "--data-dir", data.path, "--replace"], expectStatus: 2)
        #expect(running.stderrText.contains("stop the server"), "\(running.stderrText)")
        #expect(server.stop() == 0)

        // Over a database that still works, a restore that would undo later changes is refused
        // (and changes nothing) unless asked for.
        let database = data.appendingPathComponent("cleanroom.sqlite")
        let before = try Data(contentsOf: database)
        let undoing = try CLI.run(
            "cleanroomd", ["admin", "restore", "--from", backup.path, "--data-dir", data.path, "--replace"], expectStatus: 2)
        #expect(undoing.stderrText.contains("1 dataset.withdrawn") && undoing.stderrText.contains("--discard-later-changes"),
                "\(undoing.stderrText)")
        #expect(try Data(contentsOf: database) == before)
        try CLI.run(
            "cleanroomd", ["admin", "restore", "--from", backup.path, "--data-dir", data.path, "--replace", "--discard-later-changes"])
        #expect(try Data(contentsOf: database) != before)

        // The database is lost (garbage in its place, its WAL left behind), and the KMS's keys with it.
        try FileManager.default.removeItem(at: data.appendingPathComponent("kms"))
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

    /// A restore puts in all of the backup's files or none: a manifest that names a file twice is
    /// refused, and a restore that fails half-way (a file it must replace cannot be) puts back
    /// every file it moved.
    @Test func aRestoreThatCannotFinishLeavesTheDataDirectoryAsItWas() throws {
        let root = try TestEnvironment.temporaryDirectory("e2e-restore-rollback")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = root.appendingPathComponent("data")
        let server = try CleanroomdProcess(dataDirectory: data, keepsPort: true)
        try server.start()
        _ = try GovernanceEndToEndTests.onboard("Alpha", server: server, root: root)
        #expect(server.stop() == 0)
        let backup = root.appendingPathComponent("backup")
        try CLI.run("cleanroomd", ["admin", "backup", "--data-dir", data.path, "--out", backup.path])

        let twice = root.appendingPathComponent("twice")
        try FileManager.default.copyItem(at: backup, to: twice)
        let manifestURL = twice.appendingPathComponent("manifest.json")
        var manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: manifestURL)) as? [String: Any])
        let files = try #require(manifest["files"] as? [[String: Any]])
        manifest["files"] = [files[0]] + files
        try JSONSerialization.data(withJSONObject: manifest).write(to: manifestURL)
        let refused = try CLI.run(
            "cleanroomd", ["admin", "restore", "--from", twice.path, "--data-dir", data.path, "--replace"], expectStatus: 1)
        #expect(refused.stderrText.contains("names a file twice"), "\(refused.stderrText)")

        // The KMS's folder is a file now: its keys cannot be put in place, after the database was.
        try FileManager.default.removeItem(at: data.appendingPathComponent("kms"))
        try Data("in the way".utf8).write(to: data.appendingPathComponent("kms"))
        func snapshot() throws -> [String: Data] {
            var out: [String: Data] = [:]
            // (The serving lock holds the pid of whoever took it last: the restore itself.)
            for name in try FileManager.default.contentsOfDirectory(atPath: data.path).sorted() where name != "cleanroomd.lock" {
                var isFolder: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: data.appendingPathComponent(name).path, isDirectory: &isFolder)
                out[name] = isFolder.boolValue ? Data() : try Data(contentsOf: data.appendingPathComponent(name))
            }
            return out
        }
        let before = try snapshot()
        let failed = try CLI.run(
            "cleanroomd", ["admin", "restore", "--from", backup.path, "--data-dir", data.path, "--replace"], expectStatus: 1)
        #expect(failed.stderrText.contains("the data directory is as it was"), "\(failed.stderrText)")
        let after = try snapshot()
        // (A failed restore leaves nothing set aside, so the server still starts on the directory.)
        #expect(after == before, "\(Set(after.keys).symmetricDifference(before.keys)) \(after.keys.filter { after[$0] != before[$0] })")
    }

    /// A restore a crash interrupted between its renames leaves the files it set aside: the server
    /// refuses to start on such a mix until the same restore, run again, finishes it.
    @Test func aServerDoesNotStartOnAnInterruptedRestoreUntilItIsFinished() throws {
        let root = try TestEnvironment.temporaryDirectory("e2e-restore-interrupted")
        defer { try? FileManager.default.removeItem(at: root) }
        let data = root.appendingPathComponent("data")
        let server = try CleanroomdProcess(dataDirectory: data, keepsPort: true)
        try server.start()
        #expect(server.stop() == 0)
        let backup = root.appendingPathComponent("backup")
        try CLI.run("cleanroomd", ["admin", "backup", "--data-dir", data.path, "--out", backup.path])
        // What a restore killed half-way leaves: the earlier database set aside.
        let aside = data.appendingPathComponent(".restore-previous-4242")
        try FileManager.default.createDirectory(at: aside, withIntermediateDirectories: false)
        try FileManager.default.copyItem(
            at: data.appendingPathComponent("cleanroom.sqlite"), to: aside.appendingPathComponent("cleanroom.sqlite"))
        let refused = try CLI.run(
            "cleanroomd", ["serve", "--data-dir", data.path, "--listen", "127.0.0.1:0"], expectStatus: 1)
        #expect(refused.stderrText.contains("interrupted `cleanroomd admin restore`"), "\(refused.stderrText)")
        try CLI.run("cleanroomd", ["admin", "restore", "--from", backup.path, "--data-dir", data.path, "--replace"])
        #expect(!FileManager.default.fileExists(atPath: aside.path))
        try server.start()
        #expect(server.stop() == 0)
    }
}
