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

    /// Backs up `data` into the new folder `destination` (which must not exist, or be empty).
    public static func create(from data: DataDirectory, to destination: URL) throws -> Manifest {
        guard FileManager.default.fileExists(atPath: data.file(GovernanceSetup.databaseFile).path) else {
            throw Failure("no cleanroomd database at \(data.file(GovernanceSetup.databaseFile).path)", usage: true)
        }
        if let existing = try? FileManager.default.contentsOfDirectory(atPath: destination.path), !existing.isEmpty {
            throw Failure("\(destination.path) is not empty: give a new folder for the backup", usage: true)
        }
        let parent = destination.deletingLastPathComponent()
        let staging = parent.appendingPathComponent(".\(destination.lastPathComponent).partial-\(getpid())")
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
        try? FileManager.default.removeItem(at: destination)  // an empty folder the operator made
        guard rename(staging.path, destination.path) == 0 else {
            throw Failure("cannot name the backup \(destination.path): \(String(cString: strerror(errno)))")
        }
        return manifest
    }

    /// Restores the backup in `source` into `data`, whose server must be stopped. A data directory
    /// that has a database is replaced only with `replace`.
    public static func restore(from source: URL, to data: DataDirectory, replace: Bool) throws -> Manifest {
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
        for file in manifest.files {
            guard known.contains(file.path) else { throw Failure("the manifest names \(file.path), which no backup holds") }
            let actual = try describe(source.appendingPathComponent(file.path), as: file.path)
            guard actual == file else {
                throw Failure("\(file.path) in \(source.path) is not the file the backup made (its SHA-256 or size differs)")
            }
        }
        guard manifest.files.contains(where: { $0.path == GovernanceSetup.databaseFile }) else {
            throw Failure("the backup has no \(GovernanceSetup.databaseFile)")
        }
        let lock: ServingLock
        do {
            lock = try data.lockForServing()
        } catch {
            throw Failure("\(error): stop the server before restoring into its data directory", usage: true)
        }
        defer { lock.release() }
        if !replace, FileManager.default.fileExists(atPath: data.file(GovernanceSetup.databaseFile).path) {
            throw Failure(
                "\(data.path) already has a database: pass --replace to overwrite it with the backup", usage: true)
        }
        // Checked as a copy, in a staging folder inside the data directory (same file system, so
        // each file then moves into place by a rename).
        let staging = data.file(".restore-\(getpid())")
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
        for file in manifest.files {
            let target = data.file(file.path)
            try makeFolder(target.deletingLastPathComponent())
            if databases.contains(file.path) {
                for suffix in ["-wal", "-shm", "-journal"] { unlink(target.path + suffix) }
            }
            guard rename(staging.appendingPathComponent(file.path).path, target.path) == 0 else {
                throw Failure("cannot put \(target.path) in place: \(String(cString: strerror(errno)))")
            }
        }
        return manifest
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
            let publicKey = try P256AuditSigner.loadOrCreate(path: keyPath).publicKeyPEM
            let (entries, checkpoints) = try DatabaseQueue(
                path: folder.appendingPathComponent(GovernanceSetup.databaseFile).path, configuration: readOnly()
            ).read { db in (try AuditEntry.fetchAll(db), try AuditCheckpoint.fetchAll(db)) }
            let report = try AuditVerifier(publicKeyPEM: publicKey).verify(entries: entries, checkpoints: checkpoints)
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
        return configuration
    }

    private static func makeFolder(_ url: URL) throws {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    /// Copies a file byte for byte, mode 0600, synced.
    private static func copyFile(_ from: URL, to: URL) throws {
        let bytes: Data
        do { bytes = try Data(contentsOf: from) } catch { throw Failure("cannot read \(from.path): \(error.localizedDescription)") }
        do {
            try OperatorCredentials.writeSecret(bytes, to: to)
        } catch {
            throw Failure("cannot write \(to.path): \(error)")
        }
    }

    private static func describe(_ url: URL, as path: String) throws -> Manifest.File {
        let bytes: Data
        do { bytes = try Data(contentsOf: url) } catch { throw Failure("the backup has no readable \(path)") }
        return Manifest.File(path: path, bytes: bytes.count, sha256: Hex.encode(SHA256.hash(Array(bytes))))
    }

    private static func write(_ manifest: Manifest, to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try OperatorCredentials.writeSecret(try encoder.encode(manifest) + Data("\n".utf8), to: url)
    }
}
