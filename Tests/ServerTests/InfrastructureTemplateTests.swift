import Foundation
import Testing
import TestSupport

/// The CloudFormation templates in `infrastructure/` (DESIGN §8), checked by `cfn-lint` (PyPI)
/// against CloudFormation's resource schemas, and the server template's `cleanroomd` command line
/// against the program's own options, so a renamed flag cannot leave the template behind.
@Suite struct InfrastructureTemplateTests {
    static let folder = TestEnvironment.repoRoot.appendingPathComponent("infrastructure")

    @Test func everyTemplatePassesCfnLint() throws {
        let templates = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path).filter { $0.hasSuffix(".json") }.sorted()
        #expect(templates.contains("server.json") && templates.contains("dataset-key.json"), "\(templates)")
        let lint = URL(fileURLWithPath: try TestEnvironment.python()).deletingLastPathComponent().appendingPathComponent("cfn-lint").path
        let result = try ProcessRunner.run(lint, templates.map { Self.folder.appendingPathComponent($0).path })
        #expect(result.status == 0, "\(result.stdoutText)\(result.stderrText)")
    }

    @Test func theServersCommandLineUsesOptionsCleanroomdHas() throws {
        let template = try String(contentsOf: Self.folder.appendingPathComponent("server.json"), encoding: .utf8)
        let execStart = try #require(template.firstMatch(of: /ExecStart=(\S*cleanroomd) serve ([^\\]*)\\n/))
        let flags = execStart.2.split(separator: " ").filter { $0.hasPrefix("--") }.map(String.init)
        #expect(flags.count >= 10, "\(flags)")
        let help = try ProcessRunner.run(try TestEnvironment.executable("cleanroomd"), ["serve", "--help"]).stdoutText
        for flag in flags {
            #expect(help.contains(flag + " ") || help.contains(flag + "\n"), "cleanroomd serve has no \(flag)")
        }
    }
}
