/// One regression tree in XGBoost's array layout: node 0 is the root, `-1` marks no child.
///
/// An internal node sends a row left when `value < splitConditions[node]` (32-bit floats) and a
/// missing value where `defaultLeft[node]` says; a leaf's output is its `splitConditions` entry.
public struct RegressionTree: Sendable, Equatable {
    public var leftChildren: [Int32] = []
    public var rightChildren: [Int32] = []
    public var parents: [Int32] = []
    public var splitIndices: [Int32] = []
    public var splitConditions: [Float] = []
    public var defaultLeft: [Bool] = []
    public var baseWeights: [Float] = []
    public var lossChanges: [Float] = []
    public var sumHessian: [Float] = []

    public init() {}

    public var nodeCount: Int { leftChildren.count }

    /// Appends a node and returns its index.
    mutating func addNode(parent: Int32) -> Int32 {
        leftChildren.append(-1)
        rightChildren.append(-1)
        parents.append(parent)
        splitIndices.append(0)
        splitConditions.append(0)
        defaultLeft.append(false)
        baseWeights.append(0)
        lossChanges.append(0)
        sumHessian.append(0)
        return Int32(nodeCount - 1)
    }

    /// The leaf output for the row whose feature `f` is `feature(f)` (NaN for missing).
    @inline(__always)
    public func leafValue(_ feature: (Int) -> Float) -> Float {
        var node = 0
        while leftChildren[node] >= 0 {
            let value = feature(Int(splitIndices[node]))
            let goLeft = value.isNaN ? defaultLeft[node] : value < splitConditions[node]
            node = Int(goLeft ? leftChildren[node] : rightChildren[node])
        }
        return splitConditions[node]
    }

    /// Depth of the deepest leaf (the root alone is depth 0).
    public var depth: Int {
        var depths = [Int](repeating: 0, count: nodeCount)
        var deepest = 0
        for node in 1..<max(1, nodeCount) {
            depths[node] = depths[Int(parents[node])] + 1
            deepest = max(deepest, depths[node])
        }
        return deepest
    }
}
