import ArgumentParser

/// `cleanroomd`: the clean room server. Thin wiring over the `Server` module.
@main
struct CleanroomdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanroomd",
        abstract: "The cleanroom server: REST API, job orchestrator, key-release gate and audit log.",
        subcommands: [ServeCommand.self, AdminCommand.self, AuditCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}
