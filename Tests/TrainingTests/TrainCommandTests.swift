import Foundation
import Testing
import TestSupport

@testable import Training

/// `cleanroom train` end to end: two parties' files joined on an id, a model and metrics written.
@Suite struct TrainCommandTests {
    func writeInputs(_ dir: URL) throws -> (String, String) {
        let table = try TrainingFixtures.synthetic(rows: 600, features: 4, seed: 9)
        let columns = try (0..<4).map { try table.column(named: "f\($0)").floatValues() }
        let labels = try table.column(named: "label").floatValues()
        var left = "customer,f0,f1,label\n", right = "f2,f3,customer\n"
        for row in 0..<table.rowCount {
            func cell(_ v: Float) -> String { v.isNaN ? "" : "\(v)" }
            left += "c\(row),\(cell(columns[0][row])),\(cell(columns[1][row])),\(Int(labels[row]))\n"
            if row % 10 != 0 { right += "\(cell(columns[2][row])),\(cell(columns[3][row])),c\(row)\n" }
        }
        let a = dir.appendingPathComponent("a.csv"), b = dir.appendingPathComponent("b.csv")
        try Data(left.utf8).write(to: a)
        try Data(right.utf8).write(to: b)
        return (a.path, b.path)
    }

    @Test func trainsOnJoinedFilesAndWritesModelAndMetrics() throws {
        let dir = try TestEnvironment.temporaryDirectory("train-cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (a, b) = try writeInputs(dir)
        let model = dir.appendingPathComponent("model.json"), metrics = dir.appendingPathComponent("metrics.json")
        let result = try ProcessRunner.run(try TestEnvironment.executable("cleanroom"), [
            "train", "--data", a, "--data", b, "--join", "inner:customer", "--label", "label",
            "--algorithm", "gbdt", "--param", "num_round=5", "--param", "max_depth=3",
            "--validation-fraction", "0.25", "--seed", "4", "--model-out", model.path, "--metrics-out", metrics.path,
        ])
        #expect(result.status == 0, "\(result.stderrText)")
        #expect(result.stdoutText.contains("validation: 135 rows"))
        #expect(result.stderrText.contains("round 5/5"))
        let read = try Model(xgboostJSON: try Data(contentsOf: model))
        #expect(read.featureNames == ["f0", "f1", "f2", "f3"])
        let report = try JSONDecoder().decode(TrainingMetrics.self, from: try Data(contentsOf: metrics))
        #expect(report.train.rows == 405 && report.iterations == 5)
    }

    @Test func reportsBadInputWithExitCodeOne() throws {
        let dir = try TestEnvironment.temporaryDirectory("train-cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (a, _) = try writeInputs(dir)
        let result = try ProcessRunner.run(try TestEnvironment.executable("cleanroom"), [
            "train", "--data", a, "--label", "nope", "--algorithm", "logistic",
            "--model-out", dir.appendingPathComponent("m.json").path,
        ])
        #expect(result.status == 1)
        #expect(result.stderrText.contains("unknown_column: no column named 'nope'"))
    }
}
