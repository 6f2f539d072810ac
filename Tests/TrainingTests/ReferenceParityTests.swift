import Foundation
import Testing
import TestSupport

@testable import Training

/// Parity with the reference libraries (XGBoost, scikit-learn from PyPI, installed by `make test`)
/// on a 20k-row synthetic set from `Benchmarks/training/generate_data.py`.
@Suite(.serialized) struct ReferenceParityTests {
    static let peerScript = #"""
        import json, sys
        import numpy as np
        import xgboost as xgb
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.preprocessing import StandardScaler

        data_dir, work_dir = sys.argv[1], sys.argv[2]
        d = np.load(data_dir + "/data.npz")
        x, y = d["x"], d["y"]
        out = {}
        for name in ["gbdt", "logistic", "gbdt_reg", "linear"]:
            booster = xgb.Booster(model_file=f"{work_dir}/{name}.json")
            ours = np.loadtxt(f"{work_dir}/{name}.scores", dtype=np.float64)
            theirs = booster.predict(xgb.DMatrix(x, missing=np.nan, feature_names=booster.feature_names))
            out[name + "_max_difference"] = float(np.max(np.abs(theirs.astype(np.float64) - ours)))
        validation = np.loadtxt(work_dir + "/validation.mask", dtype=np.int64) == 1
        train = ~validation
        params = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6, "eta": 0.3,
                  "max_bin": 256, "nthread": 2, "seed": 0}
        bst = xgb.train(params, xgb.DMatrix(x[train], y[train]), int(sys.argv[3]))
        out["xgboost_auc"] = float(roc_auc_score(y[validation], bst.predict(xgb.DMatrix(x[validation]))))
        filled = np.where(np.isnan(x), 0.0, x)  # our linear models count a missing value as 0
        scaler = StandardScaler().fit(filled[train])
        lr = LogisticRegression(solver="lbfgs", C=1.0, max_iter=100).fit(scaler.transform(filled[train]), y[train])
        out["sklearn_auc"] = float(roc_auc_score(y[validation], lr.predict_proba(scaler.transform(filled[validation]))[:, 1]))
        print(json.dumps(out))
        """#

    @Test func matchesXGBoostAndScikitLearnOn20kRows() throws {
        let dir = try TestEnvironment.temporaryDirectory("training-parity")
        defer { try? FileManager.default.removeItem(at: dir) }
        let generator = TestEnvironment.repoRoot.appendingPathComponent("Benchmarks/training/generate_data.py").path
        let generated = try ProcessRunner.run(
            try TestEnvironment.python(), [generator, "--rows", "20000", "--out", dir.path])
        try #require(generated.status == 0, "generator failed: \(generated.stderrText)")
        let csv = try Data(contentsOf: dir.appendingPathComponent("data.csv"))
        let rounds = 30
        let jobs: [(String, TrainingSpec)] = [
            ("gbdt", TrainingSpec(label: "label", algorithm: .gbdt, parameters: ["num_round": "\(rounds)"], seed: 5)),
            ("logistic", TrainingSpec(label: "label", algorithm: .logistic, seed: 5)),
            ("gbdt_reg", TrainingSpec(
                label: "label", algorithm: .gbdt,
                parameters: ["num_round": "10", "objective": "reg:squarederror", "subsample": "0.8"], seed: 5)),
            ("linear", TrainingSpec(label: "label", algorithm: .linear, parameters: ["lambda": "10"], seed: 5)),
        ]
        var ours: [String: TrainingResult] = [:]
        for (name, spec) in jobs {
            let result = try TrainingJob(spec: spec).run(csv: [csv])
            ours[name] = result
            try result.modelJSON.write(to: dir.appendingPathComponent("\(name).json"))
            try Data(result.scores.map { String($0) }.joined(separator: "\n").utf8)
                .write(to: dir.appendingPathComponent("\(name).scores"))
            if name == "gbdt" {
                try Data(result.isValidation.map { $0 ? "1" : "0" }.joined(separator: "\n").utf8)
                    .write(to: dir.appendingPathComponent("validation.mask"))
            }
        }
        let peer = try ProcessRunner.python(Self.peerScript, [dir.path, dir.path, "\(rounds)"])
        try #require(peer.status == 0, "Python peer failed: \(peer.stderrText)")
        let report = try #require(try JSONSerialization.jsonObject(with: peer.stdout) as? [String: Double])
        for name in ["gbdt", "logistic", "gbdt_reg", "linear"] {
            let difference = try #require(report[name + "_max_difference"])
            #expect(difference <= 1e-6, "\(name): XGBoost's prediction of our model differs by \(difference)")
        }
        let gbdtAUC = try #require(ours["gbdt"]?.metrics.validation?.auc)
        let logisticAUC = try #require(ours["logistic"]?.metrics.validation?.auc)
        let xgboostAUC = try #require(report["xgboost_auc"]), sklearnAUC = try #require(report["sklearn_auc"])
        #expect(abs(gbdtAUC - xgboostAUC) <= 0.005, "GBDT AUC \(gbdtAUC) vs XGBoost \(xgboostAUC)")
        #expect(abs(logisticAUC - sklearnAUC) <= 0.005, "logistic AUC \(logisticAUC) vs scikit-learn \(sklearnAUC)")
        #expect(gbdtAUC > logisticAUC)
    }
}
