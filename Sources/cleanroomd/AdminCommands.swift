import ArgumentParser
import CleanRoom
import Foundation
import Server

/// `cleanroomd admin …`: operator tasks run on the server machine against its data directory.
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin", abstract: "Operator tasks on the server's data directory.",
        subcommands: [EnrollCommand.self])
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
