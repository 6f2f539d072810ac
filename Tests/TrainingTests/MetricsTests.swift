import Foundation
import Testing

@testable import Training

@Suite struct MetricsTests {
    /// Hand-computed: positives at 0.8, 0.4 (tied with a negative), 0.9; negatives at 0.1, 0.4, 0.35.
    /// Pairs (pos > neg): 0.8 beats 3, 0.9 beats 3, 0.4 beats 0.1 and 0.35 and ties 0.4 (½) → 8.5 / 9.
    @Test func aucCountsTiesAsHalf() {
        let labels: [Double] = [1, 0, 1, 0, 1, 0]
        let scores: [Double] = [0.8, 0.1, 0.4, 0.4, 0.9, 0.35]
        #expect(abs(Metrics.auc(labels: labels, scores: scores) - 8.5 / 9) < 1e-12)
        #expect(Metrics.auc(labels: [1, 0], scores: [0.5, 0.5]) == 0.5)
        #expect(Metrics.auc(labels: [0, 0, 1, 1], scores: [0.1, 0.2, 0.3, 0.4]) == 1)
        #expect(Metrics.auc(labels: [1, 1], scores: [0.1, 0.2]).isNaN)
    }

    @Test func logLossAccuracyAndRMSE() {
        let labels: [Double] = [1, 0, 1, 0]
        let p: [Double] = [0.9, 0.2, 0.4, 0.5]
        let expected = -(log(0.9) + log(0.8) + log(0.4) + log(0.5)) / 4
        #expect(abs(Metrics.logLoss(labels: labels, probabilities: p) - expected) < 1e-12)
        #expect(Metrics.accuracy(labels: labels, probabilities: p) == 0.75)  // 0.5 is not above 0.5: a 0
        #expect(abs(Metrics.rmse(labels: [1, 2, 3], predictions: [1, 2, 5]) - (4.0 / 3).squareRoot()) < 1e-12)
        #expect(Metrics.logLoss(labels: [1], probabilities: [0]).isFinite)
    }

    @Test func splitIsDeterministicAndSized() throws {
        let a = try DataSplit(rowCount: 1000, validationFraction: 0.2, seed: 7)
        let b = try DataSplit(rowCount: 1000, validationFraction: 0.2, seed: 7)
        let c = try DataSplit(rowCount: 1000, validationFraction: 0.2, seed: 8)
        #expect(a == b)
        #expect(a != c)
        #expect(a.validationRows.count == 200 && a.trainRows.count == 800)
        #expect(Set(a.trainRows).isDisjoint(with: a.validationRows))
        #expect(throws: TrainingError.self) { try DataSplit(rowCount: 10, validationFraction: 1, seed: 0) }
    }
}
