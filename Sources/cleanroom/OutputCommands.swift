import AWS
import ArgumentParser
import CleanRoom
import Crypto
import Enclave
import Envelope
import Foundation

/// `cleanroom output`: list, download and decrypt the results a job delivered to your party.
struct OutputCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "output", abstract: "Results addressed to your party: list, download (and decrypt locally), decrypt.",
        discussion: "Exit codes: 0 success, 1 refused by the server or a failed check, 2 usage, 3 server unreachable.",
        subcommands: [OutputListCommand.self, OutputDownloadCommand.self, OutputDecryptCommand.self])
}

struct OutputListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "The outputs of a job addressed to your party (name, size, ciphertext SHA-256).")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The job id.") var job: String

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let reply = try await client.call("GET", JobRoutes.outputs(job))
            let items = reply["items"] as? [[String: Any]] ?? []
            let lines = items.map {
                "\($0["id"] ?? "")  \($0["name"] ?? "")  \(ProgressBar.bytes(($0["size"] as? NSNumber)?.int64Value ?? 0))  sha256 \($0["sha256"] ?? "")"
            }
            var empty = "no outputs for your party in job \(job)"
            if lines.isEmpty, !options.json {
                // Say why: the job has not delivered (yet), or the policy grants this party nothing.
                let status = try await client.call("GET", JobRoutes.job(job))
                let state = status["status"] as? String ?? "?"
                empty = state == "succeeded"
                    ? "job \(job) delivered no output to your party: the policy grants it none"
                    : OutputDownloadCommand.notDelivered(job, status: state, error: status["error"])
            }
            try options.output(lines.isEmpty ? empty : lines.joined(separator: "\n"), json: reply)
        }
    }
}

