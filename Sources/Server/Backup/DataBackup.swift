import CleanRoom
import Crypto
import Foundation
import GRDB

/// Online backup and offline restore of a data directory's state (DESIGN §8): the governance
/// database (parties, datasets, policies, approvals, jobs, the audit log), the embedded KMS's keys
/// and root key, and the secrets beside them (operator credentials, audit signing key, metrics
/// token, the development attestation CA).
///
/// A backup is taken while the server runs: each database is copied with SQLite's backup API, a
/// consistent snapshot, the governance database first and the KMS's after it (so every key the
/// copied database refers to is in the copied KMS: keys are added, never removed by the server).
/// The copy is checked (`integrity_check`, the audit chain and its signed checkpoints) before the
/// folder is given its name, with a `manifest.json` of every file's SHA-256.
///
/// Objects (`objects/`: dataset ciphertexts and job outputs) are not in it: they are large and
/// written once, so a file-system copy (or S3 versioning) backs them up. A restored database
/// refers to the objects it knew; objects written since are orphans, and objects removed since are
/// missing (their datasets must be uploaded again).
///
/// A restore needs the server stopped (it takes the data directory's serving lock), checks the
/// backup as above, and replaces the files one by one (a database's stale `-wal` and `-shm` are
/// removed first: a WAL from after the backup must never be applied to it).
public enum DataBackup {
    public static let manifestFile = "manifest.json"
    public static let format = "cleanroom-backup-v1"

    /// Databases, in the order they are copied.
    static let databases = [GovernanceSetup.databaseFile, "kms/keys.sqlite"]
    /// Other files (those that exist are copied).
    static let secrets = [
        "operator-credentials.json", GovernanceSetup.auditKeyFile, "metrics-token", "kms/root.key",
        "development-ca/root.pem", "development-ca/root.key", "development-ca/intermediate.pem",
        "development-ca/intermediate.key", "development-ca/leaf.pem", "development-ca/leaf.key",
    ]

    /// What a backup holds; written as `manifest.json`.
    public struct Manifest: Codable, Sendable, Equatable {
        public struct File: Codable, Sendable, Equatable {
            public var path: String
            public var bytes: Int
            public var sha256: String
        }
        public var format: String
        /// When the backup was taken, RFC 3339.
        public var createdAt: String
        public var files: [File]
        /// The audit log of the copied database: entries, and the hash of the last.
        public var auditEntries: Int
        public var auditHead: String
    }

