import Foundation

/// Trains gradient-boosted trees the way XGBoost's `hist` method does: quantile bins, gradient
/// histograms per node (the larger child's by subtraction from its parent), depth-wise growth,
/// a learned default direction for missing values, on `Parallel.threads` threads.
///
/// Every random choice (row and column samples) comes from a generator seeded by the job seed
/// and the round number, so a run resumed from a checkpoint grows the same trees.
final class GBDTTrainer {
    let parameters: GBDTParameters
    let seed: UInt64
    let featureNames: [String]
    let featureCount: Int
    let cuts: BinCuts
    let trainMatrix: BinnedMatrix
    let validationMatrix: BinnedMatrix?
    let trainLabels: [Double]
    let validationLabels: [Double]
    let baseScore: Float
    /// First histogram slot of each feature; a feature has its value bins and a missing bin.
    private let offsets: UnsafeMutablePointer<Int>
    private let totalSlots: Int
    private(set) var trees: [RegressionTree] = []
    /// Per tree and node, the split as a bin index (for traversal of binned rows).
    private var treeSplitBins: [[UInt8]] = []

    private let rowCount: Int
    private let margins: UnsafeMutablePointer<Double>
    private let validationMargins: UnsafeMutablePointer<Double>
    private let gradients: UnsafeMutablePointer<Float>  // g, h interleaved
    private let rowIndex: UnsafeMutablePointer<UInt32>
    private let scratchLeft: UnsafeMutablePointer<UInt32>
    private let scratchRight: UnsafeMutablePointer<UInt32>
    private let spareHistogram: UnsafeMutablePointer<Double>
    private var histogramPool: [UnsafeMutablePointer<Double>] = []

    init(parameters: GBDTParameters, dataset: Dataset, trainRows: [Int], validationRows: [Int], seed: UInt64,
         progress: ProgressHandler? = nil) throws {
        self.parameters = parameters
        self.seed = seed
        featureNames = dataset.featureNames
        featureCount = dataset.featureCount
        guard !trainRows.isEmpty else { throw TrainingError(.notEnoughRows, "no training rows") }
        trainLabels = trainRows.map { dataset.labels[$0] }
        validationLabels = validationRows.map { dataset.labels[$0] }
        if parameters.objective == .binaryLogistic {
            guard trainLabels.allSatisfy({ $0 == 0 || $0 == 1 }), validationLabels.allSatisfy({ $0 == 0 || $0 == 1 })
            else { throw TrainingError(.invalidLabel, "binary:logistic needs labels 0 and 1") }
        }
        if let given = parameters.baseScore {
            baseScore = Float(given)
        } else {
            let mean = trainLabels.reduce(0, +) / Double(trainLabels.count)
            baseScore = Float(parameters.objective == .binaryLogistic ? min(max(mean, 1e-6), 1 - 1e-6) : mean)
        }
        progress?(TrainingProgress(phase: .binning))
        cuts = BinCuts(dataset: dataset, rows: trainRows, maxBins: parameters.maxBin - 1)
        trainMatrix = BinnedMatrix(dataset: dataset, rows: trainRows, cuts: cuts)
        validationMatrix = validationRows.isEmpty ? nil : BinnedMatrix(dataset: dataset, rows: validationRows, cuts: cuts)
        offsets = .allocate(capacity: featureCount + 1)
        var slot = 0
        for f in 0..<featureCount {
            offsets[f] = slot
            slot += cuts.valueBins(f) + 1
        }
        offsets[featureCount] = slot
        totalSlots = slot
        rowCount = trainRows.count
        margins = .allocate(capacity: rowCount)
        validationMargins = .allocate(capacity: max(1, validationRows.count))
        gradients = .allocate(capacity: rowCount * 2)
        rowIndex = .allocate(capacity: rowCount)
        scratchLeft = .allocate(capacity: rowCount)
        scratchRight = .allocate(capacity: rowCount)
        spareHistogram = .allocate(capacity: totalSlots * 2)
        let start = Double(parameters.objective.baseMargin(baseScore))
        margins.initialize(repeating: start, count: rowCount)
        validationMargins.initialize(repeating: start, count: max(1, validationRows.count))
    }

