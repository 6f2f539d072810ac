import Foundation
import Testing

@testable import Training

@Suite struct LinearModelTests {
    /// The analytic gradient of the regularised objective matches central finite differences.
    @Test(arguments: [Objective.binaryLogistic, .squaredError])
    func gradientMatchesFiniteDifferences(objective: Objective) throws {
        let table = try TrainingFixtures.synthetic(rows: 400, features: 4)
        let dataset = try Dataset(table: table, label: "label")
        var parameters = LinearParameters()
        parameters.objective = objective
        parameters.lambda = 3
        let trainer = try LinearTrainer(parameters: parameters, dataset: dataset, trainRows: Array(0..<400))
        let weights: [Double] = [0.3, -0.2, 0.5, 0.1, -0.4]
        let (_, gradient) = trainer.evaluate(weights)
        for k in 0..<weights.count {
            var plus = weights, minus = weights
            plus[k] += 1e-5
            minus[k] -= 1e-5
            let numeric = (trainer.evaluate(plus).0 - trainer.evaluate(minus).0) / 2e-5
            #expect(abs(numeric - gradient[k]) < 1e-6, "component \(k)")
        }
    }

    /// Logistic regression on standardised features reaches the optimum (gradient below tol) and
    /// the raw-unit model it exports predicts what the standardised one does.
    @Test func logisticRegressionConvergesAndExportsRawUnits() throws {
        let table = try TrainingFixtures.synthetic(rows: 2000)
        let spec = TrainingSpec(label: "label", algorithm: .logistic, parameters: ["tol": "1e-6"], validationFraction: 0.2, seed: 1)
        let result = try TrainingJob(spec: spec).run(tables: [table])
        #expect(result.metrics.iterations < 100)
        #expect(try #require(result.metrics.validation?.auc) > 0.7)
        guard case .linear(let model) = result.model else {
            Issue.record("expected a linear model")
            return
        }
        #expect(model.weights.count == 6)
        // Feature 0 has a positive coefficient in the generator, feature 1 a negative one.
        #expect(model.weights[0] > 0 && model.weights[1] < 0)
    }

    /// Linear regression recovers the coefficients of a noiseless line (tiny lambda).
    @Test func linearRegressionRecoversALine() throws {
        let x1: [Float] = (0..<200).map { Float($0 % 17) / 4 }, x2: [Float] = (0..<200).map { Float(($0 * 7) % 23) / 5 }
        let y = zip(x1, x2).map { 2 * $0 - 3 * $1 + 1 }
        let table = try Table(columns: [.float("a", x1), .float("b", x2), .float("y", y)])
        let spec = TrainingSpec(
            label: "y", algorithm: .linear, parameters: ["lambda": "0", "tol": "1e-10", "max_iter": "500"],
            validationFraction: 0)
        let result = try TrainingJob(spec: spec).run(tables: [table])
        guard case .linear(let model) = result.model else {
            Issue.record("expected a linear model")
            return
        }
        #expect(abs(model.weights[0] - 2) < 1e-4 && abs(model.weights[1] + 3) < 1e-4 && abs(model.bias - 1) < 1e-3)
        #expect(try #require(result.metrics.train.rmse) < 1e-3)
    }
}
