import ArgumentParser
import Server

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run the server on its embedded defaults or on AWS services.")

    func run() async throws { throw ValidationError("'cleanroomd serve' is not built yet (issue #2).") }
}