    deinit {
        for buffer in [margins, validationMargins] { buffer.deallocate() }
        offsets.deallocate()
        gradients.deallocate()
        rowIndex.deallocate()
        scratchLeft.deallocate()
        scratchRight.deallocate()
        spareHistogram.deallocate()
        for histogram in histogramPool { histogram.deallocate() }
    }

    /// The model so far.
    var model: TreeEnsemble {
        TreeEnsemble(objective: parameters.objective, baseScore: baseScore, featureNames: featureNames, trees: trees)
    }

    /// Restores trees from a checkpoint and replays their effect on the margins.
    func restore(trees saved: [RegressionTree]) throws {
        for tree in saved {
            var splitBins = [UInt8](repeating: 0, count: tree.nodeCount)
            for node in 0..<tree.nodeCount where tree.leftChildren[node] >= 0 {
                let f = Int(tree.splitIndices[node])
                guard f < featureCount, let bin = cuts.cuts[f].firstIndex(of: tree.splitConditions[node]) else {
                    throw TrainingError(.invalidCheckpoint, "checkpoint trees do not match this data's bins")
                }
                splitBins[node] = UInt8(bin)
            }
            trees.append(tree)
            treeSplitBins.append(splitBins)
            applyToMargins(tree: trees.count - 1, matrix: trainMatrix, margins: margins)
            if let validationMatrix { applyToMargins(tree: trees.count - 1, matrix: validationMatrix, margins: validationMargins) }
        }
    }

    /// Grows one more tree; returns the validation loss after it, and the training loss every
    /// tenth round and at the last.
    func boostOneRound() -> (loss: Double?, validationLoss: Double?) {
        let round = trees.count
        var random = SeededRandom(seed: seed, stream: UInt64(round) &+ 1)
        computeGradients()
        // Row sample.
        var sampled = 0
        if parameters.subsample < 1 {
            for row in 0..<rowCount where random.nextUnit() < parameters.subsample {
                rowIndex[sampled] = UInt32(row)
                sampled += 1
            }
        } else {
            for row in 0..<rowCount { rowIndex[row] = UInt32(row) }
            sampled = rowCount
        }
        // Column sample.
        var features = Array(0..<featureCount)
        if parameters.colsampleBytree < 1 {
            let keep = max(1, Int((parameters.colsampleBytree * Double(featureCount)).rounded(.down)))
            for i in 0..<keep {
                let j = i + Int(random.next() % UInt64(featureCount - i))
                features.swapAt(i, j)
            }
            features = Array(features.prefix(keep)).sorted()
        }
        let (tree, splitBins, leaves) = growTree(sampledRows: sampled, features: features)
        trees.append(tree)
        treeSplitBins.append(splitBins)
        if sampled == rowCount {
            for leaf in leaves {
                let value = Double(tree.splitConditions[Int(leaf.node)])
                for i in leaf.begin..<leaf.end { margins[Int(rowIndex[i])] += value }
            }
        } else {
            applyToMargins(tree: trees.count - 1, matrix: trainMatrix, margins: margins)
        }
        if let validationMatrix { applyToMargins(tree: trees.count - 1, matrix: validationMatrix, margins: validationMargins) }
        // The training loss costs a pass over every row: every tenth round and the last.
        let loss = round % 10 == 9 || round + 1 == parameters.numRound
            ? Self.loss(parameters.objective, labels: trainLabels, margins: margins) : nil
        let validationLoss = validationMatrix == nil
            ? nil : Self.loss(parameters.objective, labels: validationLabels, margins: validationMargins)
        return (loss, validationLoss)
    }

