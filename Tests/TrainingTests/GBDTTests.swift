import Foundation
import Testing

@testable import Training

@Suite struct GBDTTests {
    func trainTrees(_ table: Table, _ parameters: [String: String]) throws -> TreeEnsemble {
        let spec = TrainingSpec(label: "y", algorithm: .gbdt, parameters: parameters, validationFraction: 0)
        let result = try TrainingJob(spec: spec).run(tables: [table])
        guard case .trees(let model) = result.model else { throw TrainingError(.invalidModel, "not trees") }
        return model
    }

    /// Squared error, base score 0.5: gradients ±0.5, hessians 1, lambda 1. The best split puts
    /// {1,2,3} left (G = 1.5, H = 3 → w = -1.5/4) and {4,5,6} right; gain = 2·(1.5²/4) = 1.125.
    @Test func splitsATinyTableExactly() throws {
        let table = try TrainingFixtures.table([1, 2, 3, 4, 5, 6], [0, 0, 0, 1, 1, 1])
        let model = try trainTrees(table, [
            "objective": "reg:squarederror", "num_round": "1", "max_depth": "1", "eta": "1",
            "min_child_weight": "0",
        ])
        #expect(model.baseScore == 0.5)
        let tree = try #require(model.trees.first)
        #expect(tree.nodeCount == 3)
        #expect(tree.splitIndices[0] == 0)
        #expect(tree.splitConditions[0] == 4)  // x < 4 goes left
        #expect(tree.leftChildren[0] == 1 && tree.rightChildren[0] == 2)
        #expect(tree.splitConditions[1] == -0.375 && tree.splitConditions[2] == 0.375)
        #expect(abs(tree.lossChanges[0] - 1.125) < 1e-6)
        #expect(tree.sumHessian == [6, 3, 3])
        let predictions = Model.trees(model).predict(columns: [[3.5, 4, Float.nan]])
        #expect(predictions[0] == 0.125 && predictions[1] == 0.875)
    }

    /// Logistic gradients at p = 0.5: g = p − y = ±0.5, h = p(1 − p) = 0.25. Leaves: ∓1/(0.5 + 1) × eta.
    @Test func logisticGradientsGiveTheHandComputedLeaves() throws {
        let table = try TrainingFixtures.table([1, 2, 3, 4], [0, 0, 1, 1])
        let model = try trainTrees(table, [
            "num_round": "1", "max_depth": "1", "eta": "0.3", "min_child_weight": "0", "base_score": "0.5",
        ])
        let tree = try #require(model.trees.first)
        #expect(abs(tree.splitConditions[1] - Float(-0.3 / 1.5)) < 1e-7)
        #expect(abs(tree.splitConditions[2] - Float(0.3 / 1.5)) < 1e-7)
        #expect(abs(tree.lossChanges[0] - Float(2.0 / 1.5)) < 1e-6)
        #expect(tree.sumHessian[0] == 1)
    }

    /// Rows with a missing value look like the high values, so missing learns to go right; and
    /// the mirror case learns to go left. Prediction routes missing values the same way.
    @Test func learnsTheDefaultDirectionOfMissingValues() throws {
        let parameters = [
            "objective": "reg:squarederror", "num_round": "1", "max_depth": "1", "eta": "1",
            "min_child_weight": "0",
        ]
        let right = try trainTrees(
            TrainingFixtures.table([1, 2, 5, 6, nil, nil], [0, 0, 1, 1, 1, 1]), parameters)
        let rightTree = try #require(right.trees.first)
        #expect(rightTree.defaultLeft[0] == false)
        #expect(rightTree.splitConditions[0] == 5)
        let left = try trainTrees(
            TrainingFixtures.table([1, 2, 5, 6, nil, nil], [0, 0, 1, 1, 0, 0]), parameters)
        let leftTree = try #require(left.trees.first)
        #expect(leftTree.defaultLeft[0] == true)
        let missing = Model.trees(left).predict(columns: [[Float.nan]])[0]
        let low = Model.trees(left).predict(columns: [[1]])[0]
        #expect(missing == low)
        #expect(Model.trees(right).predict(columns: [[Float.nan]])[0] == Model.trees(right).predict(columns: [[6]])[0])
    }

    /// Best root split gain here is 1/3 + 1/5 ≈ 0.53 (< gamma 2); no split leaves hessian 4 on both sides.
    @Test func gammaAndMinChildWeightStopSplits() throws {
        let table = try TrainingFixtures.table([1, 2, 3, 4, 5, 6], [0, 0, 1, 0, 1, 1])
        let base = ["objective": "reg:squarederror", "num_round": "1", "max_depth": "3", "eta": "1"]
        let pruned = try trainTrees(table, base.merging(["gamma": "2", "min_child_weight": "0"]) { $1 })
        #expect(pruned.trees[0].nodeCount == 1)
        let heavy = try trainTrees(table, base.merging(["min_child_weight": "4"]) { $1 })
        #expect(heavy.trees[0].nodeCount == 1)
        let grown = try trainTrees(table, base.merging(["min_child_weight": "0"]) { $1 })
        #expect(grown.trees[0].nodeCount > 3)
        #expect(grown.trees[0].depth <= 3)
    }

