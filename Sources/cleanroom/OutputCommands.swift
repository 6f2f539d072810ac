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
        try await runReporting {
            let (client, _) = try options.client()
            let reply = try await client.call("GET", JobRoutes.outputs(job))
            let items = reply["items"] as? [[String: Any]] ?? []
            let lines = items.map {
                "\($0["id"] ?? "")  \($0["name"] ?? "")  \(ProgressBar.bytes(($0["size"] as? NSNumber)?.int64Value ?? 0))  sha256 \($0["sha256"] ?? "")"
            }
            try options.output(lines.isEmpty ? "no outputs for your party in job \(job)" : lines.joined(separator: "\n"), json: reply)
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
            its ciphertext matches the SHA-256 the server lists; otherwise nothing of it is written and the \
            command exits 1. The folder also receives the policy, the approval bundle and the signed receipt: \
            run `cleanroom verify DIR` next.
            """)

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The job id.") var job: String

    @Option(name: .customLong("out"), help: "The folder to write the bundle into (created if missing).")
    var out: String

    @Option(name: .customLong("only"), help: "Download only this artifact (model, metrics, scores:own); repeatable.")
    var only: [String] = []

    func run() async throws {
        try await runReporting {
            let (client, profile) = try options.client()
            guard let partyId = profile.partyId else { throw CLIError("the profile has no party id: register first", exitCode: 2) }
            let key = try ResultKey.load(options)
            let folder = URL(fileURLWithPath: out)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)

            let jobInfo = try await client.call("GET", JobRoutes.job(job))
            guard let status = jobInfo["status"] as? String, let collaboration = jobInfo["collaborationId"] as? String,
                let policyDigest = jobInfo["policyDigest"] as? String
            else { throw CLIError("the server's job answer lacks its status, collaboration or policy digest") }
            guard status == "succeeded" else {
                throw CLIError("job \(job) is \(status): outputs are delivered when it has succeeded (`cleanroom job watch \(job)`)")
            }
            let listed = (try await client.call("GET", JobRoutes.outputs(job))["items"] as? [[String: Any]] ?? [])
                .filter { only.isEmpty || only.contains($0["name"] as? String ?? "") }
            guard !listed.isEmpty else {
                throw CLIError(only.isEmpty ? "job \(job) delivered no output to your party" : "job \(job) has no output \(only.joined(separator: ", ")) for your party")
            }

            // What `verify` needs: the policy, the approval bundle and the receipt, byte for byte.
            let fetched = try FetchedCollaboration(try await client.call("GET", JobRoutes.collaboration(collaboration)))
            if fetched.digest == policyDigest {
                try VerificationBundle.write(Array(CanonicalJSON.string(fetched.policy).utf8), to: folder.appendingPathComponent(VerificationBundle.policyFile))
            } else if !options.json {
                FileHandle.standardError.write(Data("warning: the collaboration's policy changed since this job; put the job's policy (digest \(policyDigest)) in \(VerificationBundle.policyFile) before `verify`\n".utf8))
            }
            let bundle = try await client.bytes(JobRoutes.approvalBundle(job), limit: ApprovalBundle.maxBytes)
            try VerificationBundle.write(bundle, to: folder.appendingPathComponent(VerificationBundle.approvalBundleFile))
            let receipt = try await client.bytes(JobRoutes.receipt(job), limit: SignedReceipt.maxBytes)
            try VerificationBundle.write(receipt, to: folder.appendingPathComponent(VerificationBundle.receiptFile))

            var outputs: [VerificationBundle.Output] = []
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
                    plaintextTo: folder.appendingPathComponent(names.plaintext),
                    expectedSHA256: sha256, progress: progress, label: "output \(name)")
                progress.finish()
                outputs.append(
                    VerificationBundle.Output(
                        id: id, name: name, recipient: partyId, sha256: result.sha256, size: result.ciphertextBytes,
                        ciphertext: names.ciphertext, plaintext: names.plaintext))
                if !options.json {
                    print("\(name): \(names.plaintext) (\(ProgressBar.bytes(result.plaintextBytes)) decrypted, ciphertext sha256 \(result.sha256.prefix(16))…)")
                }
            }
            let manifest = VerificationBundle.Manifest(
                job: job, collaboration: collaboration, party: partyId, policyDigest: policyDigest, outputs: outputs)
            try VerificationBundle.writeManifest(manifest, to: folder)
            let encoded = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(manifest))
            try options.output(
                "saved to \(folder.path); check it offline with `cleanroom verify \(folder.path)`",
                json: ["folder": folder.path, "manifest": encoded])
        }
    }
}

struct OutputDecryptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decrypt",
        abstract: "Decrypt an output ciphertext you already have (e.g. from a bundle) with your party's result key.",
        discussion: "Writes FILE only if the whole message authenticated; exits 1 and writes nothing otherwise.")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The output ciphertext (an Encryption SDK message).") var file: String

    @Option(name: .customLong("out"), help: "Where to write the plaintext.") var out: String

    @Option(name: .customLong("party"), help: "Your party id (default: the profile's).") var party: String?

    func run() async throws {
        try await runReporting {
            guard let partyId = try party ?? options.loadProfile().partyId else {
                throw CLIError("no party id: pass --party or register first", exitCode: 2)
            }
            let key = try ResultKey.load(options)
            guard let handle = FileHandle(forReadingAtPath: file) else { throw CLIError("cannot read \(file)", exitCode: 2) }
            let reader = ChunkReader(handle: handle, progress: ProgressBar(total: 0, enabled: false))
            let result = try await ResultDecryption.decrypt(
                chunks: ByteStream(next: { try reader.next() }), key: key, partyId: partyId, jobID: nil, ciphertextTo: nil,
                plaintextTo: URL(fileURLWithPath: out), expectedSHA256: nil, progress: nil, label: file)
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
/// on any failure both are deleted, so nothing unauthenticated is ever left on disk.
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
        chunks: ByteStream, key: RSA.PrivateKey, partyId: String, jobID: String?, ciphertextTo: URL?, plaintextTo: URL,
        expectedSHA256: String?, progress: ProgressBar?, label: String
    ) async throws -> Result {
        let keyring = try RawRSAKeyring(keyNamespace: keyNamespace, keyName: partyId, privateKey: key)
        let decryptor = MessageDecryptor(keyring: keyring, policy: .committingOnly)
        let plaintextFile: OutputFile
        let ciphertextFile: OutputFile?
        do {
            plaintextFile = try OutputFile(path: plaintextTo.path)
            ciphertextFile = try ciphertextTo.map { try OutputFile(path: $0.path) }
        } catch {
            throw CLIError("cannot write into \(plaintextTo.deletingLastPathComponent().path): \(error)", exitCode: 2)
        }
        var hash = SHA256()
        var ciphertextBytes: Int64 = 0
        var plaintextBytes: Int64 = 0
        do {
            for try await chunk in chunks {
                hash.update(chunk)
                ciphertextBytes += Int64(chunk.count)
                progress?.advance(Int64(chunk.count))
                try ciphertextFile?.write(chunk)
                let plaintext = try await decryptor.update(chunk)
                plaintextBytes += Int64(plaintext.bytes.count)
                try plaintextFile.write(plaintext.bytes)
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
            try ciphertextFile?.commit()
            try plaintextFile.commit()
            return Result(sha256: digest, ciphertextBytes: ciphertextBytes, plaintextBytes: plaintextBytes)
        } catch {
            plaintextFile.abandon()
            ciphertextFile?.abandon()
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