    /// Mean log-loss or RMSE of margins (two threads; partial sums added in a fixed order).
    static func loss(_ objective: Objective, labels: [Double], margins: UnsafeMutablePointer<Double>) -> Double {
        let ranges = Parallel.ranges(labels.count)
        var partials = [Double](repeating: 0, count: ranges.count)
        labels.withUnsafeBufferPointer { labels in
            partials.withUnsafeMutableBufferPointer { partials in
                Parallel.run(ranges.count) { part in
                    var total = 0.0
                    for i in ranges[part] {
                        let m = margins[i], y = labels[i]
                        switch objective {
                        case .binaryLogistic:
                            // log(1 + e^m) - y m, computed stably.
                            total += max(m, 0) + Foundation.log1p(Foundation.exp(-abs(m))) - y * m
                        case .squaredError:
                            total += (m - y) * (m - y)
                        }
                    }
                    partials[part] = total
                }
            }
        }
        let mean = partials.reduce(0, +) / Double(max(1, labels.count))
        return objective == .squaredError ? mean.squareRoot() : mean
    }

    private func computeGradients() {
        let ranges = Parallel.ranges(rowCount)
        let margins = margins, gradients = gradients, objective = parameters.objective
        trainLabels.withUnsafeBufferPointer { labels in
            Parallel.run(ranges.count) { part in
                for i in ranges[part] {
                    switch objective {
                    case .binaryLogistic:
                        let p = 1 / (1 + Foundation.exp(-margins[i]))
                        gradients[2 * i] = Float(p - labels[i])
                        gradients[2 * i + 1] = Float(max(p * (1 - p), 1e-16))
                    case .squaredError:
                        gradients[2 * i] = Float(margins[i] - labels[i])
                        gradients[2 * i + 1] = 1
                    }
                }
            }
        }
    }

    private func applyToMargins(tree index: Int, matrix: BinnedMatrix, margins: UnsafeMutablePointer<Double>) {
        let tree = trees[index], splitBins = treeSplitBins[index]
        let ranges = Parallel.ranges(matrix.rowCount)
        let bins = matrix.bins, width = matrix.featureCount
        matrix.missingBin.withUnsafeBufferPointer { missing in
            Parallel.run(ranges.count) { part in
                for row in ranges[part] {
                    let cells = bins + row * width
                    var node = 0
                    while tree.leftChildren[node] >= 0 {
                        let f = Int(tree.splitIndices[node])
                        let bin = cells[f]
                        let goLeft = bin == missing[f] ? tree.defaultLeft[node] : bin <= splitBins[node]
                        node = Int(goLeft ? tree.leftChildren[node] : tree.rightChildren[node])
                    }
                    margins[row] += Double(tree.splitConditions[node])
                }
            }
        }
    }

    // MARK: - Growing one tree

    private struct NodeWork {
        var node: Int32
        var begin: Int
        var end: Int
        var sumG: Double
        var sumH: Double
        var histogram: UnsafeMutablePointer<Double>?
    }

    private struct Split {
        var gain = 0.0
        var feature = -1
        var bin = 0
        var defaultLeft = false
        var leftG = 0.0, leftH = 0.0
    }

    private func weight(_ g: Double, _ h: Double) -> Double {
        if h < parameters.minChildWeight || h <= 0 { return 0 }
        return -g / (h + parameters.lambda)
    }

