import ArgumentParser
import CommandLineExit

/// `cleanroom`: the party CLI. Each command group lives in its own file so that the
/// features (encryption, training, attestation, governance, jobs) stay apart.
@main
struct CleanroomCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanroom",
        abstract: "Work with a cleanroom server and its encrypted data from a party's own machine.",
        discussion: """
            Exit codes: 0 success, 1 a check, authentication or format failure, 2 a usage error, \
            3 the server cannot be reached.
            """,
        subcommands: [
            // Encryption SDK messages (issue #3): EncryptionCommands.swift
            EncryptCommand.self, DecryptCommand.self,
            // Local training dry run (issue #7): TrainCommand.swift
            TrainCommand.self,
            // Attestation (issue #5): AttestationCommands.swift
            AttestationCommand.self, EnclaveCommand.self,
            // Governance (issue #6): KeysCommand.swift, DatasetCommands.swift, PolicyCommands.swift, AuditCommands.swift
            KeysCommand.self, RegisterCommand.self, DatasetCommand.self, PolicyCommand.self, PartyAuditCommand.self,
            // Jobs and results (issue #8): JobCommands.swift, OutputCommands.swift, VerifyCommand.swift
            JobCommand.self, OutputCommand.self, VerifyCommand.self,
            // The dataset key's policy (DESIGN §2.4): KMSCommands.swift
            KMSCommand.self,
            // Signed webhooks (DESIGN §8): WebhookCommands.swift
            WebhookCommand.self,
        ]
    )

    /// Runs the command; usage failures exit with the documented 2 (ArgumentParser's own is 64).
    static func main() async { await mainExitingTwoOnUsageErrors() }
}