struct OutputDownloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "download",
        abstract: "Download your party's outputs of a job, decrypt them locally, and save a bundle `verify` checks offline.",
        discussion: """
            Each output is streamed from the server and decrypted on this machine with your party's RSA result \
            key (raw RSA keyring, OAEP-SHA256). An output is written only if its whole message authenticated and \
            its ciphertext matches the SHA-256 the server lists; otherwise (or when interrupted) nothing of it is \
            written and the command exits 1. The folder also receives the policy, the approval bundle and the \
            signed receipt: run `cleanroom verify DIR` next. DIR must be new, empty, or this job's bundle (then \
            the outputs downloaded now are added to it or replaced), so results of two jobs never mix.
            """)

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The job id.") var job: String

    @Option(name: .customLong("out"), help: "The folder to write the bundle into (created if missing).")
    var out: String

    @Option(name: .customLong("only"), help: "Download only this artifact (model, metrics, scores:own); repeatable.")
    var only: [String] = []

    static let artifacts = ["model", "metrics", "scores:own"]

    func validate() throws {
        if out == "-" {
            throw ValidationError(
                "--out is the bundle's folder, not a file: download into a folder, then print one output with "
                    + "`cleanroom output decrypt DIR/metrics.esdk --out -`")
        }
        if let unknown = only.first(where: { !Self.artifacts.contains($0) }) {
            throw ValidationError("--only \(unknown) is not an artifact: use \(Self.artifacts.joined(separator: ", "))")
        }
    }

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, profile) = try options.client()
            guard let partyId = profile.partyId else { throw CLIError("the profile has no party id: register first", exitCode: 2) }
            let key = try ResultKey.load(options)
            let folder = URL(fileURLWithPath: out)
            let existing = try Self.checkFolder(folder, job: job, party: partyId)

            let jobInfo = try await client.call("GET", JobRoutes.job(job))
            guard let status = jobInfo["status"] as? String, let collaboration = jobInfo["collaborationId"] as? String,
                let policyDigest = jobInfo["policyDigest"] as? String
            else { throw CLIError("the server's job answer lacks its status, collaboration or policy digest") }
            guard status == "succeeded" else { throw CLIError(Self.notDelivered(job, status: status, error: jobInfo["error"])) }
            let listed = (try await client.call("GET", JobRoutes.outputs(job))["items"] as? [[String: Any]] ?? [])
                .filter { only.isEmpty || only.contains($0["name"] as? String ?? "") }
            guard !listed.isEmpty else {
                throw CLIError(only.isEmpty ? "job \(job) delivered no output to your party" : "job \(job) has no output \(only.joined(separator: ", ")) for your party")
            }
            do {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            } catch {
                throw CLIError("cannot create the folder \(folder.path): \(Self.reason(error))", exitCode: 2)
            }
            Self.removeLeftovers(in: folder)
            // The manifest comes first and is rewritten after each output, so that a download that
            // fails or is interrupted part way leaves a folder this command recognizes and completes.
            var outputs = existing?.outputs ?? []
            func writeManifest() throws {
                try VerificationBundle.writeManifest(
                    VerificationBundle.Manifest(
                        job: job, collaboration: collaboration, party: partyId, policyDigest: policyDigest,
                        outputs: outputs.sorted { $0.name < $1.name }),
                    to: folder)
            }
            try writeManifest()

            // What `verify` needs: the policy the job ran (also after a revision of the
            // collaboration's), the approval bundle and the receipt, byte for byte.
            let policy = try await client.bytes(JobRoutes.policy(job), limit: PolicyDocument.maxBytes)
            guard Hex.encode(SHA256.hash(policy)) == policyDigest else {
                throw CLIError("the server's policy for job \(job) does not hash to the job's policy digest \(policyDigest)")
            }
            try VerificationBundle.write(policy, to: folder.appendingPathComponent(VerificationBundle.policyFile))
            let bundle = try await client.bytes(JobRoutes.approvalBundle(job), limit: ApprovalBundle.maxBytes)
            try VerificationBundle.write(bundle, to: folder.appendingPathComponent(VerificationBundle.approvalBundleFile))
            let receipt = try await client.bytes(JobRoutes.receipt(job), limit: SignedReceipt.maxBytes)
            try VerificationBundle.write(receipt, to: folder.appendingPathComponent(VerificationBundle.receiptFile))

            // Outputs downloaded earlier into this job's bundle stay listed unless downloaded again.
            for item in listed {
                guard let id = item["id"] as? String, let name = item["name"] as? String, let sha256 = item["sha256"] as? String
                else { throw CLIError("the server listed an output without id, name or sha256") }
                let names = VerificationBundle.fileNames(artifact: name)
                let size = (item["size"] as? NSNumber)?.int64Value ?? 0
                let progress = ProgressBar(total: size, enabled: !options.json && isatty(2) != 0)
                if progress.enabled { FileHandle.standardError.write(Data("\(name):\n".utf8)) }
                let response = try await client.stream(JobRoutes.outputContent(job, id), accept: "application/octet-stream")
                let result = try await ResultDecryption.decrypt(
                    chunks: response.body, key: key, partyId: partyId, jobID: job,
                    ciphertextTo: folder.appendingPathComponent(names.ciphertext),
                    plaintextTo: folder.appendingPathComponent(names.plaintext).path,
                    expectedSHA256: sha256, progress: progress, label: "output \(name)")
                progress.finish()
                outputs.removeAll { $0.name == name }
                outputs.append(
                    VerificationBundle.Output(
                        id: id, name: name, recipient: partyId, sha256: result.sha256, size: result.ciphertextBytes,
                        ciphertext: names.ciphertext, plaintext: names.plaintext))
                try writeManifest()
                if !options.json {
                    print("\(name): \(names.plaintext) (\(ProgressBar.bytes(result.plaintextBytes)) decrypted, ciphertext sha256 \(result.sha256.prefix(16))…)")
                }
            }
            let manifest = try VerificationBundle.readManifest(folder)
            let encoded = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(manifest))
            try options.output(
                "saved to \(folder.path); check it offline with `cleanroom verify \(folder.path)`",
                json: ["folder": folder.path, "manifest": encoded])
        }
    }

    /// Why a job has nothing to download, and what to do.
    static func notDelivered(_ job: String, status: String, error: Any?) -> String {
        let reason = (error as? [String: Any]).map { " (\($0["code"] ?? ""): \($0["message"] ?? ""))" } ?? ""
        switch status {
        case "failed": return "job \(job) failed\(reason), so it delivered no outputs: start a new job when the cause is fixed"
        case "cancelled": return "job \(job) was cancelled\(reason), so it delivered no outputs"
        default: return "job \(job) is \(status): outputs are delivered once it has succeeded; follow it with `cleanroom job watch \(job)`"
        }
    }

    /// Checks that `folder` may receive this job's bundle for `party`: it does not exist yet, or it
    /// is an empty folder, or it holds that bundle (returned). Anything else would mix results.
    static func checkFolder(_ folder: URL, job: String, party: String) throws -> VerificationBundle.Manifest? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory) else { return nil }
        guard isDirectory.boolValue else {
            throw CLIError("--out \(folder.path) is a file: give a folder (new or empty) for the bundle", exitCode: 2)
        }
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { !isLeftover($0) }
        } catch {
            throw CLIError("cannot read the folder \(folder.path): \(reason(error))", exitCode: 2)
        }
        if entries.isEmpty { return nil }
        guard entries.contains(VerificationBundle.manifestFile),
            let manifest = try? VerificationBundle.readManifest(folder), manifest.job == job, manifest.party == party
        else {
            let what = (try? VerificationBundle.readManifest(folder)).map { "party \($0.party)'s bundle of job \($0.job)" } ?? "other files"
            throw CLIError(
                "\(folder.path) holds \(what): download job \(job) into a new or empty folder, so results of two jobs never mix",
                exitCode: 2)
        }
        return manifest
    }

    /// A temporary file an interrupted download left (`.NAME.cleanroom-XXXXXX`, see `OutputFile`).
    static func isLeftover(_ name: String) -> Bool {
        guard name.hasPrefix("."), let range = name.range(of: ".cleanroom-", options: .backwards) else { return false }
        return name[range.upperBound...].count == 6
    }

    static func removeLeftovers(in folder: URL) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [] where isLeftover(name) {
            try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
        }
    }

    /// The system's reason for a file error, without Foundation's domain and code.
    static func reason(_ error: any Error) -> String {
        if let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return (error as NSError).localizedDescription
    }
}

