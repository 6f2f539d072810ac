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
    /// NaN for missing), computed in 32-bit floats the way XGBoost's CPU predictor does (per row,
    /// the base margin plus each tree's leaf in order), on two threads.
    public func predict(columns: [[Float]]) -> [Double] {
        precondition(columns.count == featureNames.count, "feature count differs from the model's")
        let rowCount = columns.first?.count ?? 0
        var out = [Double](repeating: 0, count: rowCount)
        let ranges = Parallel.ranges(rowCount)
        switch self {
        case .trees(let model):
            let flat = FlatTrees(model.trees)
            let base = model.objective.baseMargin(model.baseScore), objective = model.objective
            out.withUnsafeMutableBufferPointer { buffer in
                let buffer = UncheckedBox(buffer)
                Parallel.run(ranges.count) { part in
                    flat.predict(columns: columns, rows: ranges[part], base: base) { row, margin in
                        buffer.value[row] = Double(objective.transform(margin))
                    }
                }
            }
        case .linear(let model):
            out.withUnsafeMutableBufferPointer { buffer in
                let buffer = UncheckedBox(buffer)
                Parallel.run(ranges.count) { part in
                    let base = model.bias + model.objective.baseMargin(model.baseScore)
                    for row in ranges[part] {
                        var margin = base
                        for f in 0..<model.weights.count where !columns[f][row].isNaN {
                            margin += columns[f][row] * model.weights[f]
                        }
                        buffer.value[row] = Double(model.objective.transform(margin))
                    }
                }
            }
        }
        return out
    }

    /// Predictions for a dataset's rows.
    public func predict(_ dataset: Dataset) -> [Double] { predict(columns: dataset.columns) }

}

/// Trees flattened into one node array for fast prediction over blocks of rows.
struct FlatTrees: Sendable {
    /// Per node: feature (-1 for a leaf), threshold or leaf value, children (absolute), default.
    let feature: [Int32]
    let value: [Float]
    let left: [Int32]
    let right: [Int32]
    let defaultLeft: [Bool]
    let roots: [Int]
    let featureCount: Int

    init(_ trees: [RegressionTree]) {
        var feature: [Int32] = [], value: [Float] = [], left: [Int32] = [], right: [Int32] = []
        var defaultLeft: [Bool] = [], roots: [Int] = []
        var maxFeature: Int32 = -1
        for tree in trees {
            let base = Int32(feature.count)
            roots.append(Int(base))
            for node in 0..<tree.nodeCount {
                let isLeaf = tree.leftChildren[node] < 0
                feature.append(isLeaf ? -1 : tree.splitIndices[node])
                maxFeature = max(maxFeature, isLeaf ? -1 : tree.splitIndices[node])
                value.append(tree.splitConditions[node])
                left.append(isLeaf ? -1 : base + tree.leftChildren[node])
                right.append(isLeaf ? -1 : base + tree.rightChildren[node])
                defaultLeft.append(tree.defaultLeft[node])
            }
        }
        self.feature = feature
        self.value = value
        self.left = left
        self.right = right
        self.defaultLeft = defaultLeft
        self.roots = roots
        featureCount = Int(maxFeature) + 1
    }

    /// Calls `emit(row, margin)` for each row of `rows`.
    func predict(columns: [[Float]], rows: Range<Int>, base: Float, _ emit: (Int, Float) -> Void) {
        let block = 128
        let width = max(1, featureCount)
        var cells = [Float](repeating: 0, count: block * width)
        var margins = [Float](repeating: 0, count: block)
        feature.withUnsafeBufferPointer { feature in
        value.withUnsafeBufferPointer { value in
        left.withUnsafeBufferPointer { left in
        right.withUnsafeBufferPointer { right in
        defaultLeft.withUnsafeBufferPointer { defaultLeft in
        cells.withUnsafeMutableBufferPointer { cells in
        margins.withUnsafeMutableBufferPointer { margins in
            var start = rows.lowerBound
            while start < rows.upperBound {
                let count = min(block, rows.upperBound - start)
                // Gather the block row-major.
                for f in 0..<min(featureCount, columns.count) {
                    columns[f].withUnsafeBufferPointer { column in
                        for i in 0..<count { cells[i &* width &+ f] = column[start &+ i] }
                    }
                }
                for i in 0..<count { margins[i] = base }
                for root in roots {
                    for i in 0..<count {
                        let row = cells.baseAddress! + i &* width
                        var node = root
                        while feature[node] >= 0 {
                            let x = row[Int(feature[node])]
                            let goLeft = x.isNaN ? defaultLeft[node] : x < value[node]
                            node = Int(goLeft ? left[node] : right[node])
                        }
                        margins[i] += value[node]
                    }
                }
                for i in 0..<count { emit(start + i, margins[i]) }
                start += count
            }
        }
        }
        }
        }
        }
        }
        }
    }
}
