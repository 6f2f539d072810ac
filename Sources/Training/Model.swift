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
///
/// Rows go down a tree level by level, a block of rows at a time, with no branch per node: a leaf
/// is its own child on both sides, so every row takes exactly the tree's depth in steps, and the
/// child is picked by index arithmetic. The rows of a block are independent, so their memory loads
/// overlap instead of waiting on one another and on mispredicted branches.
struct FlatTrees: Sendable {
    /// One node in 16 bytes, so a step loads one place: a leaf tests feature 0 and has itself as
    /// both children.
    struct Node {
        /// A row goes left when its value is below this (inner nodes).
        var threshold: Float
        /// The feature tested, with bit 31 set when a missing value goes left.
        var featureAndDefault: UInt32
        var left: Int32
        var right: Int32
    }

    let nodes: [Node]
    /// Per node: the leaf value (0 for inner nodes).
    let leafValue: [Float]
    /// Per tree: its root and its depth (the steps from the root to its deepest leaf).
    let roots: [(root: Int, depth: Int)]
    let featureCount: Int

    init(_ trees: [RegressionTree]) {
        var nodes: [Node] = [], leafValue: [Float] = [], roots: [(Int, Int)] = []
        var maxFeature: Int32 = -1
        for tree in trees {
            let base = Int32(nodes.count)
            // Depths from the children (which always come after their parent), not from `parents`.
            var depth = [Int](repeating: 0, count: tree.nodeCount), deepest = 0
            for node in 0..<tree.nodeCount where tree.leftChildren[node] >= 0 {
                depth[Int(tree.leftChildren[node])] = depth[node] + 1
                depth[Int(tree.rightChildren[node])] = depth[node] + 1
                deepest = max(deepest, depth[node] + 1)
            }
            roots.append((Int(base), deepest))
            for node in 0..<tree.nodeCount {
                let isLeaf = tree.leftChildren[node] < 0
                let me = base + Int32(node)
                maxFeature = max(maxFeature, isLeaf ? -1 : tree.splitIndices[node])
                let feature = isLeaf ? 0 : UInt32(tree.splitIndices[node])
                nodes.append(Node(
                    threshold: isLeaf ? 0 : tree.splitConditions[node],
                    featureAndDefault: feature | (tree.defaultLeft[node] ? 1 << 31 : 0),
                    left: isLeaf ? me : base + tree.leftChildren[node], right: isLeaf ? me : base + tree.rightChildren[node]))
                leafValue.append(isLeaf ? tree.splitConditions[node] : 0)
            }
        }
        self.nodes = nodes
        self.leafValue = leafValue
        self.roots = roots
        featureCount = Int(maxFeature) + 1
    }

    /// Calls `emit(row, margin)` for each row of `rows`.
    func predict(columns: [[Float]], rows: Range<Int>, base: Float, _ emit: (Int, Float) -> Void) {
        let block = 256
        let width = max(1, featureCount)
        var cells = [Float](repeating: 0, count: block * width)
        var margins = [Float](repeating: 0, count: block)
        var at = [Int32](repeating: 0, count: block)
        nodes.withUnsafeBufferPointer { nodes in
        leafValue.withUnsafeBufferPointer { leafValue in
        cells.withUnsafeMutableBufferPointer { cells in
        margins.withUnsafeMutableBufferPointer { margins in
        at.withUnsafeMutableBufferPointer { at in
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
                for (root, depth) in roots {
                    for i in 0..<count { at[i] = Int32(root) }
                    for _ in 0..<depth {
                        for i in 0..<count {
                            let node = nodes[Int(at[i])]
                            let x = cells[i &* width &+ Int(node.featureAndDefault & 0x7fff_ffff)]
                            // `x < threshold` is false for NaN, which then goes where the node says;
                            // bits, not `||`, so that no branch is taken per node.
                            let goLeft = Self.bit(x < node.threshold) | (Self.bit(x.isNaN) & Int(node.featureAndDefault >> 31))
                            at[i] = goLeft == 1 ? node.left : node.right
                        }
                    }
                    for i in 0..<count { margins[i] += leafValue[Int(at[i])] }
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

    @inline(__always) static func bit(_ value: Bool) -> Int { Int(unsafeBitCast(value, to: UInt8.self)) }
}