    private func growTree(sampledRows: Int, features: [Int]) -> (RegressionTree, [UInt8], [NodeWork]) {
        var tree = RegressionTree()
        var splitBins: [UInt8] = [0]
        _ = tree.addNode(parent: Int32.max)
        var sumG = 0.0, sumH = 0.0
        for i in 0..<sampledRows {
            let row = Int(rowIndex[i])
            sumG += Double(gradients[2 * row])
            sumH += Double(gradients[2 * row + 1])
        }
        var level = [NodeWork(node: 0, begin: 0, end: sampledRows, sumG: sumG, sumH: sumH, histogram: nil)]
        level[0].histogram = takeHistogram()
        buildHistogram(level[0], into: level[0].histogram!, features: features)
        var leaves: [NodeWork] = []
        let eta = parameters.eta
        for depth in 0...parameters.maxDepth {
            var next: [NodeWork] = []
            for var work in level {
                let node = Int(work.node)
                tree.sumHessian[node] = Float(work.sumH)
                tree.baseWeights[node] = Float(eta * weight(work.sumG, work.sumH))
                var split = Split()
                if depth < parameters.maxDepth, let histogram = work.histogram {
                    split = findSplit(histogram, sumG: work.sumG, sumH: work.sumH, features: features)
                }
                guard split.feature >= 0, split.gain > 1e-6, split.gain >= parameters.gamma else {
                    tree.splitConditions[node] = tree.baseWeights[node]
                    if let histogram = work.histogram { returnHistogram(histogram) }
                    work.histogram = nil
                    leaves.append(work)
                    continue
                }
                let middle = partition(work, feature: split.feature, bin: split.bin, defaultLeft: split.defaultLeft)
                let left = tree.addNode(parent: work.node), right = tree.addNode(parent: work.node)
                splitBins += [0, 0]
                tree.leftChildren[node] = left
                tree.rightChildren[node] = right
                tree.splitIndices[node] = Int32(split.feature)
                tree.splitConditions[node] = cuts.cuts[split.feature][split.bin]
                tree.defaultLeft[node] = split.defaultLeft
                tree.lossChanges[node] = Float(split.gain)
                splitBins[node] = UInt8(split.bin)
                var leftWork = NodeWork(
                    node: left, begin: work.begin, end: middle, sumG: split.leftG, sumH: split.leftH, histogram: nil)
                var rightWork = NodeWork(
                    node: right, begin: middle, end: work.end, sumG: work.sumG - split.leftG,
                    sumH: work.sumH - split.leftH, histogram: nil)
                let parentHistogram = work.histogram!
                if depth + 1 < parameters.maxDepth {
                    // Build the smaller child; the larger is the parent minus it.
                    let small = takeHistogram()
                    let leftIsSmall = middle - work.begin <= work.end - middle
                    buildHistogram(leftIsSmall ? leftWork : rightWork, into: small, features: features)
                    let count = totalSlots * 2
                    for i in 0..<count { parentHistogram[i] -= small[i] }
                    if leftIsSmall {
                        leftWork.histogram = small
                        rightWork.histogram = parentHistogram
                    } else {
                        rightWork.histogram = small
                        leftWork.histogram = parentHistogram
                    }
                } else {
                    returnHistogram(parentHistogram)
                }
                next.append(leftWork)
                next.append(rightWork)
            }
            level = next
            if level.isEmpty { break }
        }
        return (tree, splitBins, leaves)
    }

    private func takeHistogram() -> UnsafeMutablePointer<Double> {
        histogramPool.popLast() ?? .allocate(capacity: totalSlots * 2)
    }

    private func returnHistogram(_ histogram: UnsafeMutablePointer<Double>) { histogramPool.append(histogram) }

    /// Sums gradient pairs into per-bin slots for the node's rows (two threads on large nodes).
    private func buildHistogram(_ work: NodeWork, into histogram: UnsafeMutablePointer<Double>, features: [Int]) {
        let count = work.end - work.begin
        histogram.update(repeating: 0, count: totalSlots * 2)
        if count < 16_384 {
            accumulate(work.begin, work.end, histogram, features: features)
            return
        }
        let middle = work.begin + count / 2
        let spare = spareHistogram
        spare.update(repeating: 0, count: totalSlots * 2)
        Parallel.run(2) { part in
            if part == 0 {
                self.accumulate(work.begin, middle, histogram, features: features)
            } else {
                self.accumulate(middle, work.end, spare, features: features)
            }
        }
        for i in 0..<(totalSlots * 2) { histogram[i] += spare[i] }
    }

    private func accumulate(
        _ begin: Int, _ end: Int, _ histogram: UnsafeMutablePointer<Double>, features: [Int]
    ) {
        let width = featureCount
        let bins = trainMatrix.bins, offsets = offsets, gradients = gradients, rowIndex = rowIndex
        if features.count == width {
            for i in begin..<end {
                let row = Int(rowIndex[i])
                let g = Double(gradients[2 &* row]), h = Double(gradients[2 &* row &+ 1])
                let cells = bins + row &* width
                for f in 0..<width {
                    let slot = (offsets[f] &+ Int(cells[f])) &* 2
                    histogram[slot] += g
                    histogram[slot &+ 1] += h
                }
            }
        } else {
            features.withUnsafeBufferPointer { active in
                for i in begin..<end {
                    let row = Int(rowIndex[i])
                    let g = Double(gradients[2 &* row]), h = Double(gradients[2 &* row &+ 1])
                    let cells = bins + row &* width
                    for f in active {
                        let slot = (offsets[f] &+ Int(cells[f])) &* 2
                        histogram[slot] += g
                        histogram[slot &+ 1] += h
                    }
                }
            }
        }
    }