struct OutputDecryptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decrypt",
        abstract: "Decrypt an output ciphertext you already have (e.g. from a bundle) with your party's result key.",
        discussion: "Writes FILE only if the whole message authenticated; exits 1 and writes nothing otherwise.")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The output ciphertext (an Encryption SDK message).") var file: String

    @Option(name: .customLong("out"), help: "Where to write the plaintext (- for standard output, after the whole message authenticated).")
    var out: String

    @Option(name: .customLong("party"), help: "Your party id (default: the profile's).") var party: String?

    func validate() throws {
        if out == "-", options.json { throw ValidationError("--json cannot be used with --out - (the plaintext is the standard output)") }
    }

    func run() async throws {
        try await runReporting(json: options.json) {
            guard let partyId = try party ?? options.loadProfile().partyId else {
                throw CLIError("no party id: pass --party or register first", exitCode: 2)
            }
            let key = try ResultKey.load(options)
            guard let handle = FileHandle(forReadingAtPath: file) else { throw CLIError("cannot read \(file)", exitCode: 2) }
            let reader = ChunkReader(handle: handle, progress: ProgressBar(total: 0, enabled: false))
            let result = try await ResultDecryption.decrypt(
                chunks: ByteStream(next: { try reader.next() }), key: key, partyId: partyId, jobID: nil, ciphertextTo: nil,
                plaintextTo: out, expectedSHA256: nil, progress: nil, label: file)
            if out == "-" { return }  // the plaintext was the output
            try options.output(
                "\(out): \(ProgressBar.bytes(result.plaintextBytes)) decrypted and authenticated",
                json: ["file": out, "plaintextBytes": result.plaintextBytes, "ciphertextSHA256": result.sha256])
        }
    }
}

/// The party's RSA result private key from its key folder.
enum ResultKey {
    static func load(_ options: GovernanceOptions) throws -> RSA.PrivateKey {
        guard let pem = try? String(contentsOf: options.resultKeyURL, encoding: .utf8) else {
            throw CLIError("no result key at \(options.resultKeyURL.path): run `cleanroom keys init` (or pass --profile/--home)", exitCode: 2)
        }
        do {
            return try RSA.PrivateKey(pemRepresentation: pem)
        } catch {
            throw CLIError("\(options.resultKeyURL.path) is not an RSA private key in PEM")
        }
    }
}

