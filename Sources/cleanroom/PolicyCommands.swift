import AWS
import ArgumentParser
import CleanRoom
import Crypto
import Foundation

/// `cleanroom policy`: propose, read, compare, approve and revoke collaboration policies.
struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Collaboration policies: propose, show, diff, approve, revoke.",
        discussion: "Exit codes: 0 success, 1 refused by the server or a failed check, 2 usage, 3 server unreachable.",
        subcommands: [
            PolicyProposeCommand.self, PolicyListCommand.self, PolicyShowCommand.self, PolicyDiffCommand.self,
            PolicyApproveCommand.self, PolicyRevokeCommand.self,
        ])
}

/// Reads a policy file strictly (I-JSON: no duplicate fields).
func readPolicyFile(_ path: String) throws -> JSONValue {
    guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("cannot read \(path)", exitCode: 2) }
    do {
        return try JSONParser.parse(Array(data), limits: .init(maxBytes: PolicyDocument.maxBytes, maxDepth: 32))
    } catch let error as JSONParser.Error {
        throw CLIError("\(path): \(error)")
    }
}

/// Converts a JSONValue into Foundation objects for JSONSerialization.
func foundationObject(_ value: JSONValue) -> Any {
    switch value {
    case .null: return NSNull()
    case .bool(let b): return b
    case .number(let n): return n
    case .string(let s): return s
    case .array(let a): return a.map(foundationObject)
    case .object(let members):
        var out: [String: Any] = [:]
        for (k, v) in members { out[k] = foundationObject(v) }
        return out
    }
}

/// The collaboration as the server returned it, with its policy re-checked locally: the canonical
/// text must hash to the digest the server names, and must be the canonical form of itself.
struct FetchedCollaboration {
    let raw: [String: Any]
    let id: String
    let digest: String
    let policy: JSONValue
    let version: Int

    init(_ raw: [String: Any]) throws {
        self.raw = raw
        guard let id = raw["id"] as? String, let digest = raw["currentDigest"] as? String,
            let canonical = raw["canonicalPolicy"] as? String
        else { throw CLIError("the server's answer lacks the collaboration's policy") }
        let policy = try JSONParser.parse(canonical)
        guard CanonicalJSON.string(policy) == canonical,
            Hex.encode(SHA256.hash(Array(canonical.utf8))) == digest
        else {
            throw CLIError("the policy the server sent does not match its digest \(digest): refusing to use it")
        }
        self.id = id
        self.digest = digest
        self.policy = policy
        self.version = raw["version"] as? Int ?? 0
    }
}

struct PolicyProposeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "propose", abstract: "Propose a policy (a new collaboration, or --collaboration to revise one).")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The policy JSON file.") var file: String

    @Option(name: .customLong("collaboration"), help: "Revise this collaboration's policy instead of proposing a new one.")
    var collaboration: String?

    func run() async throws {
        try await runReporting(json: options.json) {
            let policy = try readPolicyFile(file)
            let (client, profile) = try options.client()
            // The server fills in every party's keys from its records; this party's must be the ones
            // on this machine (when they are here: `approve` checks them in any case). Checked before
            // proposing, so nothing is proposed with them wrong, and after, on the policy itself.
            let keys = try? LocalKeys(options)
            if let keys, let partyId = profile.partyId {
                try keys.checkRegistration(try await client.call("GET", "/v1/parties/me"), as: partyId)
            }
            let path = collaboration.map { "/v1/collaborations/\($0)/policies" } ?? "/v1/collaborations"
            let reply = try await client.call("POST", path, json: ["policy": foundationObject(policy)])
            let fetched = try FetchedCollaboration(reply)
            do {
                if let partyId = profile.partyId, let keys {
                    try keys.checkNamed(in: fetched.policy, as: partyId)
                }
            } catch let error as CLIError {
                throw CLIError("proposed as collaboration \(fetched.id) (digest \(fetched.digest)), but \(error.description)")
            }
            try options.output(
                "collaboration \(fetched.id) version \(fetched.version)\npolicy digest \(fetched.digest)",
                json: ["id": fetched.id, "digest": fetched.digest, "version": fetched.version, "members": reply["members"] ?? []])
        }
    }
}

struct PolicyListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Collaborations your party is in.")

    @OptionGroup var options: GovernanceOptions

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let reply = try await client.call("GET", "/v1/collaborations")
            let items = reply["items"] as? [[String: Any]] ?? []
            let lines = items.map { "\($0["id"] ?? "")  \($0["currentDigest"] ?? "")  \($0["name"] ?? "")" }
            try options.output(lines.isEmpty ? "no collaborations" : lines.joined(separator: "\n"), json: reply)
        }
    }
}

