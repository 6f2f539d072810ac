import AWS
import ArgumentParser
import Attestation
import CleanRoom
import Crypto
import Enclave
import Foundation

/// `cleanroom verify DIR`: checks a downloaded bundle offline — nothing here talks to the server.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a job's results offline: attestation, receipt, approvals and output hashes.",
        discussion: """
            DIR is the folder `cleanroom output download` wrote. The checks run in this order; the first \
            failure is reported and the command exits 1.
              policy:      policy.json hashes (SHA-256) to the job's policy digest.
              attestation: COSE signature, chain to the trusted root at the document's time, PCRs allowed by the policy, no debug unless allowed.
              receipt:     signed by the receipt key that the attestation's user_data binds to this job and policy.
              approvals:   every party approved this digest with the key the policy names, unexpired; the bundle is the receipt's.
              outputs:     the receipt lists exactly what the policy grants; each ciphertext in DIR has the receipt's SHA-256.
              decrypted:   each decrypted file is the decryption of its ciphertext (with your party's result key, \
            found as the other commands find it: --home, --profile). Without the key, decrypted files are reported \
            as not checked; so are your outputs missing from DIR and files in DIR that are not part of the bundle.
            The trusted root is AWS's Nitro Enclaves Root-G1 unless --root names another: a local-mode server's \
            development root is DATA_DIR/development-ca/root.pem, and results under it are marked DEVELOPMENT. \
            Exit codes: 0 verified, 1 a check failed, 2 the bundle or a flag cannot be used.
            """)

    @Argument(help: "The bundle folder written by `cleanroom output download`.")
    var folder: String

    @Option(name: .customLong("root"), help: "PEM file of the trusted attestation root (default: the AWS Nitro Enclaves root).")
    var root: String?

    @Option(name: .customLong("policy"), help: "Use this policy file (canonical JSON) instead of DIR/policy.json.")
    var policy: String?

    @Option(name: .customLong("home"), help: "Folder of profiles and keys, for the result key (default: $CLEANROOM_HOME, else ~/.cleanroom).")
    var home: String?

    @Option(name: .customLong("profile"), help: "Profile whose result key checks the decrypted files (default: $CLEANROOM_PROFILE, else \"default\").")
    var profile: String?

    @Flag(name: .customLong("json"), help: "Print JSON instead of text.")
    var json = false

    /// The party's keys, when the profile has them and names a party.
    func partyKey() -> BundleVerifier.PartyKey {
        var arguments: [String] = []
        if let home { arguments += ["--home", home] }
        if let profile { arguments += ["--profile", profile] }
        guard let options = try? GovernanceOptions.parse(arguments) else { return .none("the key folder could not be located") }
        guard let key = try? ResultKey.load(options) else {
            return .none("no result key in \(options.keysURL.path): pass --home/--profile of the party's keys")
        }
        guard let party = (try? options.loadProfile())?.partyId else {
            return .none("the profile \(options.profileName) names no party")
        }
        return .key(party: party, key, try? LocalKeys(options))
    }

    func run() async throws {
        let trustedRoot: TrustedRoot
        do {
            if let root {
                guard let pem = try? String(contentsOf: URL(fileURLWithPath: root), encoding: .utf8) else {
                    throw CLIError("cannot read the root certificate \(root)", exitCode: 2)
                }
                do {
                    trustedRoot = try TrustedRoot(pem: pem)
                } catch {
                    throw CLIError("--root \(root): \(error.message)", exitCode: 2)
                }
            } else {
                trustedRoot = .awsNitroEnclavesRootG1
            }
        } catch let error as CLIError {
            FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
            throw ExitCode(error.exitCode)
        }
        let report: BundleVerifier.Report
        do {
            report = try await BundleVerifier(
                folder: URL(fileURLWithPath: folder), root: trustedRoot, policyPath: policy, partyKey: partyKey()
            ).verify()
        } catch let failure as BundleVerifier.Failure {
            if json {
                printJSON([
                    "verified": false, "check": failure.check, "code": failure.code, "message": failure.message,
                ])
            } else {
                FileHandle.standardError.write(
                    Data("verification FAILED at \(failure.check): \(failure.code): \(failure.message)\n".utf8))
            }
            throw ExitCode(1)
        } catch let error as CLIError {
            FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
            throw ExitCode(error.exitCode)
        }
        if json {
            printJSON(report.json)
        } else {
            print(report.text)
        }
    }

    private func printJSON(_ object: [String: Any]) {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        print(String(decoding: data, as: UTF8.self))
    }
}