/// Decrypts an output as it streams in: ciphertext and plaintext go to temporary files that are
/// renamed into place only after the whole message authenticated (and its SHA-256 matched);
/// on any failure or interruption both are deleted, so nothing unauthenticated is ever left on disk.
enum ResultDecryption {
    /// The raw RSA keyring namespace outputs are encrypted under (the enclave's `ResultKeyring`);
    /// the key name is the recipient party id.
    static let keyNamespace = "cleanroom-result"

    struct Result {
        var sha256: String
        var ciphertextBytes: Int64
        var plaintextBytes: Int64
    }

    static func decrypt(
        chunks: ByteStream, key: RSA.PrivateKey, partyId: String, jobID: String?, ciphertextTo: URL?, plaintextTo: String,
        expectedSHA256: String?, progress: ProgressBar?, label: String
    ) async throws -> Result {
        let plaintextFile: OutputFile
        let ciphertextFile: OutputFile?
        do {
            plaintextFile = try OutputFile(path: plaintextTo)
            ciphertextFile = try ciphertextTo.map { try OutputFile(path: $0.path) }
        } catch {
            throw CLIError("cannot write \(plaintextTo): \(error)", exitCode: 2)
        }
        do {
            let result = try await open(
                chunks: chunks, key: key, partyId: partyId, jobID: jobID, expectedSHA256: expectedSHA256, label: label,
                ciphertext: { chunk in
                    progress?.advance(Int64(chunk.count))
                    try ciphertextFile?.write(chunk)
                },
                plaintext: { try plaintextFile.write($0) })
            try ciphertextFile?.commit()
            try plaintextFile.commit()
            return result
        } catch {
            plaintextFile.abandon()
            ciphertextFile?.abandon()
            throw error
        }
    }

    /// Decrypts and authenticates a result message, handing each ciphertext chunk and each
    /// plaintext piece to the closures as it goes; succeeds only when the whole message
    /// authenticated, its SHA-256 is `expectedSHA256` (if given) and its context names this party
    /// (and job, if given). The plaintext handed over before a failure must be discarded.
    static func open(
        chunks: ByteStream, key: RSA.PrivateKey, partyId: String, jobID: String?, expectedSHA256: String?, label: String,
        ciphertext: ([UInt8]) throws -> Void, plaintext: ([UInt8]) throws -> Void
    ) async throws -> Result {
        let keyring = try RawRSAKeyring(keyNamespace: keyNamespace, keyName: partyId, privateKey: key)
        let decryptor = MessageDecryptor(keyring: keyring, policy: .committingOnly)
        var hash = SHA256()
        var ciphertextBytes: Int64 = 0
        var plaintextBytes: Int64 = 0
        do {
            for try await chunk in chunks {
                hash.update(chunk)
                ciphertextBytes += Int64(chunk.count)
                try ciphertext(chunk)
                let piece = try await decryptor.update(chunk)
                plaintextBytes += Int64(piece.bytes.count)
                try plaintext(piece.bytes)
            }
            let verified = try decryptor.finish()
            let digest = Hex.encode(hash.finalize())
            if let expectedSHA256, digest != expectedSHA256.lowercased() {
                throw CLIError("\(label): the ciphertext's SHA-256 is \(digest), the server listed \(expectedSHA256): nothing written")
            }
            for (contextKey, expected) in [("cleanroom:recipient", partyId), ("cleanroom:job", jobID)] {
                if let expected, let actual = verified.encryptionContext[contextKey], actual != expected {
                    throw CLIError("\(label): the message is for \(contextKey) \(actual), not \(expected): nothing written")
                }
            }
            return Result(sha256: digest, ciphertextBytes: ciphertextBytes, plaintextBytes: plaintextBytes)
        } catch {
            switch error {
            case let error as CLIError: throw error
            case let error as EnvelopeError:
                throw CLIError("\(label) does not decrypt and authenticate (\(error.code): \(error.message)): nothing written")
            case let error as GovernanceClient.APIFailure: throw error
            default: throw CLIError("\(label): \(error): nothing written")
            }
        }
    }
}
