import ArgumentParser
import CleanRoom
import Foundation
import Server

/// `cleanroomd admin …`: operator tasks run on the server machine against its data directory.
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin", abstract: "Operator tasks on the server's data directory.",
        subcommands: [EnrollCommand.self, BackupCommand.self, RestoreCommand.self])
}

/// `cleanroomd admin enroll`: prints a single-use enrollment token for a new party.
struct EnrollCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enroll",
        abstract: "Print a single-use enrollment token for a party to register with.",
        discussion: """
            Exit codes: 0 the token was printed, 1 the data directory could not be used (its operator \
            credential is not valid), 2 a usage error (no cleanroomd data directory at --data-dir, \
            --expires-in out of range).
            """)

    @Option(name: .customLong("data-dir"), help: "The server's data directory (default: $CLEANROOM_DATA_DIR or ./data).")
    var dataDir: String?

    @Option(name: .customLong("expires-in"), help: "Seconds the token stays valid (60 to 2592000).")
    var expiresIn: Int64 = 86400

    @Flag(name: .customLong("json"), help: "Print JSON: {\"token\", \"id\", \"expiresAt\"}.")
    var json = false

    func validate() throws {
        guard (60...2_592_000).contains(expiresIn) else {
            throw ValidationError("--expires-in is a number of seconds from 60 to 2592000 (30 days), not \(expiresIn)")
        }
    }

    func run() async throws {
        let data = DataDirectory(path: dataDir ?? ProcessInfo.processInfo.environment["CLEANROOM_DATA_DIR"] ?? "data")
        // A token is only useful to a server using this directory: never create a new, empty one here.
        guard FileManager.default.fileExists(atPath: data.file(GovernanceSetup.databaseFile).path) else {
            throw ValidationError(
                "no cleanroomd data directory at \(data.path): give the --data-dir of `cleanroomd serve` (it creates it on first start)")
        }
        let (credentials, _) = try data.bootstrap()
        let store = try GovernanceSetup.openStore(dataDirectory: data, operatorToken: credentials.token)
        guard let caller = try store.authenticate(bearer: credentials.token), caller.isOperator else {
            FileHandle.standardError.write(
                Data("error: the operator credential in \(data.operatorCredentialsURL.path) is not valid\n".utf8))
            throw ExitCode(1)
        }
        let (token, record) = try store.createEnrollmentToken(caller: caller, lifetime: expiresIn)
        if json {
            let body = ["token": token, "id": record.id, "expiresAt": RFC3339.format(record.expiresAt)]
            print(String(decoding: try JSONCoding.encoder.encode(body), as: UTF8.self))
        } else {
            print(token)
            FileHandle.standardError.write(Data("valid until \(RFC3339.format(record.expiresAt)), single use\n".utf8))
        }
    }
}

/// `cleanroomd audit verify`: checks the whole audit chain and its signed checkpoints.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "The tamper-evident audit log.", subcommands: [AuditVerifyCommand.self])
}