struct PolicyShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show a collaboration's current policy, its digest and approvals.")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The collaboration id.") var collaboration: String

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let fetched = try FetchedCollaboration(try await client.call("GET", "/v1/collaborations/\(collaboration)"))
            let approvals = try await client.call("GET", "/v1/collaborations/\(collaboration)/approvals")
            let items = approvals["items"] as? [[String: Any]] ?? []
            let current = items.filter { $0["policyDigest"] as? String == fetched.digest && $0["revokedAt"] == nil }
            let text = PolicySummary(fetched.policy).text + "\n\npolicy digest \(fetched.digest) (version \(fetched.version))\n"
                + "approvals of this digest: "
                + (current.isEmpty ? "none" : current.map { "\($0["partyId"] ?? "") (\($0["id"] ?? ""))" }.joined(separator: ", "))
            try options.output(text, json: ["collaboration": fetched.raw, "approvals": items])
        }
    }
}

struct PolicyDiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff", abstract: "Compare a collaboration's current policy with a local policy file, field by field.")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The collaboration id.") var collaboration: String
    @Argument(help: "A policy JSON file.") var file: String

    @Flag(name: .customLong("all"), help: "Also list the fields the server filled in that the file leaves out (party keys, dataset digests).")
    var all = false

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let fetched = try FetchedCollaboration(try await client.call("GET", "/v1/collaborations/\(collaboration)"))
            let local = try readPolicyFile(file)
            let every = PolicyDiff.changes(from: fetched.policy, to: local)
            // A proposal leaves these to the server, which fills them in from its records: that a
            // file lacks them is no difference worth reading past (a review found ~20 such lines
            // around the one real change).
            let filled = every.filter { $0.kind == "removed" && PolicyDiff.isFilledByServer($0.path) }.map(\.path)
            let changes = all ? every : every.filter { !($0.kind == "removed" && filled.contains($0.path)) }
            var text = changes.isEmpty
                ? "no differences"
                : changes.map { "\($0.kind) \($0.path): \($0.before ?? "–") → \($0.after ?? "–")" }.joined(separator: "\n")
            if !all, !filled.isEmpty {
                text += "\n(\(filled.count) fields the server filled in, party keys and dataset digests, are not in the file; --all lists them)"
            }
            try options.output(
                text,
                json: ["digest": fetched.digest, "localDigest": PolicyDocument.digest(of: local), "filledByServer": filled,
                       "changes": changes.map { ["path": $0.path, "kind": $0.kind, "before": $0.before as Any? ?? NSNull(), "after": $0.after as Any? ?? NSNull()] as [String: Any] }])
        }
    }
}

