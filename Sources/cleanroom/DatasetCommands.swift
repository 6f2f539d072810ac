import AWS
import ArgumentParser
import CleanRoom
import Crypto
import Envelope
import Foundation

/// `cleanroom dataset`: declare datasets and upload their ciphertext.
struct DatasetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dataset", abstract: "Datasets: create, upload (encrypted on this machine), list, show, withdraw.",
        discussion: "Exit codes: 0 success, 1 refused by the server or a failed check, 2 usage, 3 server unreachable.",
        subcommands: [
            DatasetCreateCommand.self, DatasetUploadCommand.self, DatasetListCommand.self, DatasetShowCommand.self,
            DatasetWithdrawCommand.self,
        ])
}

struct DatasetCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Declare a dataset: its name and column schema.")

    @OptionGroup var options: GovernanceOptions

    @Option(name: .customLong("name"), help: "The dataset's name (unique within your party).")
    var name: String

    @Option(
        name: .customLong("columns"),
        help: "Columns as name:type[?] separated by commas, e.g. \"age:integer,hba1c:float?,label:boolean\" (? = nullable).")
    var columns: String

    func run() async throws {
        try await runReporting(json: options.json) {
            let parsed: [[String: Any]] = try columns.split(separator: ",").map { item in
                let parts = item.split(separator: ":", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, !parts[0].isEmpty else {
                    throw CLIError("column \"\(item)\" is not name:type", exitCode: 2)
                }
                var type = parts[1]
                var column: [String: Any] = ["name": parts[0]]
                if type.hasSuffix("?") {
                    type.removeLast()
                    column["nullable"] = true
                }
                column["type"] = type
                return column
            }
            let (client, _) = try options.client()
            let reply = try await client.call("POST", "/v1/datasets", json: ["name": name, "columns": parsed])
            try options.output("dataset \(reply["id"] ?? "") created (\(parsed.count) columns); upload it next", json: reply)
        }
    }
}

struct DatasetUploadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upload",
        abstract: "Encrypt a CSV on this machine and stream it to the server, with a progress bar on a terminal.",
        discussion: """
            The CSV is encrypted here, frame by frame as it is read, into an AWS Encryption SDK message (suite \
            0x0478) under a data key from your party's KMS key — the server's local KMS endpoint by default \
            (--kms-endpoint, or AWS KMS) with your registration's access key; a key is created on first use \
            and remembered in the profile (--kms-key-id to choose one). A key created here has a policy that \
            lets only you use it, and lets the clean room decrypt a data key only for an attested enclave \
            image you allowed: those of the policies you approve (`cleanroom policy approve`), --enclave-image, \
            or `cleanroom kms allow-image`. The encryption context names the \
            dataset, your party and your approval key's fingerprint (cleanroom:dataset, cleanroom:party, \
            cleanroom:owner-key). The server never sees the plaintext or the data key. \
            With --ciphertext, FILE is already such a message (for example made with AWS's own tools) and is \
            streamed unchanged. The dataset becomes available only when the whole message has arrived.
            """)

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The dataset id.") var dataset: String

    @Argument(help: "The CSV file (or, with --ciphertext, the Encryption SDK message).") var file: String

    @Flag(name: .customLong("ciphertext"), help: "FILE is already an Encryption SDK message: upload it unchanged.")
    var ciphertext = false

    @Option(name: .customLong("kms-key-id"), help: "The KMS key (id or ARN) for the data key (default: the profile's).")
    var kmsKeyId: String?

    @Option(name: .customLong("kms-endpoint"), help: "KMS endpoint URL (default: the profile's, else the server's).")
    var kmsEndpoint: String?

    @Option(name: .customLong("region"), help: "KMS region.")
    var region = "us-east-1"

    @Option(
        name: .customLong("enclave-image"),
        help: "When a key is created: an enclave image (PCR0, 96 hex digits) it may release data keys to (repeatable).")
    var enclaveImages: [String] = []

    @Option(
        name: .customLong("key-release-principal"),
        help: "When a key is created in AWS KMS: the principal the clean room server calls KMS as (its role ARN).")
    var keyReleasePrincipal: String?

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, profile) = try options.client()
            guard let handle = FileHandle(forReadingAtPath: file) else { throw CLIError("cannot read \(file)", exitCode: 2) }
            let size = Int((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.intValue ?? 0)
            let progress = ProgressBar(total: Int64(size), enabled: !options.json && isatty(2) != 0)
            let stream: ByteStream
            let length: Int?
            if ciphertext {
                let reader = ChunkReader(handle: handle, progress: progress)
                stream = ByteStream(next: { try reader.next() })
                length = size
            } else {
                let encryptor = try await makeEncryptor(profile: profile, server: try options.serverURL(profile))
                let reader = EncryptingReader(handle: handle, encryptor: encryptor, progress: progress)
                stream = ByteStream(next: { try reader.next() })
                length = nil
            }
            let reply = try await client.upload("/v1/datasets/\(dataset)/content", stream: stream, length: length)
            progress.finish()
            try options.output(
                "dataset \(dataset) uploaded: \(reply["size"] ?? 0) bytes of ciphertext, sha256 \(reply["sha256"] ?? ""), suite \(reply["suite"] ?? "")",
                json: reply)
        }
    }

    /// The encryptor: a data key from the party's KMS key, the encryption context the server requires.
    func makeEncryptor(profile: Profile, server: String) async throws -> MessageEncryptor {
        let keys = try LocalKeys(options)
        guard let partyId = profile.partyId else { throw CLIError("the profile has no party: register first", exitCode: 2) }
        let kms = try PartyKMS(profile: profile, server: server, endpoint: kmsEndpoint, region: region)
        var keyId = kmsKeyId ?? profile.kmsKeyId
        if keyId == nil {
            let (arn, policy) = try await kms.createKey(enclaveImages: enclaveImages, keyReleasePrincipal: keyReleasePrincipal)
            keyId = arn
            var updated = profile
            updated.kmsKeyId = arn
            updated.kmsEndpoint = kms.endpoint
            updated.kmsKeyReleasePrincipal = keyReleasePrincipal ?? profile.kmsKeyReleasePrincipal
            try options.saveProfile(updated)
            if !options.json {
                let release =
                    policy.keyReleasePrincipal == nil
                    ? "no clean room may decrypt its data keys until `cleanroom kms allow-image IMAGE --key-release-principal ARN`"
                    : policy.enclaveImages.isEmpty
                        ? "its data keys go to no enclave until you approve a policy (or `cleanroom kms allow-image`)"
                        : "its data keys go only to enclave images \(policy.enclaveImages.joined(separator: ", "))"
                FileHandle.standardError.write(Data("created KMS key \(arn) for your datasets: only you may use it; \(release)\n".utf8))
            }
        } else if !enclaveImages.isEmpty || keyReleasePrincipal != nil {
            throw CLIError(
                "--enclave-image and --key-release-principal apply only when a key is created; the profile's key is \(keyId!): use `cleanroom kms allow-image`",
                exitCode: 2)
        }
        let context = EncryptionContext([
            "cleanroom:dataset": dataset, "cleanroom:party": partyId, "cleanroom:owner-key": keys.fingerprint,
        ])
        return try await MessageEncryptor(
            keyring: try KMSKeyring(kms: kms.client, keyID: keyId!), encryptionContext: context,
            suite: .aes256GCMHKDFSHA512Commit)
    }
}