/// The offline checks of `cleanroom verify`, each either passing with a line for the report or
/// failing with the check's name, a stable code and a message saying what did not match.
struct BundleVerifier {
    let folder: URL
    let root: TrustedRoot
    let policyPath: String?
    var partyKey: PartyKey = .none("no keys were given")

    /// The verifying party's result key and (when its approval key is there too) its keys, or why
    /// there are none.
    enum PartyKey {
        case key(party: String, RSA.PrivateKey, LocalKeys?)
        case none(String)
    }

    /// What became of an output's decrypted file.
    enum PlaintextCheck: String {
        case verified, absent
        case unchecked = "not checked"
    }

    struct Failure: Error {
        let check: String
        let code: String
        let message: String
    }

    struct Report {
        var job: String
        var party: String
        var policyDigest: String
        var development: Bool
        var lines: [(check: String, detail: String)]
        var outputs: [VerificationBundle.Output]
        var plaintext: [String: PlaintextCheck]
        /// What DIR holds or lacks that was not verified: said, never passed over.
        var notes: [String]
        var notInBundle: [String]
        var uncheckedFiles: [String]

        var text: String {
            var out = ["bundle for job \(job), party \(party), policy \(policyDigest)"]
            for line in lines { out.append("  ✓ \(line.check.padding(toLength: 12, withPad: " ", startingAt: 0)) \(line.detail)") }
            for note in notes { out.append("  ! \(note)") }
            var verdict = development ? "VERIFIED (DEVELOPMENT attestation: a local-mode enclave, not a real Nitro Enclave)" : "VERIFIED"
            if !notes.isEmpty { verdict += "; only what is marked ✓ was checked" }
            out.append(verdict)
            return out.joined(separator: "\n")
        }

        var json: [String: Any] {
            [
                "verified": true, "job": job, "party": party, "policyDigest": policyDigest, "development": development,
                "checks": Dictionary(lines.map { ($0.check, $0.detail) }, uniquingKeysWith: { a, _ in a }),
                "outputs": outputs.map {
                    [
                        "name": $0.name, "sha256": $0.sha256, "ciphertextFile": $0.ciphertext, "file": $0.plaintext,
                        "plaintext": (plaintext[$0.name] ?? .unchecked).rawValue,
                    ]
                },
                "notes": notes, "notInBundle": notInBundle, "uncheckedFiles": uncheckedFiles,
            ]
        }
    }

