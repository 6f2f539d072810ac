import ArgumentParser
import Foundation
import CommandLineExit

/// `cleanroomd`: the clean room server. Thin wiring over the `Server` module.
@main
struct CleanroomdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanroomd",
        abstract: "The cleanroom server: REST API, job orchestrator, key-release gate and audit log.",
        discussion: "Exit codes: 0 success, 1 a failure (the reason is printed), 2 a usage error.",
        subcommands: [ServeCommand.self, AdminCommand.self, AuditCommand.self],
        defaultSubcommand: ServeCommand.self
    )

    /// Runs the command; usage failures exit with the documented 2 (ArgumentParser's own is 64).
    /// Every file the server makes is its own alone (0600, folders 0700): the database and its
    /// WAL, the object store, logs; some of it is key material or credentials.
    static func main() async {
        umask(0o077)
        await mainExitingTwoOnUsageErrors()
    }
}
