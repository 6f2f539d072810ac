import ArgumentParser
import CleanRoom
import Foundation

/// `cleanroom audit`: verify a collaboration's audit trail offline.
struct PartyAuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "The tamper-evident audit log of your collaborations.",
        subcommands: [PartyAuditVerifyCommand.self])
}

struct PartyAuditVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Fetch a collaboration's audit proof and verify it: entries, chain links and signed checkpoints.",
        discussion: """
            The server's audit key is pinned in the profile the first time (or given with --audit-key); a later \
            proof signed by another key fails. Exit codes: 0 verified, 1 tampering or a refused request, \
            2 usage, 3 server unreachable.
            """)

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The collaboration id.") var collaboration: String

    @Option(name: .customLong("audit-key"), help: "The server's audit public key (PEM file) to trust.")
    var auditKey: String?

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, profile) = try options.client()
            let reply = try await client.call("GET", "/v1/collaborations/\(collaboration)/audit")
            let data = try JSONSerialization.data(withJSONObject: reply)
            let proof: AuditProof
            do {
                proof = try JSONDecoder().decode(AuditProof.self, from: data)
            } catch {
                throw CLIError("the audit proof is malformed: \(error)")
            }
            var pinned = try auditKey.map { try String(contentsOfFile: $0, encoding: .utf8) } ?? profile.auditPublicKey
            if pinned == nil {
                guard let served = proof.publicKey else { throw CLIError("the server sent no audit key and none is pinned") }
                pinned = served
                var updated = profile
                updated.auditPublicKey = served
                try options.saveProfile(updated)
            }
            do {
                let report = try proof.verify(publicKeyPEM: pinned!, collaborationId: collaboration)
                try options.output(
                    "audit trail verifies: \(proof.entries.count) entries of this collaboration in a chain of \(report.entries), signed through entry \(report.signedThrough)",
                    json: ["valid": true, "entries": proof.entries.count, "chain": report.entries, "signedThrough": report.signedThrough])
            } catch let failure as AuditVerifier.Failure {
                if options.json {
                    try options.output("", json: ["valid": false, "code": failure.code.rawValue, "seq": failure.seq, "message": failure.message])
                }
                throw CLIError("audit trail does NOT verify: \(failure)")
            }
        }
    }
}