struct PolicyApproveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Show what is being approved, then sign the policy digest locally and submit the approval.",
        discussion: """
            The policy is fetched, its digest recomputed locally (RFC 8785 + SHA-256), and a readable summary \
            printed: parties, datasets, join, training, enclave measurements and who receives what. Without \
            --yes it asks for confirmation on a terminal. The signature (ECDSA P-256) covers \
            "cleanroom-approval-v1", the digest, your party id and the expiry.
            """)

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The collaboration id.") var collaboration: String

    @Option(name: .customLong("expires-in"), help: "How long the approval stays valid, in days (1 to 3650).")
    var expiresInDays = 30

    @Option(name: .customLong("digest"), help: "Approve only if the current digest is this one.")
    var expectedDigest: String?

    @Flag(name: .customLong("yes"), help: "Do not ask for confirmation.")
    var yes = false

    func validate() throws {
        guard (1...3650).contains(expiresInDays) else {
            throw ValidationError("--expires-in is a number of days from 1 to 3650, not \(expiresInDays)")
        }
    }

    func run() async throws {
        try await runReporting(json: options.json) {
            // Refused before anything is fetched or shown: off a terminal nobody can answer the question.
            if !yes, isatty(0) == 0 { throw CLIError("not a terminal: pass --yes to approve without confirmation", exitCode: 2) }
            let keys = try LocalKeys(options)
            let (client, profile) = try options.client()
            guard let partyId = profile.partyId else { throw CLIError("the profile has no party id: register first", exitCode: 2) }
            let fetched = try FetchedCollaboration(try await client.call("GET", "/v1/collaborations/\(collaboration)"))
            if let expectedDigest, expectedDigest != fetched.digest {
                throw CLIError("the current policy digest is \(fetched.digest), not \(expectedDigest): not approving")
            }
            // The policy must name this party with this machine's keys: the approval vouches for them.
            try keys.checkNamed(in: fetched.policy, as: partyId)
            if !options.json {
                print(PolicySummary(fetched.policy).text)
                print("\npolicy digest \(fetched.digest)")
            }
            if !yes {
                print("Approve this policy for \(partyId)? [y/N] ", terminator: "")
                guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
                    throw CLIError("not approved")
                }
            }
            let expiresAt = Int64(Date().timeIntervalSince1970) + Int64(expiresInDays) * 86400
            let message = ApprovalMessage(policyDigest: fetched.digest, partyId: partyId, expiresAt: expiresAt)
            let signature = try keys.signing.signature(for: message.bytes).derRepresentation
            let reply = try await client.call(
                "POST", "/v1/collaborations/\(collaboration)/approvals",
                json: [
                    "policyDigest": fetched.digest, "expiresAt": RFC3339.format(expiresAt),
                    "signature": Data(signature).base64EncodedString(),
                ])
            var text = "approved: approval \(reply["id"] ?? "") valid until \(RFC3339.format(expiresAt))"
            var value = reply
            if let keyNote = try await allowEnclaveImages(of: fetched.policy, partyId: partyId, profile: profile) {
                text += "\n" + keyNote.text
                value["kmsKey"] = keyNote.json
            }
            try options.output(text, json: value)
        }
    }

    /// The PCR0s a policy names (but an all-zero, debug one), normalized, when it uses `partyId`'s
    /// data; none otherwise.
    static func enclaveImages(of policy: JSONValue, usingDataOf partyId: String) -> [String] {
        guard policy["datasets"]?.arrayValue?.contains(where: { $0["owner"]?.stringValue == partyId }) == true else { return [] }
        let pcr0s = (policy["enclave"]?["measurements"]?.arrayValue ?? []).compactMap { $0["pcr0"]?.stringValue }
        return pcr0s.compactMap { try? DatasetKeyPolicy.normalizedImage($0) }
    }

    /// When the policy uses this party's data, lets its enclave images receive the party's data
    /// keys: adds their PCR0s to the policy of the profile's KMS key, if `cleanroom` wrote it. A
    /// policy the party wrote itself is left alone, with a reminder.
    func allowEnclaveImages(of policy: JSONValue, partyId: String, profile: Profile) async throws -> (text: String, json: [String: Any])? {
        let usesMyData = policy["datasets"]?.arrayValue?.contains { $0["owner"]?.stringValue == partyId } ?? false
        guard usesMyData, let key = profile.kmsKeyId else { return nil }
        let pcr0s = (policy["enclave"]?["measurements"]?.arrayValue ?? []).compactMap { $0["pcr0"]?.stringValue }
        let images = Self.enclaveImages(of: policy, usingDataOf: partyId)
        let skipped = pcr0s.count - images.count
        do {
            var added: [String] = []
            var (updated, json) = try await PartyKMS.change(key, profile: profile, server: try options.serverURL(profile)) {
                added = try $0.allow(images)
            }
            guard updated != nil else {
                return ("your KMS key \(key) has a policy of your own: make sure it lets enclave image(s) \(images.joined(separator: ", ")) decrypt", json)
            }
            json["added"] = added
            var text = added.isEmpty ? "your KMS key \(key) already releases data keys to this policy's enclave image(s)" : "your KMS key \(key) now releases data keys to enclave image(s) \(added.joined(separator: ", "))"
            if skipped > 0 { text += "; \(skipped) debug-mode (all-zero) image(s) left out: no data key goes to a debug enclave" }
            return (text, json)
        } catch {
            throw CLIError(
                "approved, but your KMS key's policy was not updated (\(error)): jobs will not get your data keys until `cleanroom kms allow-image \(images.joined(separator: " "))` succeeds",
                code: "kms_not_updated")
        }
    }
}