    func verify() async throws -> Report {
        let manifest = try VerificationBundle.readManifest(folder)
        var lines: [(String, String)] = []

        // Policy: the bytes hash to the job's digest, and they describe a runnable policy.
        let policyBytes: [UInt8]
        if let policyPath {
            guard let data = FileManager.default.contents(atPath: policyPath) else {
                throw CLIError("cannot read the policy file \(policyPath)", exitCode: 2)
            }
            policyBytes = Array(data)
        } else {
            policyBytes = try VerificationBundle.read(folder, VerificationBundle.policyFile, limit: JobPolicy.maxBytes)
        }
        let policyDigest = Hex.encode(SHA256.hash(policyBytes))
        guard policyDigest == manifest.policyDigest.lowercased() else {
            throw Failure(
                check: "policy", code: "policy.digest_mismatch",
                message: "the policy's SHA-256 is \(policyDigest), the job ran policy \(manifest.policyDigest)")
        }
        let policy: JobPolicy
        do {
            policy = try JobPolicy(bytes: policyBytes)
        } catch {
            throw Failure(check: "policy", code: error.code.rawValue, message: error.message)
        }
        lines.append(("policy", "sha256 \(policyDigest) is the job's policy \"\(policy.name)\""))

        // Attestation and receipt.
        let receiptBytes = try VerificationBundle.read(folder, VerificationBundle.receiptFile, limit: SignedReceipt.maxBytes)
        let signed: SignedReceipt
        do {
            signed = try SignedReceipt(bytes: receiptBytes)
        } catch {
            throw Failure(check: "receipt", code: error.code.rawValue, message: error.message)
        }
        let allowedSets = try Self.allowedPCRSets(policy)
        let root = self.root
        var attested: VerifiedAttestationDocument?
        let verifier = ReceiptVerifier(expectedPolicyDigest: policyDigest, expectedJobID: manifest.job) { bytes in
            let document: AttestationDocument
            do {
                document = try AttestationDocument(bytes: bytes)
            } catch let error as AttestationError {
                throw ReceiptError(.attestationFailed, "the attestation document does not parse: \(error.code): \(error.message)")
            }
            // Offline, the document is judged at its own (signed) time: an AWS leaf lives three hours.
            let verifier = AttestationVerifier(trustedRoots: [root], at: UnixTime(milliseconds: document.timestamp))
            let expectations = AttestationExpectations(
                allowedPCRSets: allowedSets, allowDebug: policy.enclave.allowDebug, maxAgeMilliseconds: nil)
            let verified: VerifiedAttestationDocument
            do {
                verified = try verifier.verify(document, expectations: expectations)
            } catch let error as AttestationError {
                var message = "\(error.code): \(error.message)"
                if error.code.rawValue.contains("chain") || error.code.rawValue.contains("root") || error.code.rawValue.contains("untrusted") {
                    message += root.isDevelopment
                        ? " (is --root the development root of the server that ran the job?)"
                        : " (a local-mode server's documents chain to its development root: pass --root DATA_DIR/development-ca/root.pem)"
                }
                throw ReceiptError(.attestationFailed, "the attestation document does not verify against root \(root.name): \(message)")
            }
            attested = verified
            return AttestedFacts(userData: verified.userData ?? [], pcr0: verified.pcrs[0] ?? [], development: verified.isDevelopment)
        }
        let verifiedReceipt: VerifiedReceipt
        do {
            verifiedReceipt = try verifier.verify(signed)
        } catch {
            throw Failure(
                check: error.code == .attestationFailed ? "attestation" : "receipt", code: error.code.rawValue,
                message: error.message)
        }
        guard let attested else { throw Failure(check: "attestation", code: "attestation.missing", message: "no attestation was checked") }
        let receipt = verifiedReceipt.receipt
        let pcr0 = attested.pcrHex(0) ?? ""
        lines.append((
            "attestation",
            "chains to \(root.name)\(attested.isDevelopment ? " (DEVELOPMENT)" : ""); PCR0 \(pcr0.prefix(16))… is allowed by the policy"
        ))
        lines.append(("receipt", "signed by the attested enclave's key for job \(receipt.jobID)"))
        // The enclave refuses an expired policy by its own clock; here by the attested time.
        guard let expiry = RFC3339.parse(policy.constraints.expiresAt) else {
            throw Failure(check: "policy", code: "policy.invalid", message: "the policy's constraints.expiresAt is not an RFC 3339 time")
        }
        guard expiry > Int64(attested.timestamp / 1000) else {
            throw Failure(
                check: "policy", code: "policy.expired",
                message: "the policy expired at \(policy.constraints.expiresAt), before the job ran (attested at "
                    + "\(RFC3339.format(Int64(attested.timestamp / 1000))))")
        }

        // Approvals: unanimity, each with the policy's key, unexpired at the attested time; and it is the receipt's bundle.
        let bundleBytes = try VerificationBundle.read(folder, VerificationBundle.approvalBundleFile, limit: ApprovalBundle.maxBytes)
        let bundle: ApprovalBundle
        let verifiedBundle: VerifiedApprovalBundle
        do {
            bundle = try ApprovalBundle(bytes: bundleBytes)
            verifiedBundle = try bundle.verify(
                against: policy, policyDigest: policyDigest, now: Int64(attested.timestamp / 1000))
        } catch {
            throw Failure(check: "approvals", code: error.code.rawValue, message: error.message)
        }
        let bundleDigest = Hex.encode(SHA256.hash(bundleBytes))
        guard bundleDigest == receipt.approvalBundleDigest else {
            throw Failure(
                check: "approvals", code: ReceiptError.Code.approvalBundleMismatch.rawValue,
                message: "the approval bundle's SHA-256 is \(bundleDigest), the receipt says \(receipt.approvalBundleDigest)")
        }
        // The bundle's approvals are checked with the keys the policy names, which the server filled
        // in: the verifying party's own entry must carry its own keys, or "its" approval is not its own
        // (an operator that swapped them, approved in its name and swapped them back).
        var notes: [String] = []
        var ownApproval = ""
        switch partyKey {
        case .key(let party, _, let keys?) where party == manifest.party:
            do {
                try keys.checkNamed(
                    in: try JSONParser.parse(policyBytes), as: party,
                    advice: "the approval in your name is not yours: ask the operator why, and do not trust these results")
            } catch let error as CLIError {
                throw Failure(check: "approvals", code: "approvals.not_your_keys", message: error.description)
            }
            ownApproval = "; yours (\(party)) is signed with this machine's key"
        case .key(let party, _, nil) where party == manifest.party:
            notes.append("your own approval was not checked against your keys (no approval key beside your result key)")
        case .key(let party, _, _):
            notes.append("your own approval was not checked against your keys (the bundle is party \(manifest.party)'s, your keys \(party)'s)")
        case .none(let reason):
            notes.append("your own approval was not checked against your keys (\(reason))")
        }
        lines.append((
            "approvals",
            "all \(policy.parties.count) parties approved (\(verifiedBundle.approvedKeyFingerprints.keys.sorted().joined(separator: ", ")))\(ownApproval); the bundle is the receipt's"
        ))

        // Outputs: the receipt lists what the policy grants, no more, no less; our ciphertexts match it.
        let granted = Set(policy.outputs.flatMap { output in output.artifacts.map { "\(output.recipient)/\($0)" } })
        let delivered = receipt.outputs.map { "\($0.recipient)/\($0.name)" }
        if Set(delivered) != granted || delivered.count != granted.count {
            let extra = Set(delivered).subtracting(granted).sorted(), missing = granted.subtracting(delivered).sorted()
            throw Failure(
                check: "outputs", code: "receipt.outputs_not_granted",
                message: "the receipt's outputs differ from what the policy grants"
                    + (extra.isEmpty ? "" : "; not granted: \(extra.joined(separator: ", "))")
                    + (missing.isEmpty ? "" : "; missing: \(missing.joined(separator: ", "))"))
        }
        for output in manifest.outputs {
            let url = folder.appendingPathComponent(output.ciphertext)
            guard let sha256 = Self.sha256(ofFileAt: url) else {
                throw CLIError("the bundle has no \(output.ciphertext) for output \(output.name)", exitCode: 2)
            }
            guard let entry = receipt.outputs.first(where: { $0.name == output.name && $0.recipient == output.recipient }) else {
                throw Failure(
                    check: "outputs", code: ReceiptError.Code.outputMissing.rawValue,
                    message: "the receipt lists no output \(output.name) for \(output.recipient)")
            }
            guard entry.ciphertextSHA256 == Hex.encode(sha256) else {
                throw Failure(
                    check: "outputs", code: ReceiptError.Code.outputMismatch.rawValue,
                    message: "\(output.ciphertext) (output \(output.name)) has SHA-256 \(Hex.encode(sha256)), the receipt says \(entry.ciphertextSHA256)")
            }
        }
        let mine = manifest.outputs.map(\.name).joined(separator: ", ")
        lines.append((
            "outputs",
            "the receipt lists exactly what the policy grants; your \(mine.isEmpty ? "(none)" : mine) match its SHA-256"
        ))

        // Decrypted files: each must be its ciphertext's decryption; say what could not be checked.
        var plaintext: [String: PlaintextCheck] = [:]
        let plaintextNote: String?
        switch partyKey {
        case .key(let party, let key, _) where party == manifest.party:
            for output in manifest.outputs {
                plaintext[output.name] = try await checkPlaintext(output, job: receipt.jobID, party: party, key: key)
            }
            plaintextNote = nil
        case .key(let party, _, _):
            plaintextNote = "the bundle is party \(manifest.party)'s and your key is \(party)'s"
        case .none(let reason):
            plaintextNote = reason
        }
        let checked = manifest.outputs.filter { plaintext[$0.name] == .verified }.map(\.plaintext)
        if !checked.isEmpty {
            lines.append(("decrypted", "\(checked.joined(separator: ", ")) are the decryptions of their ciphertexts"))
        }
        let present = manifest.outputs.filter { plaintext[$0.name] != .absent && Self.exists(folder.appendingPathComponent($0.plaintext)) }
        let unchecked = present.filter { plaintext[$0.name] != .verified }.map(\.plaintext)
        if let plaintextNote, !unchecked.isEmpty {
            notes.append("decrypted files not checked (\(plaintextNote)): \(unchecked.joined(separator: ", "))")
        }
        let missing = manifest.outputs.filter { !Self.exists(folder.appendingPathComponent($0.plaintext)) }
        for output in missing { plaintext[output.name] = .absent }
        if !missing.isEmpty {
            notes.append(
                "decrypted files missing (only their ciphertexts were checked; `cleanroom output decrypt` remakes them): "
                    + missing.map(\.plaintext).joined(separator: ", "))
        }
        let notInBundle = receipt.outputs.filter { entry in
            entry.recipient == manifest.party && !manifest.outputs.contains { $0.name == entry.name }
        }.map(\.name).sorted()
        if !notInBundle.isEmpty {
            notes.append("your outputs \(notInBundle.joined(separator: ", ")) are in the receipt but not in this bundle (not checked)")
        }
        let known = Set(
            [VerificationBundle.manifestFile, VerificationBundle.policyFile, VerificationBundle.approvalBundleFile, VerificationBundle.receiptFile]
                + manifest.outputs.flatMap { [$0.ciphertext, $0.plaintext] })
        let stray = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
            .filter { !known.contains($0) }.sorted()
        if !stray.isEmpty {
            notes.append("files in \(folder.path) that are not part of this bundle (not checked): \(stray.joined(separator: ", "))")
        }
        return Report(
            job: receipt.jobID, party: manifest.party, policyDigest: policyDigest, development: attested.isDevelopment,
            lines: lines, outputs: manifest.outputs, plaintext: plaintext, notes: notes, notInBundle: notInBundle,
            uncheckedFiles: stray)
    }