    /// The best split of a node over its histogram, trying missing values on either side.
    private func findSplit(_ histogram: UnsafeMutablePointer<Double>, sumG: Double, sumH: Double, features: [Int]) -> Split {
        let lambda = parameters.lambda, minWeight = parameters.minChildWeight
        let parentScore = sumG * sumG / (sumH + lambda)
        var best = Split()
        for f in features {
            let base = offsets[f]
            let valueBins = cuts.valueBins(f)
            let missingG = histogram[(base + valueBins) * 2], missingH = histogram[(base + valueBins) * 2 + 1]
            var leftG = 0.0, leftH = 0.0
            for bin in 0..<(valueBins - 1) {
                leftG += histogram[(base + bin) * 2]
                leftH += histogram[(base + bin) * 2 + 1]
                // Missing values to the right.
                do {
                    let rightG = sumG - leftG, rightH = sumH - leftH
                    if leftH >= minWeight, rightH >= minWeight {
                        let gain = leftG * leftG / (leftH + lambda) + rightG * rightG / (rightH + lambda) - parentScore
                        if gain > best.gain {
                            best = Split(gain: gain, feature: f, bin: bin, defaultLeft: false, leftG: leftG, leftH: leftH)
                        }
                    }
                }
                // Missing values to the left.
                if missingH > 0 {
                    let lg = leftG + missingG, lh = leftH + missingH
                    let rightG = sumG - lg, rightH = sumH - lh
                    if lh >= minWeight, rightH >= minWeight {
                        let gain = lg * lg / (lh + lambda) + rightG * rightG / (rightH + lambda) - parentScore
                        if gain > best.gain {
                            best = Split(gain: gain, feature: f, bin: bin, defaultLeft: true, leftG: lg, leftH: lh)
                        }
                    }
                }
            }
        }
        return best
    }

    /// Reorders the node's rows so the left child's come first; returns where the right child's start.
    private func partition(_ work: NodeWork, feature: Int, bin: Int, defaultLeft: Bool) -> Int {
        let column = trainMatrix.columnBins + feature * trainMatrix.rowCount
        let missing = trainMatrix.missingBin[feature], splitBin = UInt8(bin)
        let rowIndex = rowIndex, scratchLeft = scratchLeft, scratchRight = scratchRight
        let count = work.end - work.begin
        let parts = count < 65_536 ? 1 : 2
        let ranges = Parallel.ranges(count, parts: parts).map { ($0.lowerBound + work.begin)..<($0.upperBound + work.begin) }
        var leftCounts = [Int](repeating: 0, count: parts), rightCounts = [Int](repeating: 0, count: parts)
        leftCounts.withUnsafeMutableBufferPointer { leftCounts in
            rightCounts.withUnsafeMutableBufferPointer { rightCounts in
                Parallel.run(parts) { part in
                    var l = ranges[part].lowerBound, r = ranges[part].lowerBound
                    for i in ranges[part] {
                        let row = rowIndex[i]
                        let cell = column[Int(row)]
                        let goLeft = cell == missing ? defaultLeft : cell <= splitBin
                        if goLeft {
                            scratchLeft[l] = row
                            l += 1
                        } else {
                            scratchRight[r] = row
                            r += 1
                        }
                    }
                    leftCounts[part] = l - ranges[part].lowerBound
                    rightCounts[part] = r - ranges[part].lowerBound
                }
            }
        }
        var out = work.begin
        for part in 0..<parts {
            (rowIndex + out).update(from: scratchLeft + ranges[part].lowerBound, count: leftCounts[part])
            out += leftCounts[part]
        }
        let middle = out
        for part in 0..<parts {
            (rowIndex + out).update(from: scratchRight + ranges[part].lowerBound, count: rightCounts[part])
            out += rightCounts[part]
        }
        return middle
    }
}
