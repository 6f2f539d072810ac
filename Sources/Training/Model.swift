/// A boosted tree ensemble (XGBoost `gbtree`).
public struct TreeEnsemble: Sendable, Equatable {
    public var objective: Objective
    /// The base score in prediction space (a probability for `binary:logistic`).
    public var baseScore: Float
    public var featureNames: [String]
    public var trees: [RegressionTree]

    public init(objective: Objective, baseScore: Float, featureNames: [String], trees: [RegressionTree]) {
        self.objective = objective
        self.baseScore = baseScore
        self.featureNames = featureNames
        self.trees = trees
    }
}

/// A linear model (XGBoost `gblinear`) over raw feature values: a missing value contributes
/// nothing, as in XGBoost.
public struct LinearModel: Sendable, Equatable {
    public var objective: Objective
    public var baseScore: Float
    public var featureNames: [String]
    public var weights: [Float]
    public var bias: Float

    public init(objective: Objective, baseScore: Float, featureNames: [String], weights: [Float], bias: Float) {
        self.objective = objective
        self.baseScore = baseScore
        self.featureNames = featureNames
        self.weights = weights
        self.bias = bias
    }
}

/// A trained model: what the XGBoost JSON export holds and what predictions are made from.
public enum Model: Sendable, Equatable {
    case trees(TreeEnsemble)
    case linear(LinearModel)

    public var objective: Objective {
        switch self {
        case .trees(let m): return m.objective
        case .linear(let m): return m.objective
        }
    }

    public var featureNames: [String] {
        switch self {
        case .trees(let m): return m.featureNames
        case .linear(let m): return m.featureNames
        }
    }

    /// Predictions (probabilities or values) for the rows of `columns` (one array per feature,
    /// NaN for missing), computed in 32-bit floats the way XGBoost's CPU predictor does, on two threads.
    public func predict(columns: [[Float]]) -> [Double] {
        precondition(columns.count == featureNames.count, "feature count differs from the model's")
        let rowCount = columns.first?.count ?? 0
        var out = [Double](repeating: 0, count: rowCount)
        let ranges = Parallel.ranges(rowCount)
        out.withUnsafeMutableBufferPointer { buffer in
            let buffer = UncheckedBox(buffer)
            Parallel.run(ranges.count) { part in
                for row in ranges[part] { buffer.value[row] = Double(predictRow(columns, row)) }
            }
        }
        return out
    }

    /// Predictions for a dataset's rows.
    public func predict(_ dataset: Dataset) -> [Double] { predict(columns: dataset.columns) }

    @inline(__always)
    private func predictRow(_ columns: [[Float]], _ row: Int) -> Float {
        switch self {
        case .trees(let m):
            var margin = m.objective.baseMargin(m.baseScore)
            for tree in m.trees { margin += tree.leafValue { columns[$0][row] } }
            return m.objective.transform(margin)
        case .linear(let m):
            var margin = m.bias + m.objective.baseMargin(m.baseScore)
            for f in 0..<m.weights.count where !columns[f][row].isNaN { margin += columns[f][row] * m.weights[f] }
            return m.objective.transform(margin)
        }
    }
}