    /// Whether an output's decrypted file is exactly the decryption of its (already verified) ciphertext.
    func checkPlaintext(_ output: VerificationBundle.Output, job: String, party: String, key: RSA.PrivateKey) async throws -> PlaintextCheck {
        let file = folder.appendingPathComponent(output.plaintext)
        guard let fileDigest = Self.sha256(ofFileAt: file) else { return .absent }
        guard let handle = FileHandle(forReadingAtPath: folder.appendingPathComponent(output.ciphertext).path) else { return .absent }
        defer { try? handle.close() }
        let reader = ChunkReader(handle: handle, progress: ProgressBar(total: 0, enabled: false))
        var hash = SHA256()
        do {
            _ = try await ResultDecryption.open(
                chunks: ByteStream(next: { try reader.next() }), key: key, partyId: party, jobID: job, expectedSHA256: nil,
                label: output.ciphertext, ciphertext: { _ in }, plaintext: { hash.update($0) })
        } catch is CLIError {
            // The ciphertext is the one the enclave made (its digest matched the receipt): it was
            // encrypted to another result key than this party's.
            throw Failure(
                check: "decrypted", code: "output.undecryptable",
                message: "\(output.ciphertext) (output \(output.name)) does not decrypt with your result key: it was encrypted "
                    + "to another key than the one on this machine (compare `cleanroom keys show` with the policy's result key)")
        }
        guard hash.finalize() == fileDigest else {
            throw Failure(
                check: "decrypted", code: "output.plaintext_mismatch",
                message: "\(output.plaintext) is not the decryption of \(output.ciphertext) (output \(output.name)): "
                    + "download the output again or decrypt it with `cleanroom output decrypt`")
        }
        return .verified
    }

    static func exists(_ url: URL) -> Bool { FileManager.default.fileExists(atPath: url.path) }

    /// The policy's measurement sets as PCR sets.
    static func allowedPCRSets(_ policy: JobPolicy) throws -> [PCRSet] {
        guard let sets = policy.enclave.pcrSets else {
            throw Failure(check: "policy", code: "policy.invalid", message: "a measurement set of the policy is not hex")
        }
        return sets
    }

    /// SHA-256 of a file, streamed.
    static func sha256(ofFileAt url: URL) -> [UInt8]? {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { return nil }
        defer { try? handle.close() }
        var hash = SHA256()
        while let data = try? handle.read(upToCount: 1 << 16), !data.isEmpty { hash.update(Array(data)) }
        return hash.finalize()
    }
}
