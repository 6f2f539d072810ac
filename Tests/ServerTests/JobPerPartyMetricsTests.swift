import Foundation
@testable import Server
import TestSupport
import Testing
import Training

/// Per-party metrics of a `union` job, computed by the real `cleanroom-enclave` process and checked
/// against scikit-learn (PyPI) on the same held-out rows.
@Suite(.serialized) struct JobPerPartyMetricsTests {
    /// Runs a union job (alpha 300 rows, beta 200 noisier rows) and returns beta's metrics document
    /// and each party's `scores:own`.
    func runUnion(minRows: Int) async throws -> (world: JobWorld, metrics: [String: Any], scores: [String: [Double]]) {
        let world = try JobWorld()
        try await world.prepare(minRows: minRows, union: (alpha: 300, beta: 200))
        let sink = RecordingSink()
        let (runner, _) = world.runner(sink: sink)
        try await offPool { runner.run() }
        #expect(runner.state == .succeeded, "\(String(describing: runner.failure))")
        let metrics = try await world.decrypt(try #require(sink.outputs["beta/metrics"]), as: world.beta)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(metrics)) as? [String: Any])
        var scores: [String: [Double]] = [:]
        for party in [world.alpha, world.beta] {
            let csv = String(
                decoding: try await world.decrypt(try #require(sink.outputs["\(party.id)/scores:own"]), as: party),
                as: UTF8.self)
            scores[party.id] = csv.split(separator: "\n").dropFirst().map { Double($0.split(separator: ",")[1])! }
        }
        return (world, document, scores)
    }

    @Test func unionReportsEachPartysHeldOutMetricsAsScikitLearnComputesThem() async throws {
        let (world, document, scores) = try await runUnion(minRows: 20)
        let perParty = try #require(document["perParty"] as? [String: Any])
        #expect(perParty["join"] as? String == "union")
        #expect(perParty["minimumRows"] as? Int == 20)
        let parties = try #require(perParty["parties"] as? [[String: Any]])
        #expect(parties.map { $0["group"] as? String } == ["alpha", "beta"])

        // The enclave's split of the 500 stacked rows (alpha's first), rebuilt from the policy's seed.
        let split = try DataSplit(rowCount: 500, validationFraction: world.validationFraction, seed: 7)
        let held = Set(split.validationRows)
        var rowsCSV = "party,y,score,validation\n"
        var offset = 0
        for party in ["alpha", "beta"] {
            let rows = try #require(world.unionRows[party])
            let partyScores = try #require(scores[party])
            #expect(partyScores.count == rows.count)
            for (index, row) in rows.enumerated() {
                rowsCSV += "\(party),\(row.2),\(partyScores[index]),\(held.contains(offset + index) ? 1 : 0)\n"
            }
            offset += rows.count
        }
        let file = world.directory.appendingPathComponent("union-rows.csv")
        try rowsCSV.write(to: file, atomically: true, encoding: .utf8)
        let peer = try await offPool {
            try ProcessRunner.python(
                """
                import sys, json, csv
                import numpy as np
                from sklearn.metrics import roc_auc_score, log_loss, accuracy_score
                rows = list(csv.DictReader(open(sys.argv[1])))
                out = {}
                for party in ["alpha", "beta"]:
                    mine = [r for r in rows if r["party"] == party and r["validation"] == "1"]
                    y = np.array([int(r["y"]) for r in mine]); p = np.array([float(r["score"]) for r in mine])
                    out[party] = {"rows": len(mine), "auc": roc_auc_score(y, p), "logLoss": log_loss(y, p, labels=[0, 1]),
                                  "accuracy": accuracy_score(y, (p > 0.5).astype(int))}
                print(json.dumps(out))
                """, [file.path])
        }
        try #require(peer.status == 0, "Python peer failed: \(peer.stderrText)")
        let reference = try #require(try JSONSerialization.jsonObject(with: peer.stdout) as? [String: [String: Double]])
        for party in parties {
            let name = try #require(party["group"] as? String)
            let expected = try #require(reference[name])
            let validation = try #require(party["validation"] as? [String: Any], "\(name): \(party)")
            #expect(party["validationRows"] as? Int == Int(expected["rows"]!))
            #expect(party["rows"] as? Int == (name == "alpha" ? 300 : 200))
            for metric in ["auc", "logLoss", "accuracy"] {
                let ours = try #require(validation[metric] as? Double, "\(name) \(metric)")
                #expect(abs(ours - expected[metric]!) <= 1e-9, "\(name) \(metric): ours \(ours), scikit-learn \(expected[metric]!)")
            }
        }
        // The groups differ (beta's labels are noisier), and together they are the overall held-out set.
        let alphaAUC = (parties[0]["validation"] as? [String: Any])?["auc"] as? Double
        let betaAUC = (parties[1]["validation"] as? [String: Any])?["auc"] as? Double
        #expect(alphaAUC != betaAUC)
        let overall = ((document["metrics"] as? [String: Any])?["validation"] as? [String: Any])?["rows"] as? Int
        #expect(overall == parties.compactMap { $0["validationRows"] as? Int }.reduce(0, +))
    }

    @Test func aPartyWithFewerHeldOutRowsThanThePolicysMinimumGetsNoFigures() async throws {
        // 100 rows per party at least: beta's 200 rows pass, but only about 50 of them are held out.
        let (_, document, _) = try await runUnion(minRows: 100)
        let parties = try #require((document["perParty"] as? [String: Any])?["parties"] as? [[String: Any]])
        #expect(parties.count == 2)
        for party in parties {
            #expect(party["validation"] == nil, "\(party)")
            #expect(party["suppressed"] is String)
        }
        let beta = try #require(parties.first { $0["group"] as? String == "beta" })
        #expect((beta["suppressed"] as? String)?.contains("figures need at least 100") == true)
        #expect((beta["validationRows"] as? Int ?? 100) < 100)
    }
}
