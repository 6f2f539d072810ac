import Foundation
import TestSupport
import Testing

/// Schemathesis (PyPI) generates requests from docs/openapi.yaml against a live `cleanroomd` and
/// checks every response: no 5xx, and status, content type, headers and body as documented.
@Suite(.serialized) struct SchemathesisEndToEndTests {
    @Test func liveServerConformsToTheOpenAPIDocument() throws {
        let root = try TestEnvironment.temporaryDirectory("e2e-schemathesis")
        defer { try? FileManager.default.removeItem(at: root) }
        let server = try CleanroomdProcess(dataDirectory: root.appendingPathComponent("data"), keepsPort: true)
        try server.start()
        defer { server.stop() }
        // A registered party with data, so generated requests reach real objects, not only 401/404.
        let machine = try GovernanceEndToEndTests.onboard("Alpha", server: server, root: root)
        _ = try GovernanceEndToEndTests.upload(machine, csv: GovernanceEndToEndTests.csv(rows: 5, seed: 1), root: root)
        let profile = try JSONSerialization.jsonObject(
            with: Data(contentsOf: machine.home.appendingPathComponent("profiles/default.json"))) as! [String: Any]
        let token = profile["credential"] as! String
        let st = URL(fileURLWithPath: try TestEnvironment.python()).deletingLastPathComponent().appendingPathComponent("st").path
        let spec = TestEnvironment.repoRoot.appendingPathComponent("docs/openapi.yaml").path
        for credential in [token, try server.operatorToken()] {
            let result = try ProcessRunner.run(
                st,
                [
                    "run", spec, "--experimental=openapi-3.1", "--base-url", server.url, "--checks", "all", "--hypothesis-max-examples", "15",
                    "--hypothesis-derandomize", "--hypothesis-deadline", "5000", "--hypothesis-suppress-health-check=filter_too_much", "--request-timeout", "10000",
                    "-H", "Authorization: Bearer \(credential)",
                    "--show-trace",
                ],
                environment: ["SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"], currentDirectory: root)
            #expect(result.status == 0, "\(result.stdoutText.suffix(6000))\n\(result.stderrText.suffix(2000))")
        }
    }
}
