import ArgumentParser
import Foundation

extension AsyncParsableCommand {
    /// Parses and runs the command the way ArgumentParser's own `main` does, except that a usage
    /// failure (an unknown option, a missing argument, a `ValidationError`) exits with 2, the
    /// convention of Unix tools and of both cleanroom CLIs, instead of ArgumentParser's 64.
    /// A usage error found while a subcommand runs (its settings resolved from flags, environment
    /// and files, the files it names opened) points at that subcommand's help, not the root's. With
    /// `--json` among the arguments, a usage error is also printed on stdout as
    /// `{"error": {"code": "usage", "message": …}}`, as the commands print their other failures.
    public static func mainExitingTwoOnUsageErrors() async {
        var command: (any ParsableCommand)?
        do {
            command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command?.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                var message = fullMessage(for: error)
                if let command, error is ValidationError {
                    let name = usageString(for: type(of: command)).split(separator: " ")
                        .prefix { !$0.hasPrefix("[") && !$0.hasPrefix("<") && !$0.hasPrefix("-") }.joined(separator: " ")
                    message = "Error: \(error)\n  See '\(name) --help' for more information."
                }
                FileHandle.standardError.write(Data((message + "\n").utf8))
                if CommandLine.arguments.dropFirst().contains("--json") {
                    let text = (error as? ValidationError)?.message ?? Self.message(for: error)
                    let body = ["error": ["code": "usage", "message": text]]
                    let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
                    FileHandle.standardOutput.write(data + Data("\n".utf8))
                }
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}