struct PolicyRevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke", abstract: "Revoke your party's approval (until a job has started on it).",
        discussion: """
            The enclave images of the collaboration's policy are then taken out of your KMS key's policy, unless \
            another policy you still approve names them, so that KMS itself no longer releases your data keys \
            to them (a policy you wrote yourself is left alone). Revoking an approval already revoked does \
            that step again, for when it could not be done the first time.
            """)

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The collaboration id.") var collaboration: String
    @Argument(help: "The approval id.") var approval: String

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, profile) = try options.client()
            var text = "revoked approval \(approval)"
            var value: [String: Any]
            do {
                value = try await client.call("DELETE", "/v1/collaborations/\(collaboration)/approvals/\(approval)")
            } catch let failure as GovernanceClient.APIFailure where failure.code == "approval_revoked" {
                // Revoked before, perhaps by a run that could not update the key: that step is still due.
                text = "approval \(approval) was already revoked"
                value = ["id": approval, "alreadyRevoked": true]
            }
            if let keyNote = try await withdrawEnclaveImages(client: client, profile: profile) {
                text += "\n" + keyNote.text
                value["kmsKey"] = keyNote.json
            }
            try options.output(text, json: value)
        }
    }

    /// Takes the images of the revoked collaboration's policy out of the party's key policy,
    /// keeping those that a policy the party still approves (current digest, unrevoked, unexpired,
    /// using its data) names.
    func withdrawEnclaveImages(client: GovernanceClient, profile: Profile) async throws -> (text: String, json: [String: Any])? {
        guard let partyId = profile.partyId, let key = profile.kmsKeyId else { return nil }
        do {
            return try await withdrawEnclaveImages(client: client, profile: profile, partyId: partyId, key: key)
        } catch let error as CLIError where error.code == "kms_not_updated" {
            throw error
        } catch {
            // The revocation is recorded; what the key still allows could not be worked out.
            throw CLIError(
                "revoked, but your KMS key's policy was not updated (\(error)): run `cleanroom policy revoke "
                    + "\(collaboration) \(approval)` again once the server answers; it updates the key then",
                code: "kms_not_updated")
        }
    }

    private func withdrawEnclaveImages(client: GovernanceClient, profile: Profile, partyId: String, key: String) async throws
        -> (text: String, json: [String: Any])?
    {
        let now = Int64(Date().timeIntervalSince1970)
        var withdrawn = Set<String>(), stillNeeded = Set<String>()
        let list = try await client.call("GET", "/v1/collaborations")
        for item in list["items"] as? [[String: Any]] ?? [] {
            guard let id = item["id"] as? String else { continue }
            let fetched = try FetchedCollaboration(try await client.call("GET", "/v1/collaborations/\(id)"))
            let images = PolicyApproveCommand.enclaveImages(of: fetched.policy, usingDataOf: partyId)
            if images.isEmpty { continue }
            if id == collaboration { withdrawn.formUnion(images) }
            let approvals = try await client.call("GET", "/v1/collaborations/\(id)/approvals")["items"] as? [[String: Any]] ?? []
            let approved = approvals.contains { approval in
                approval["partyId"] as? String == partyId && approval["policyDigest"] as? String == fetched.digest
                    && (approval["revokedAt"] == nil || approval["revokedAt"] is NSNull)
                    && (RFC3339.parse(approval["expiresAt"] as? String ?? "") ?? 0) > now
            }
            if approved { stillNeeded.formUnion(images) }
        }
        let kept = withdrawn.intersection(stillNeeded).sorted()
        let remove = withdrawn.subtracting(stillNeeded).sorted()
        guard !withdrawn.isEmpty else { return nil }
        do {
            var removed: [String] = []
            var (updated, json) = try await PartyKMS.change(key, profile: profile, server: try options.serverURL(profile)) {
                removed = try $0.disallow(remove)
            }
            json["kept"] = kept
            guard updated != nil else {
                return ("your KMS key \(key) has a policy of your own: remove enclave image(s) \(remove.joined(separator: ", ")) from it if no collaboration needs them", json)
            }
            json["removed"] = removed
            var text = removed.isEmpty ? "your KMS key \(key) did not list this policy's enclave image(s)" : "your KMS key \(key) no longer releases data keys to enclave image(s) \(removed.joined(separator: ", "))"
            if !kept.isEmpty { text += "; kept \(kept.joined(separator: ", ")): another policy you approve names it" }
            return (text, json)
        } catch {
            throw CLIError(
                "revoked, but your KMS key's policy was not updated (\(error)): run `cleanroom kms remove-image \(remove.joined(separator: " "))`",
                code: "kms_not_updated")
        }
    }
}

/// A readable account of what a policy allows, for people about to approve it.
struct PolicySummary {
    let text: String

