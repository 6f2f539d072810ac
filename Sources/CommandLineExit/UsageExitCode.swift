import ArgumentParser
import Foundation

extension AsyncParsableCommand {
    /// Parses and runs the command the way ArgumentParser's own `main` does, except that a usage
    /// failure (an unknown option, a missing argument, a `ValidationError`) exits with 2, the
    /// convention of Unix tools and of both cleanroom CLIs, instead of ArgumentParser's 64.
    /// A usage error found while a subcommand runs (its settings resolved from flags, environment
    /// and files) is reported with that subcommand's usage, as one found while parsing is.
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
                    let usage = usageString(for: type(of: command))
                    let name = usage.split(separator: " ").prefix { !$0.hasPrefix("[") && !$0.hasPrefix("<") }
                        .joined(separator: " ")
                    message = "Error: \(error)\nUsage: \(usage)\n  See '\(name) --help' for more information."
                }
                FileHandle.standardError.write(Data((message + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}
