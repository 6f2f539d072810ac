import ArgumentParser
import Foundation

extension AsyncParsableCommand {
    /// Parses and runs the command the way ArgumentParser's own `main` does, except that a usage
    /// failure (an unknown option, a missing argument, a `ValidationError`) exits with 2, the
    /// convention of Unix tools and of both cleanroom CLIs, instead of ArgumentParser's 64.
    public static func mainExitingTwoOnUsageErrors() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}