    @Test func binsAreQuantilesWithAtMostTheRequestedCount() {
        let values = (0..<10_000).map { Float($0 % 1000) }.sorted()
        let cuts = BinCuts.cuts(sortedValues: values, maxBins: 255)
        #expect(cuts.count <= 254)
        #expect(cuts == cuts.sorted() && Set(cuts).count == cuts.count)
        #expect(BinCuts.cuts(sortedValues: [1, 1, 2, 3], maxBins: 255) == [2, 3])
        let binner = BinCuts(cuts: [[2, 3]])
        #expect(binner.bin(1, feature: 0) == 0 && binner.bin(2, feature: 0) == 1 && binner.bin(9, feature: 0) == 2)
        #expect(binner.bin(.nan, feature: 0) == 3)
    }

    @Test func radixSortOrdersFloatsLikeAComparisonSort() {
        var generator = SystemRandomNumberGenerator()
        let special: [Float] = [0, -0.0, 1, -1, .infinity, -.infinity, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
                                .greatestFiniteMagnitude, -.greatestFiniteMagnitude, 1e-30, -1e-30]
        for count in [0, 1, 2, 3, 100, 5000] {
            var values = (0..<count).map { _ in
                Bool.random(using: &generator)
                    ? Float.random(in: -1000...1000, using: &generator)
                    : special.randomElement(using: &generator)! * Float(Int.random(in: 1...3, using: &generator))
            }
            let expected = values.map { $0 == 0 ? 0 : $0 }.sorted()
            BinCuts.radixSort(&values)
            #expect(values.map(\.bitPattern) == expected.map(\.bitPattern), "count \(count)")
        }
    }

    @Test func learnsASyntheticProblemWithSamplingDeterministically() throws {
        let table = try TrainingFixtures.synthetic(rows: 3000)
        let spec = TrainingSpec(
            label: "label", algorithm: .gbdt,
            parameters: ["num_round": "15", "max_depth": "4", "subsample": "0.8", "colsample_bytree": "0.7"],
            validationFraction: 0.25, seed: 3)
        let first = try TrainingJob(spec: spec).run(tables: [table])
        let second = try TrainingJob(spec: spec).run(tables: [table])
        #expect(first.modelJSON == second.modelJSON)
        let validation = try #require(first.metrics.validation)
        #expect(validation.rows == 750)
        #expect(try #require(validation.auc) > 0.75)
        #expect(first.metrics.train.auc! > validation.auc!)
    }

    /// The names a policy may use (`num_rounds`, `learning_rate`, `iterations`) are the trainer's
    /// own aliases, so `cleanroom train --param` takes them as a policy does.
    @Test func thePolicysParameterNamesAreAliases() throws {
        #expect(try GBDTParameters(["num_rounds": "7", "learning_rate": "0.2"], objective: .binaryLogistic)
            == GBDTParameters(["num_round": "7", "eta": "0.2"], objective: .binaryLogistic))
        #expect(try LinearParameters(["iterations": "9"], objective: .binaryLogistic).maxIterations == 9)
    }

    @Test func rejectsBadParametersAndLabels() throws {
        #expect(throws: TrainingError(.invalidParameter, "unknown parameter 'depth'")) {
            try TrainingJob(spec: TrainingSpec(label: "y", algorithm: .gbdt, parameters: ["depth": "3"]))
        }
        #expect(throws: TrainingError.self) {
            try TrainingJob(spec: TrainingSpec(label: "y", algorithm: .gbdt, parameters: ["eta": "2"]))
        }
        #expect(throws: TrainingError.self) {
            try TrainingJob(spec: TrainingSpec(label: "y", algorithm: .logistic, parameters: ["max_depth": "2"]))
        }
        #expect(throws: TrainingError(.invalidParameter, "parameter 'num_round' is given twice, as 'num_round' and 'num_rounds'")) {
            try TrainingJob(spec: TrainingSpec(label: "y", algorithm: .gbdt, parameters: ["num_round": "3", "num_rounds": "4"]))
        }
        let table = try TrainingFixtures.table([1, 2, 3], [0, 2, 1])
        #expect(throws: TrainingError(.invalidLabel, "binary:logistic needs labels 0 and 1")) {
            try TrainingJob(spec: TrainingSpec(label: "y", algorithm: .gbdt, validationFraction: 0)).run(tables: [table])
        }
    }
}
