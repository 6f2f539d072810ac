import ArgumentParser
import CleanRoom
import Foundation

/// Options every governance command takes. Precedence: flag, then environment
/// (`CLEANROOM_SERVER`, `CLEANROOM_PROFILE`, `CLEANROOM_HOME`), then the profile file.
struct GovernanceOptions: ParsableArguments {
    @Option(name: .customLong("server"), help: "Server URL (default: $CLEANROOM_SERVER, else the profile's).")
    var server: String?

    @Option(name: .customLong("profile"), help: "Profile name (default: $CLEANROOM_PROFILE, else \"default\").")
    var profile: String?

    @Option(name: .customLong("home"), help: "Folder of profiles and keys (default: $CLEANROOM_HOME, else ~/.cleanroom).")
    var home: String?

    @Flag(name: .customLong("json"), help: "Print JSON instead of text (and no progress bar).")
    var json = false

    var environment: [String: String] { ProcessInfo.processInfo.environment }

    var profileName: String { profile ?? environment["CLEANROOM_PROFILE"] ?? "default" }

    var homeURL: URL {
        if let home = home ?? environment["CLEANROOM_HOME"] { return URL(fileURLWithPath: home) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cleanroom")
    }

    var keysURL: URL { homeURL.appendingPathComponent("keys/\(profileName)") }
    var signingKeyURL: URL { keysURL.appendingPathComponent("signing-key.pem") }
    var resultKeyURL: URL { keysURL.appendingPathComponent("result-key.pem") }
    var profileURL: URL { homeURL.appendingPathComponent("profiles/\(profileName).json") }

    func loadProfile() throws -> Profile {
        guard FileManager.default.fileExists(atPath: profileURL.path) else { return Profile() }
        do {
            return try JSONDecoder().decode(Profile.self, from: Data(contentsOf: profileURL))
        } catch {
            throw CLIError("the profile \(profileURL.path) is not valid JSON: run `cleanroom register` again")
        }
    }

    func saveProfile(_ profile: Profile) throws {
        try SecureFile.write(Data(try JSONCoding.encoder.encode(profile)), to: profileURL)
    }

    /// The server URL from flag, environment or profile.
    func serverURL(_ profile: Profile) throws -> String {
        guard let url = server ?? environment["CLEANROOM_SERVER"] ?? profile.server else {
            throw CLIError("no server: pass --server URL, set CLEANROOM_SERVER, or register first", exitCode: 2)
        }
        return url.hasSuffix("/") ? String(url.dropLast()) : url
    }

    /// A client authenticated with the profile's credential.
    func client() throws -> (GovernanceClient, Profile) {
        let profile = try loadProfile()
        guard let credential = profile.credential else {
            throw CLIError("profile \(profileName) has no credential: run `cleanroom register` first", exitCode: 2)
        }
        return (GovernanceClient(baseURL: try serverURL(profile), token: credential), profile)
    }

    /// Prints `value` as JSON (with `--json`) or the text.
    func output(_ text: @autoclosure () -> String, json value: Any) throws {
        if json {
            let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(text())
        }
    }
}

/// The profile file (mode 0600): where the party's server is and its credentials.
struct Profile: Codable {
    var server: String?
    var partyId: String?
    var principalId: String?
    var credential: String?
    var accessKeyId: String?
    var secretAccessKey: String?
    var kmsEndpoint: String?
    var kmsKeyId: String?
    /// The principal the clean room server calls KMS as (AWS KMS: its role ARN), for the key's policy.
    var kmsKeyReleasePrincipal: String?
    /// The server's audit key, pinned the first time `audit verify` sees it.
    var auditPublicKey: String?
}

/// A failure the CLI reports as one line on stderr, with its exit code (1 unless said otherwise).
struct CLIError: Error, CustomStringConvertible {
    let description: String
    let exitCode: Int32
    /// The code `--json` reports (by default `usage`, `unreachable` or `refused`, after the exit code).
    let code: String?
    init(_ description: String, exitCode: Int32 = 1, code: String? = nil) {
        self.description = description
        self.exitCode = exitCode
        self.code = code
    }
}

/// Files holding secrets: created 0600 (folders 0700), written to a temporary file and renamed.
enum SecureFile {
    static func write(_ data: Data, to url: URL) throws {
        let folder = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw CLIError("cannot write \(url.path)")
        }
        if rename(temporary.path, url.path) != 0 {
            try? FileManager.default.removeItem(at: temporary)
            throw CLIError("cannot write \(url.path)")
        }
    }
}

/// Runs a command body, turning failures into one line on stderr and the documented exit code.
///
/// With `json`, a failure is also printed to stdout as one JSON object, `{"error": {"code",
/// "message", "status"?}}`, so a script reading `--json` output gets the reason's code (the
/// server's, e.g. `run_limit_reached`; for the CLI's own `usage`, `unreachable`, `refused`, a
/// specific one such as `kms_not_updated`, or `failed` for anything unforeseen).
func runReporting(json: Bool = false, _ body: () async throws -> Void) async throws {
    func report(code: String, message: String, status: Int? = nil, line: String, exit: Int32) -> ExitCode {
        FileHandle.standardError.write(Data("error: \(line)\n".utf8))
        if json {
            var object: [String: Any] = ["code": code, "message": message]
            if let status { object["status"] = status }
            let data = (try? JSONSerialization.data(withJSONObject: ["error": object], options: [.sortedKeys])) ?? Data()
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        }
        return ExitCode(exit)
    }
    do {
        try await body()
    } catch let error as CLIError {
        let code = error.code ?? (error.exitCode == 2 ? "usage" : error.exitCode == 3 ? "unreachable" : "refused")
        throw report(code: code, message: error.description, line: error.description, exit: error.exitCode)
    } catch let error as GovernanceClient.APIFailure {
        throw report(
            code: error.code, message: error.message, status: error.status == 0 ? nil : error.status,
            line: "\(error.code): \(error.message)", exit: error.status == 0 ? 3 : 1)
    } catch let error as ExitCode {
        throw error
    } catch {
        throw report(code: "failed", message: "\(error)", line: "\(error)", exit: 1)
    }
}