/// Reads a CSV in 64 KiB chunks and yields the ciphertext the encryptor has ready (header, then
/// whole frames, then the final frame): memory stays at about one frame whatever the file size.
final class EncryptingReader: @unchecked Sendable {  // read by one task at a time (the upload pump)
    let handle: FileHandle
    let encryptor: MessageEncryptor
    let progress: ProgressBar
    private var finished = false

    init(handle: FileHandle, encryptor: MessageEncryptor, progress: ProgressBar) {
        self.handle = handle
        self.encryptor = encryptor
        self.progress = progress
    }

    func next() throws -> [UInt8]? {
        while !finished {
            guard let data = try handle.read(upToCount: 1 << 16), !data.isEmpty else {
                finished = true
                try? handle.close()
                return try encryptor.finish()
            }
            progress.advance(Int64(data.count))
            let out = try data.withUnsafeBytes { try encryptor.update(raw: $0) }
            if !out.isEmpty { return out }
        }
        return nil
    }
}

/// Reads a file in 64 KiB chunks for a streamed upload, reporting progress.
final class ChunkReader: @unchecked Sendable {  // read by one task at a time (the upload pump)
    let handle: FileHandle
    let progress: ProgressBar

    init(handle: FileHandle, progress: ProgressBar) {
        self.handle = handle
        self.progress = progress
    }

    func next() throws -> [UInt8]? {
        guard let data = try handle.read(upToCount: 1 << 16), !data.isEmpty else {
            try? handle.close()
            return nil
        }
        progress.advance(Int64(data.count))
        return Array(data)
    }
}

/// A one-line progress bar on stderr: bytes sent, rate and time left. Silent when disabled.
final class ProgressBar: @unchecked Sendable {  // updated by one task at a time
    let total: Int64
    let enabled: Bool
    private var done: Int64 = 0
    private let start = Date()
    private var lastDraw = Date.distantPast

    init(total: Int64, enabled: Bool) {
        self.total = total
        self.enabled = enabled
    }

    func advance(_ bytes: Int64) {
        done += bytes
        guard enabled, Date().timeIntervalSince(lastDraw) > 0.1 || done == total else { return }
        lastDraw = Date()
        let elapsed = max(Date().timeIntervalSince(start), 0.001)
        let rate = Double(done) / elapsed
        let fraction = total > 0 ? Double(done) / Double(total) : 0
        let width = 30
        let filled = Int(fraction * Double(width))
        let left = rate > 0 && total > done ? Double(total - done) / rate : 0
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        let line = String(
            format: "\r%@ %3.0f%%  %@ / %@  %@/s  %@ left", bar, fraction * 100, Self.bytes(done), Self.bytes(total),
            Self.bytes(Int64(rate)), Self.duration(left))
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s / 60 % 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}

struct DatasetListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Your party's datasets.")

    @OptionGroup var options: GovernanceOptions

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let reply = try await client.call("GET", "/v1/datasets")
            let items = reply["items"] as? [[String: Any]] ?? []
            let lines = items.map { "\($0["id"] ?? "")  \($0["status"] ?? "")  \($0["name"] ?? "")" }
            try options.output(lines.isEmpty ? "no datasets" : lines.joined(separator: "\n"), json: reply)
        }
    }
}

struct DatasetShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "A dataset's metadata.")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The dataset id.") var dataset: String

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let reply = try await client.call("GET", "/v1/datasets/\(dataset)")
            let text = ["id", "name", "status", "size", "sha256", "objectVersion", "suite", "uploadedAt"]
                .compactMap { key in reply[key].map { "\(key): \($0)" } }.joined(separator: "\n")
            try options.output(text, json: reply)
        }
    }
}

struct DatasetWithdrawCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "withdraw", abstract: "Withdraw a dataset.")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The dataset id.") var dataset: String

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let reply = try await client.call("DELETE", "/v1/datasets/\(dataset)")
            try options.output("dataset \(dataset) withdrawn", json: reply)
        }
    }
}