    /// A backup that cannot be taken or restored; the message says why and what to do.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        /// True when the request itself is at fault (exit 2), false when the data is (exit 1).
        public let isUsage: Bool
        init(_ description: String, usage: Bool = false) {
            self.description = description
            isUsage = usage
        }
    }

    /// Backs up `data` into `destination`: a new folder, or an empty one (a mounted volume, say).
    public static func create(from data: DataDirectory, to destination: URL) throws -> Manifest {
        guard FileManager.default.fileExists(atPath: data.file(GovernanceSetup.databaseFile).path) else {
            throw Failure("no cleanroomd database at \(data.file(GovernanceSetup.databaseFile).path)", usage: true)
        }
        let target = destination.standardizedFileURL.resolvingSymlinksInPath()
        let dataPath = data.url.resolvingSymlinksInPath().path
        guard target.path != dataPath, !target.path.hasPrefix(dataPath + "/") else {
            throw Failure("--out \(destination.path) is inside the data directory: give a folder outside it", usage: true)
        }
        // The folder is made in a staging folder, then given its name: beside it when it does not
        // exist, inside it when it is an empty folder (which may be a mount point).
        var info = stat()
        let exists = lstat(destination.path, &info) == 0
        if exists {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw Failure("--out \(destination.path) exists and is not a folder: give a new or empty folder", usage: true)
            }
            guard (try? FileManager.default.contentsOfDirectory(atPath: destination.path))?.isEmpty == true else {
                throw Failure("--out \(destination.path) is not empty: give a new or empty folder for the backup", usage: true)
            }
        }
        let staging =
            exists
            ? destination.appendingPathComponent(".partial-\(getpid())")
            : destination.deletingLastPathComponent().appendingPathComponent(".\(destination.lastPathComponent).partial-\(getpid())")
        try? FileManager.default.removeItem(at: staging)
        try makeFolder(staging)
        defer { try? FileManager.default.removeItem(at: staging) }
        var copied: [String] = []
        for database in databases where FileManager.default.fileExists(atPath: data.file(database).path) {
            let target = staging.appendingPathComponent(database)
            try makeFolder(target.deletingLastPathComponent())
            do {
                let source = try DatabaseQueue(path: data.file(database).path, configuration: readOnly())
                let copy = try DatabaseQueue(path: target.path)
                try source.backup(to: copy)
                // A file that stands alone: no WAL beside it to lose.
                try copy.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = DELETE") }
            } catch {
                throw Failure("cannot copy \(data.file(database).path): \(error)")
            }
            chmod(target.path, 0o600)
            copied.append(database)
        }
        for secret in secrets where FileManager.default.fileExists(atPath: data.file(secret).path) {
            let target = staging.appendingPathComponent(secret)
            try makeFolder(target.deletingLastPathComponent())
            try copyFile(data.file(secret), to: target)
            copied.append(secret)
        }
        let (entries, head) = try check(staging)
        let manifest = Manifest(
            format: format, createdAt: RFC3339.format(Int64(Date().timeIntervalSince1970)),
            files: try copied.map { try describe(staging.appendingPathComponent($0), as: $0) },
            auditEntries: entries, auditHead: head)
        try write(manifest, to: staging.appendingPathComponent(manifestFile))
        if exists {
            for name in try FileManager.default.contentsOfDirectory(atPath: staging.path) {
                try move(staging.appendingPathComponent(name), to: destination.appendingPathComponent(name))
            }
            syncFolder(destination)
        } else {
            try move(staging, to: destination)
            syncFolder(destination.deletingLastPathComponent())
        }
        return manifest
    }

    /// Audit actions a restore of an older database undoes, and which matter for who may do what:
    /// a revoked approval would count again, a used run would be free again, a rotated or revoked
    /// credential would work again, a deleted, moved or re-keyed webhook would send events to the
    /// old URL, signed with the old secret (or one the server disabled would send again).
    static let undoneOnRestore: Set<String> = [
        "approval.revoked", "job.start", "credential.rotated", "principal.revoked", "principal.roles_changed",
        "party.suspended", "dataset.withdrawn", "webhook.deleted", "webhook.updated", "webhook.secret_rotated",
        "webhook.disabled",
    ]

    /// Restores the backup in `source` into `data`, whose server must be stopped. A data directory
    /// that has a database is replaced only with `replace`; one whose readable database holds
    /// changes made after the backup that `undoneOnRestore` lists (or that is not a later state of
    /// the backup at all) only with `discardLaterChanges` too. The files go in all or none: the
    /// current ones are moved aside first and moved back if any step fails.
    public static func restore(
        from source: URL, to data: DataDirectory, replace: Bool, discardLaterChanges: Bool = false
    ) throws -> Manifest {
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: source.appendingPathComponent(manifestFile)))
        } catch {
            throw Failure("\(source.path) is not a cleanroom backup (no readable \(manifestFile)): \(error)", usage: true)
        }
        guard manifest.format == format else {
            throw Failure("\(source.path) holds a backup of format \(manifest.format), not \(format)", usage: true)
        }
        let known = Set(databases + secrets)
        let paths = manifest.files.map(\.path)
        guard Set(paths).count == paths.count else { throw Failure("the manifest names a file twice") }
        for file in manifest.files {
            guard known.contains(file.path) else { throw Failure("the manifest names \(file.path), which no backup holds") }
            let actual = try describe(source.appendingPathComponent(file.path), as: file.path)
            guard actual == file else {
                throw Failure("\(file.path) in \(source.path) is not the file the backup made (its SHA-256 or size differs)")
            }
        }
        guard paths.contains(GovernanceSetup.databaseFile), paths.contains(GovernanceSetup.auditKeyFile) else {
            throw Failure("the backup has no \(GovernanceSetup.databaseFile) or no \(GovernanceSetup.auditKeyFile)")
        }
        guard paths.contains("kms/keys.sqlite") == paths.contains("kms/root.key") else {
            throw Failure("the backup has only one of kms/keys.sqlite and kms/root.key: the keys need their root key")
        }
        let lock: ServingLock
        do {
            lock = try data.lockForServing()
        } catch {
            throw Failure("\(error): stop the server before restoring into its data directory", usage: true)
        }
        defer { lock.release() }
        let current = data.file(GovernanceSetup.databaseFile)
        if FileManager.default.fileExists(atPath: current.path) {
            guard replace else {
                throw Failure("\(data.path) already has a database: pass --replace to overwrite it with the backup", usage: true)
            }
            if !discardLaterChanges, let later = laterChanges(in: current, after: manifest) {
                throw Failure(later, usage: true)
            }
        }
        // Checked as a copy, in a staging folder inside the data directory (same file system, so
        // each file then moves into place by a rename).
        let staging = data.file(".restore-\(getpid())")
        let previous = data.file(".restore-previous-\(getpid())")
        try? FileManager.default.removeItem(at: staging)
        try makeFolder(staging)
        defer { try? FileManager.default.removeItem(at: staging) }
        for file in manifest.files {
            let target = staging.appendingPathComponent(file.path)
            try makeFolder(target.deletingLastPathComponent())
            try copyFile(source.appendingPathComponent(file.path), to: target)
        }
        let (entries, head) = try check(staging)
        guard entries == manifest.auditEntries, head == manifest.auditHead else {
            throw Failure("the backup's audit log does not end where its manifest says")
        }
        // The current files (and a replaced database's -wal, -shm and -journal: a WAL from after
        // the backup must never be applied to it) go aside, then the backup's come in; on any
        // failure the moved ones go back.
        var asideFiles: [String] = []
        for file in paths {
            for name in databases.contains(file) ? [file, file + "-wal", file + "-shm", file + "-journal"] : [file] {
                if FileManager.default.fileExists(atPath: data.file(name).path) { asideFiles.append(name) }
            }
        }
        var movedAside: [String] = []
        var movedIn: [String] = []
        do {
            for name in asideFiles {
                try makeFolder(previous.appendingPathComponent(name).deletingLastPathComponent())
                try move(data.file(name), to: previous.appendingPathComponent(name))
                movedAside.append(name)
            }
            for file in paths {
                try makeFolder(data.file(file).deletingLastPathComponent())
                try move(staging.appendingPathComponent(file), to: data.file(file))
                movedIn.append(file)
            }
        } catch {
            for name in movedIn { unlink(data.file(name).path) }
            for name in movedAside { try? move(previous.appendingPathComponent(name), to: data.file(name)) }
            try? FileManager.default.removeItem(at: previous)
            throw Failure("\(error); the data directory is as it was")
        }
        for folder in Set(paths.map { data.file($0).deletingLastPathComponent() }) { syncFolder(folder) }
        // What this restore and any interrupted one before it set aside is superseded now.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: data.path)) ?? [] where name.hasPrefix(".restore-") {
            try? FileManager.default.removeItem(at: data.file(name))
        }
        return manifest
    }

    /// The files a restore set aside and did not remove because it was interrupted (a crash or a
    /// kill between its renames), or nil. Until a restore finishes, the server does not start on
    /// the directory: it may hold some files of the backup and some of before.
    public static func interruptedRestore(in data: DataDirectory) -> URL? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: data.path)) ?? []
        return names.sorted().first { $0.hasPrefix(".restore-previous-") }.map { data.file($0) }
    }

    /// Why the database at `current` must not be replaced by the backup without
    /// `--discard-later-changes`, or nil: it cannot be read (the case a restore is for), or it
    /// holds nothing after the backup that `undoneOnRestore` lists.
    private static func laterChanges(in current: URL, after manifest: Manifest) -> String? {
        let advice = "pass --discard-later-changes to restore anyway, then revoke, rotate and suspend again what the backup "
            + "does not know, and tell the parties: their audit trails will not show what came after the backup"
        let head = Int64(manifest.auditEntries)
        let actions = undoneOnRestore.sorted()
        guard let queue = try? DatabaseQueue(path: current.path, configuration: readOnly()),
            let (headHash, undone) = try? queue.read({ db in
                (
                    try String.fetchOne(db, sql: "SELECT hash FROM auditEntry WHERE seq = ?", arguments: [head]),
                    try Row.fetchAll(
                        db,
                        sql: "SELECT action, COUNT(*) AS n FROM auditEntry WHERE seq > ? AND action IN (\(actions.map { _ in "?" }.joined(separator: ","))) GROUP BY action",
                        arguments: StatementArguments([head] + actions)
                    ).map { "\($0["n"] as Int) \($0["action"] as String)" }
                )
            })
        else { return nil }
        guard headHash == manifest.auditHead || manifest.auditEntries == 0 else {
            return "the data directory's database is not a later state of this backup (its audit log does not run through the "
                + "backup's head): \(advice)"
        }
        guard !undone.isEmpty else { return nil }
        return "the data directory's database has changes after the backup that a restore would undo (\(undone.sorted().joined(separator: ", "))): \(advice)"
    }

    /// `integrity_check` of every database in `folder`, then the audit chain and its signed
    /// checkpoints of its governance database; returns the number of entries and the head's hash.
    private static func check(_ folder: URL) throws -> (entries: Int, head: String) {
        for database in databases where FileManager.default.fileExists(atPath: folder.appendingPathComponent(database).path) {
            let result = try? DatabaseQueue(path: folder.appendingPathComponent(database).path, configuration: readOnly())
                .read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") }
            guard result == "ok" else { throw Failure("\(database) fails SQLite's integrity check: \(result ?? "unreadable")") }
        }
        let keyPath = folder.appendingPathComponent(GovernanceSetup.auditKeyFile).path
        guard FileManager.default.fileExists(atPath: keyPath) else {
            throw Failure("the backup has no \(GovernanceSetup.auditKeyFile) to verify its audit log with")
        }
        do {
            let verifier = try AuditVerifier(publicKeyPEM: try P256AuditSigner.loadOrCreate(path: keyPath).publicKeyPEM)
            let report = try DatabaseQueue(
                path: folder.appendingPathComponent(GovernanceSetup.databaseFile).path, configuration: readOnly()
            ).read { db in try CleanRoomStore.verifyAuditLog(db, with: verifier) }
            return (report.entries, report.headHash)
        } catch let failure as AuditVerifier.Failure {
            throw Failure("the backup's audit log does not verify: \(failure)")
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure("cannot read the backup's audit log: \(error)")
        }
    }

    private static func readOnly() -> Configuration {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(10)  // the server may be writing (the KMS's database is not in WAL mode)
        return configuration
    }

    private static func move(_ from: URL, to: URL) throws {
        guard rename(from.path, to.path) == 0 else {
            throw Failure("cannot move \(from.path) to \(to.path): \(String(cString: strerror(errno)))")
        }
    }

    /// Makes a folder's new entries durable (after renames into it).
    private static func syncFolder(_ url: URL) {
        let fd = open(url.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    private static func makeFolder(_ url: URL) throws {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    /// Copies a file byte for byte, mode 0600, synced, a megabyte at a time.
    private static func copyFile(_ from: URL, to: URL) throws {
        guard let input = FileHandle(forReadingAtPath: from.path) else { throw Failure("cannot read \(from.path)") }
        defer { try? input.close() }
        let fd = open(to.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure("cannot write \(to.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        fchmod(fd, 0o600)
        while let chunk = try? input.read(upToCount: 1 << 20), !chunk.isEmpty {
            guard OperatorCredentials.writeAll(chunk, to: fd) else { throw Failure("cannot write \(to.path): \(String(cString: strerror(errno)))") }
        }
        guard fsync(fd) == 0 else { throw Failure("cannot write \(to.path): \(String(cString: strerror(errno)))") }
    }

    /// A file's size and SHA-256, read a megabyte at a time.
    private static func describe(_ url: URL, as path: String) throws -> Manifest.File {
        guard let input = FileHandle(forReadingAtPath: url.path) else { throw Failure("the backup has no readable \(path)") }
        defer { try? input.close() }
        var hash = SHA256()
        var bytes = 0
        while let chunk = try? input.read(upToCount: 1 << 20), !chunk.isEmpty {
            hash.update(Array(chunk))
            bytes += chunk.count
        }
        return Manifest.File(path: path, bytes: bytes, sha256: Hex.encode(hash.finalize()))
    }

    private static func write(_ manifest: Manifest, to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try OperatorCredentials.writeSecret(try encoder.encode(manifest) + Data("\n".utf8), to: url)
    }
}
