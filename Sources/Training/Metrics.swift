import Foundation

/// Evaluation metrics, computed in double precision.
public enum Metrics {
    /// Area under the ROC curve for 0/1 labels; tied scores count one half (average ranks).
    /// Returns NaN when only one class is present.
    public static func auc(labels: [Double], scores: [Double]) -> Double {
        precondition(labels.count == scores.count)
        // Pairs sorted in place: each comparison reads its two neighbours, not two random indices.
        var pairs = zip(scores, labels).map { (score: $0, positive: $1 > 0.5) }
        pairs.sort { $0.score < $1.score }
        var positives = 0.0, rankSum = 0.0
        var i = 0
        while i < pairs.count {
            var j = i
            while j + 1 < pairs.count, pairs[j + 1].score == pairs[i].score { j += 1 }
            let averageRank = Double(i + j + 2) / 2  // ranks are 1-based
            for k in i...j where pairs[k].positive {
                positives += 1
                rankSum += averageRank
            }
            i = j + 1
        }
        let negatives = Double(labels.count) - positives
        guard positives > 0, negatives > 0 else { return .nan }
        return (rankSum - positives * (positives + 1) / 2) / (positives * negatives)
    }

    /// Mean negative log-likelihood of 0/1 labels under probabilities (clipped to [1e-15, 1 - 1e-15]).
    public static func logLoss(labels: [Double], probabilities: [Double]) -> Double {
        precondition(labels.count == probabilities.count)
        guard !labels.isEmpty else { return .nan }
        var total = 0.0
        for (y, p) in zip(labels, probabilities) {
            let q = min(max(p, 1e-15), 1 - 1e-15)
            total -= y * Foundation.log(q) + (1 - y) * Foundation.log(1 - q)
        }
        return total / Double(labels.count)
    }

    /// The share of rows where `probability > 0.5` matches the 0/1 label.
    public static func accuracy(labels: [Double], probabilities: [Double]) -> Double {
        precondition(labels.count == probabilities.count)
        guard !labels.isEmpty else { return .nan }
        var correct = 0
        for (y, p) in zip(labels, probabilities) where (p > 0.5) == (y > 0.5) { correct += 1 }
        return Double(correct) / Double(labels.count)
    }

    /// Root mean squared error.
    public static func rmse(labels: [Double], predictions: [Double]) -> Double {
        precondition(labels.count == predictions.count)
        guard !labels.isEmpty else { return .nan }
        var total = 0.0
        for (y, p) in zip(labels, predictions) { total += (y - p) * (y - p) }
        return (total / Double(labels.count)).squareRoot()
    }
}
