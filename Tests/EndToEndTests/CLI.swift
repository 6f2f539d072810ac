import Foundation
import TestSupport

/// Runs `cleanroom` (the party CLI) or `cleanroomd` and returns the result, failing on a non-zero exit.
enum CLI {
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], expectStatus: Int32? = 0)
        throws -> ProcessResult
    {
        let result = try ProcessRunner.run(try TestEnvironment.executable(executable), arguments, environment: environment)
        if let expectStatus, result.status != expectStatus {
            throw TestEnvironmentError(
                "\(executable) \(arguments.joined(separator: " ")) exited \(result.status) (expected \(expectStatus)):\n\(result.stdoutText)\n\(result.stderrText)")
        }
        return result
    }

    static func json(_ result: ProcessResult) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any] else {
            throw TestEnvironmentError("not a JSON object: \(result.stdoutText)")
        }
        return object
    }
}