    init(_ policy: JSONValue) {
        var lines: [String] = []
        lines.append("Policy \"\(policy["name"]?.stringValue ?? "")\"")
        if let description = policy["description"]?.stringValue { lines.append("  \(description)") }
        lines.append("Parties:")
        for party in policy["parties"]?.arrayValue ?? [] {
            let resultKey = party["resultKey"]?.stringValue.flatMap { try? LocalKeys.resultFingerprint(ofPEM: $0) }
            lines.append(
                "  - \(party["id"]?.stringValue ?? "") (\(party["name"]?.stringValue ?? "")), approval key "
                    + "\(party["signingKeyFingerprint"]?.stringValue?.prefix(16) ?? "?")…, result key \(resultKey?.prefix(16) ?? "?")…")
        }
        lines.append("Datasets:")
        for dataset in policy["datasets"]?.arrayValue ?? [] {
            let columns = (dataset["columns"]?.arrayValue ?? []).map {
                "\($0["name"]?.stringValue ?? ""):\($0["type"]?.stringValue ?? "")\($0["nullable"]?.boolValue == true ? "?" : "")"
            }
            lines.append("  - \(dataset["id"]?.stringValue ?? "") owned by \(dataset["owner"]?.stringValue ?? ""), sha256 \(dataset["sha256"]?.stringValue?.prefix(16) ?? "?")…")
            lines.append("    columns: \(columns.joined(separator: ", "))")
        }
        let join = policy["join"]
        lines.append("Join: \(join?["type"]?.stringValue ?? "")\(join?["key"]?.stringValue.map { " on \($0)" } ?? "")")
        let training = policy["training"]
        lines.append("Training: \(training?["algorithm"]?.stringValue ?? "") predicting \(training?["label"]?.stringValue ?? "")")
        lines.append("  features: \((training?["features"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", "))")
        if let hyper = training?["hyperparameters"] { lines.append("  hyperparameters: \(CanonicalJSON.string(hyper))") }
        if let validation = training?["validation"] { lines.append("  validation: \(CanonicalJSON.string(validation))") }
        let enclave = policy["enclave"]
        lines.append("Enclave images allowed (debug \(enclave?["allowDebug"]?.boolValue == true ? "ALLOWED" : "refused")):")
        for set in enclave?["measurements"]?.arrayValue ?? [] {
            lines.append("  - PCR0 \(set["pcr0"]?.stringValue ?? "")")
            lines.append("    PCR1 \(set["pcr1"]?.stringValue ?? "")  PCR2 \(set["pcr2"]?.stringValue ?? "")")
        }
        lines.append("Who receives what:")
        for output in policy["outputs"]?.arrayValue ?? [] {
            let artifacts = (output["artifacts"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")
            lines.append("  - \(output["recipient"]?.stringValue ?? ""): \(artifacts)")
        }
        let constraints = policy["constraints"]
        lines.append("Constraints: \(CanonicalJSON.string(constraints ?? .null))")
        text = lines.joined(separator: "\n")
    }
}

/// Field-level differences between two JSON documents (paths like `training.features[2]`).
enum PolicyDiff {
    /// Whether `path` is a field the server fills in from its records when a policy is proposed
    /// (each party's name and keys, each dataset's ciphertext digest and object version).
    static func isFilledByServer(_ path: String) -> Bool {
        let parts = path.split(separator: ".")
        guard parts.count == 2 else { return false }
        if parts[0].hasPrefix("parties[") { return ["name", "signingKey", "signingKeyFingerprint", "resultKey"].contains(parts[1]) }
        if parts[0].hasPrefix("datasets[") { return ["sha256", "objectVersion"].contains(parts[1]) }
        return false
    }

    struct Change {
        let path: String
        let kind: String  // added, removed, changed
        let before: String?
        let after: String?
    }

    static func changes(from old: JSONValue, to new: JSONValue, path: String = "") -> [Change] {
        switch (old, new) {
        case (.object(let a), .object(let b)):
            var out: [Change] = []
            let keys = Set(a.map(\.0)).union(b.map(\.0)).sorted()
            for key in keys {
                let child = path.isEmpty ? key : "\(path).\(key)"
                switch (old[key], new[key]) {
                case (let x?, let y?): out += changes(from: x, to: y, path: child)
                case (let x?, nil): out.append(Change(path: child, kind: "removed", before: CanonicalJSON.string(x), after: nil))
                case (nil, let y?): out.append(Change(path: child, kind: "added", before: nil, after: CanonicalJSON.string(y)))
                default: break
                }
            }
            return out
        case (.array(let a), .array(let b)):
            var out: [Change] = []
            for i in 0..<max(a.count, b.count) {
                let child = "\(path)[\(i)]"
                if i < a.count, i < b.count {
                    out += changes(from: a[i], to: b[i], path: child)
                } else if i < a.count {
                    out.append(Change(path: child, kind: "removed", before: CanonicalJSON.string(a[i]), after: nil))
                } else {
                    out.append(Change(path: child, kind: "added", before: nil, after: CanonicalJSON.string(b[i])))
                }
            }
            return out
        default:
            return old == new ? [] : [Change(path: path, kind: "changed", before: CanonicalJSON.string(old), after: CanonicalJSON.string(new))]
        }
    }
}
