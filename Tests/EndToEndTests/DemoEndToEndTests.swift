import Foundation
import TestSupport
import Testing

/// `make demo`'s flow through real processes: scripts/demo.sh with a small dataset starts
/// `cleanroomd`, three parties enroll, upload, propose, approve, run the job in the local enclave,
/// download, decrypt and verify. Then: each party holds exactly what the policy grants it, the bank's
/// scores cover only its own customers, and no plaintext row reached the server's data directory.
@Suite(.serialized) struct DemoEndToEndTests {
    @Test func threePartyDemoDeliversExactlyWhatThePolicyGrants() throws {
        let work = try TestEnvironment.temporaryDirectory("demo-e2e")
        defer { try? FileManager.default.removeItem(at: work) }
        let bin = URL(fileURLWithPath: try TestEnvironment.executable("cleanroom")).deletingLastPathComponent().path
        let result = try ProcessRunner.run(
            "/bin/bash", [TestEnvironment.repoRoot.appendingPathComponent("scripts/demo.sh").path],
            environment: [
                "BIN": bin, "DEMO_DIR": work.path, "DEMO_CUSTOMERS": "1600", "DEMO_ROUNDS": "10", "DEMO_QUIET": "1",
            ])
        #expect(result.status == 0, "demo failed:\n\(result.stdoutText)\n\(result.stderrText)")
        guard result.status == 0 else { return }

        // Every step is printed as the party would type it (commands whose JSON the script reads are
        // echoed on stderr, which a terminal shows too).
        let shown = result.stdoutText + result.stderrText
        for command in ["cleanroom keys init", "cleanroom register", "cleanroom dataset upload", "cleanroom policy propose",
                        "cleanroom policy approve", "cleanroom kms show", "cleanroom job start", "cleanroom job watch", "cleanroom job list",
                        "cleanroom output download",
                        "cleanroom verify"] {
            #expect(shown.contains("$ \(command)"), "the demo does not show `\(command)`")
        }
        // They paste as printed: arguments with a space or a `?` are quoted for the shell.
        #expect(shown.contains("--name 'First Bank' --party-id first-bank"), "\(shown.prefix(3000))")
        #expect(shown.contains("--name 'Metro Telecom' --party-id metro-telecom"))
        #expect(shown.contains("--columns 'customer_hash:string,monthly_spend:float,visits_per_month:float,"))
        #expect(shown.contains("cleanroomd serve --data-dir \(work.path)/server --listen 127.0.0.1:"))
        #expect(result.stdoutText.components(separatedBy: "VERIFIED").count - 1 == 3)
        // Each approval let the policy's enclave image decrypt that party's data keys.
        #expect(result.stdoutText.components(separatedBy: "now releases data keys to enclave image").count - 1 == 3)
        // Any member sees the collaboration's jobs.
        #expect(result.stdoutText.contains(try Regex("job-[0-9a-f]+  succeeded  started ")), "`job list` shows no succeeded job")

        func files(_ party: String) throws -> Set<String> {
            Set(try FileManager.default.contentsOfDirectory(atPath: work.appendingPathComponent("results/\(party)").path))
        }
        let common: Set<String> = ["manifest.json", "policy.json", "approval-bundle.json", "receipt.json"]
        #expect(try files("first-bank") == common.union(["model.esdk", "model.json", "metrics.esdk", "metrics.json",
                                                          "scores-own.esdk", "scores-own.csv"]))
        #expect(try files("shopmart") == common.union(["metrics.esdk", "metrics.json"]))
        #expect(try files("metro-telecom") == common.union(["metrics.esdk", "metrics.json"]))

        // The bank's scores name only customers the bank holds.
        let bankIDs = Set(try String(contentsOf: work.appendingPathComponent("plaintext/first-bank.csv"), encoding: .utf8)
            .split(separator: "\n").dropFirst().map { String($0.split(separator: ",")[0]) })
        let scored = try String(contentsOf: work.appendingPathComponent("results/first-bank/scores-own.csv"), encoding: .utf8)
            .split(separator: "\n").dropFirst().map { String($0.split(separator: ",")[0]) }
        #expect(!scored.isEmpty)
        #expect(scored.allSatisfy { bankIDs.contains($0) })

        // The bank's decrypted model loads in XGBoost (PyPI) and predicts the joined plaintext exactly as the
        // enclave scored it.
        let parity = try ProcessRunner.python(Self.modelParityScript, [work.path])
        #expect(parity.status == 0, "XGBoost parity: \(parity.stdoutText) \(parity.stderrText)")

        // No plaintext row reached the server: a customer hash appears nowhere in its data directory.
        let probe = try #require(bankIDs.first)
        let grep = try ProcessRunner.run("/bin/grep", ["-rqF", probe, work.appendingPathComponent("server").path])
        #expect(grep.status == 1, "a plaintext customer id was found in the server's data directory")
    }

    /// Loads the demo's decrypted model in XGBoost and compares its predictions on the joined plaintext
    /// with the scores the enclave returned (at most 1e-6 apart). Argument: the demo's working folder.
    static let modelParityScript = #"""
"""Loads the demo's decrypted model in XGBoost and compares its predictions on the joined plaintext
with the scores the enclave returned. Usage: check_model.py DEMO_DIR. Prints the largest difference."""
import csv, json, math, sys
import numpy as np
import xgboost as xgb

work = sys.argv[1]
policy = json.load(open(f"{work}/policy.json"))
features = policy["training"]["features"]
rows = {}
for party in ("first-bank", "shopmart", "metro-telecom"):
    with open(f"{work}/plaintext/{party}.csv", newline="") as f:
        for record in csv.DictReader(f):
            rows.setdefault(record["customer_hash"], {}).update(record)
scores = {}
with open(f"{work}/results/first-bank/scores-own.csv", newline="") as f:
    for record in csv.DictReader(f):
        scores[record["id"]] = float(record["score"])
ids = sorted(scores)
def value(text):
    return float(text) if text not in ("", "NA") else math.nan
matrix = np.array([[value(rows[i][name]) for name in features] for i in ids], dtype=np.float32)
booster = xgb.Booster()
booster.load_model(f"{work}/results/first-bank/model.json")
predicted = booster.predict(xgb.DMatrix(matrix, missing=math.nan, feature_names=features))
worst = max(abs(float(p) - scores[i]) for p, i in zip(predicted, ids))
print(f"{len(ids)} scores, max |xgboost - enclave| = {worst:.3g}")
sys.exit(0 if worst <= 1e-6 else 1)
"""#
}