struct AuditVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify every audit entry's hash and link and every signed checkpoint.",
        discussion: """
            Detects edited, removed, reordered or rewritten entries. Exit codes: 0 the log verifies, \
            1 it does not (the first broken entry is named), 2 a usage error.
            """)

    @Option(name: .customLong("data-dir"), help: "The server's data directory (default: $CLEANROOM_DATA_DIR or ./data).")
    var dataDir: String?

    @Option(name: .customLong("audit-key"), help: "A pinned audit public key (PEM file) instead of the data directory's.")
    var auditKey: String?

    @Flag(name: .customLong("json"), help: "Print the result as JSON.")
    var json = false

    func run() async throws {
        let data = DataDirectory(path: dataDir ?? ProcessInfo.processInfo.environment["CLEANROOM_DATA_DIR"] ?? "data")
        guard FileManager.default.fileExists(atPath: data.file(GovernanceSetup.databaseFile).path) else {
            throw ValidationError("no database at \(data.file(GovernanceSetup.databaseFile).path)")
        }
        let store = try GovernanceSetup.openStore(dataDirectory: data, operatorToken: nil)
        let publicKey = try auditKey.map { try String(contentsOfFile: $0, encoding: .utf8) }
            ?? (store.auditPublicKey ?? "")
        do {
            let report = try store.verifyAuditLog(publicKeyPEM: publicKey)
            if json {
                print(#"{"valid":true,"entries":\#(report.entries),"checkpoints":\#(report.checkpoints),"signedThrough":\#(report.signedThrough),"head":"\#(report.headHash)"}"#)
            } else {
                print("audit log verifies: \(report.entries) entries, \(report.checkpoints) signed checkpoints, signed through entry \(report.signedThrough)")
            }
        } catch let failure as AuditVerifier.Failure {
            if json {
                print(#"{"valid":false,"code":"\#(failure.code.rawValue)","seq":\#(failure.seq),"message":"\#(failure.message)"}"#)
            } else {
                FileHandle.standardError.write(Data("audit log does NOT verify: \(failure)\n".utf8))
            }
            throw ExitCode(1)
        }
    }
}

/// `cleanroomd admin backup`: an online backup of the data directory's databases and secrets.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Back up the server's databases and keys into a new folder, while it runs.",
        discussion: """
            Copies the governance database (SQLite's online backup: a consistent snapshot), the \
            embedded KMS's keys and root key, the operator credentials, the audit signing key, the \
            metrics token and the development CA into --out (mode 0700, files 0600), checks the copy \
            (SQLite integrity, the audit chain and its signed checkpoints) and writes manifest.json \
            with every file's SHA-256. Objects (DATA/objects: dataset ciphertexts, job outputs) are \
            not copied: back them up with file-system tools, or S3 versioning. The backup holds keys: \
            keep it as safe as the data directory. Exit codes: 0 backed up, 1 the copy failed its \
            checks, 2 a usage error.
            """)

    @Option(name: .customLong("data-dir"), help: "The server's data directory (default: $CLEANROOM_DATA_DIR or ./data).")
    var dataDir: String?

    @Option(name: .customLong("out"), help: "A new (or empty) folder for the backup.")
    var out: String

    @Flag(name: .customLong("json"), help: "Print the backup's manifest as JSON.")
    var json = false

    func run() async throws {
        let data = DataDirectory(path: dataDir ?? ProcessInfo.processInfo.environment["CLEANROOM_DATA_DIR"] ?? "data")
        let manifest = try BackupReport.run { try DataBackup.create(from: data, to: URL(fileURLWithPath: out)) }
        BackupReport.print(manifest, json: json, text: "backed up \(data.path) into \(out)")
    }
}

/// `cleanroomd admin restore`: puts a backup back, with the server stopped.
struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a backup into the server's data directory (stop the server first).",
        discussion: """
            Checks the backup (every file's SHA-256 against its manifest, SQLite integrity, the audit \
            chain and its signed checkpoints) and only then puts its files in place, all or none (the \
            current ones are moved aside first, and back on a failure); a replaced database's -wal and \
            -shm files go with it. Refused while a server uses the data directory, over an existing \
            database without --replace, and over a readable database with later changes a restore \
            would undo (a revoked approval would count again, a used run would be free again) without \
            --discard-later-changes. Objects are not touched. Exit codes: 0 restored, 1 the backup \
            failed its checks or could not be put in place (nothing was changed), 2 a usage error.
            """)

    @Option(name: .customLong("from"), help: "The backup folder (`cleanroomd admin backup --out`).")
    var from: String

    @Option(name: .customLong("data-dir"), help: "The server's data directory (default: $CLEANROOM_DATA_DIR or ./data).")
    var dataDir: String?

    @Flag(name: .customLong("replace"), help: "Overwrite the data directory's database and keys.")
    var replace = false

    @Flag(
        name: .customLong("discard-later-changes"),
        help: "Restore even over a readable database with changes after the backup that a restore undoes (revoked approvals, started jobs, rotated or revoked credentials, suspensions, withdrawn datasets).")
    var discardLaterChanges = false

    @Flag(name: .customLong("json"), help: "Print the restored backup's manifest as JSON.")
    var json = false

    func run() async throws {
        let data = DataDirectory(path: dataDir ?? ProcessInfo.processInfo.environment["CLEANROOM_DATA_DIR"] ?? "data")
        let manifest = try BackupReport.run {
            try DataBackup.restore(
                from: URL(fileURLWithPath: from), to: data, replace: replace, discardLaterChanges: discardLaterChanges)
        }
        BackupReport.print(manifest, json: json, text: "restored \(data.path) from \(from)")
    }
}

/// How the backup commands report.
enum BackupReport {
    /// Runs `body`; a usage failure exits 2 (through the usual usage report), any other 1.
    static func run(_ body: () throws -> DataBackup.Manifest) throws -> DataBackup.Manifest {
        do {
            return try body()
        } catch let failure as DataBackup.Failure where failure.isUsage {
            throw ValidationError(failure.description)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    static func print(_ manifest: DataBackup.Manifest, json: Bool, text: String) {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            Swift.print(String(decoding: (try? encoder.encode(manifest)) ?? Data(), as: UTF8.self))
        } else {
            Swift.print(
                "\(text): \(manifest.files.count) files, audit log: \(manifest.auditEntries) entries (head \(manifest.auditHead.prefix(16))…)")
        }
    }
}
