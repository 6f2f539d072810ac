import Foundation

/// The optimiser state of a linear model: weights on standardised features (intercept last) and
/// the L-BFGS history. It is what a linear-model checkpoint holds.
struct LBFGSState: Equatable {
    var iteration = 0
    var weights: [Double]
    var value = Double.infinity
    var gradient: [Double] = []
    var steps: [[Double]] = []  // s_k = x_{k+1} - x_k
    var changes: [[Double]] = []  // y_k = g_{k+1} - g_k
    var converged = false
}

/// Trains L2-regularised logistic or linear regression on standardised features with L-BFGS,
/// on `Parallel.threads` threads.
///
/// The objective is scikit-learn's: mean loss plus `lambda / (2 n)` times the squared weights
/// (the intercept is not penalised), so `lambda` is scikit-learn's `1 / C` (and Ridge's `alpha`
/// for linear regression, whose loss is half the mean squared error). It stops when the largest
/// gradient component is at most `tol` or the objective stops decreasing (scipy's `ftol`).
/// A missing value counts as 0 in raw units, which is what XGBoost's `gblinear` does with it, so
/// the exported model predicts exactly what was trained.
final class LinearTrainer {
    static let historySize = 10
    let parameters: LinearParameters
    let featureNames: [String]
    let featureCount: Int
    let rowCount: Int
    let means: [Double]
    let scales: [Double]
    /// Standardised training features, column-major.
    private let columns: [[Float]]
    private let labels: [Double]
    private(set) var state: LBFGSState

    init(parameters: LinearParameters, dataset: Dataset, trainRows: [Int]) throws {
        self.parameters = parameters
        featureNames = dataset.featureNames
        featureCount = dataset.featureCount
        rowCount = trainRows.count
        guard rowCount > 0 else { throw TrainingError(.notEnoughRows, "no training rows") }
        labels = trainRows.map { dataset.labels[$0] }
        if parameters.objective == .binaryLogistic, !labels.allSatisfy({ $0 == 0 || $0 == 1 }) {
            throw TrainingError(.invalidLabel, "logistic regression needs labels 0 and 1")
        }
        var means = [Double](repeating: 0, count: featureCount), scales = means
        var columns = [[Float]](repeating: [], count: featureCount)
        let n = Double(trainRows.count)
        columns.withUnsafeMutableBufferPointer { out in
            means.withUnsafeMutableBufferPointer { meanOut in
                scales.withUnsafeMutableBufferPointer { scaleOut in
                    let out = UncheckedBox(out), meanOut = UncheckedBox(meanOut), scaleOut = UncheckedBox(scaleOut)
                    Parallel.run(dataset.featureCount) { f in
                        let raw = dataset.columns[f]
                        var sum = 0.0, sumSquares = 0.0
                        for row in trainRows where !raw[row].isNaN {
                            let v = Double(raw[row])
                            sum += v
                            sumSquares += v * v
                        }
                        let mean = sum / n
                        let variance = max(0, sumSquares / n - mean * mean)
                        let scale = variance > 1e-24 ? variance.squareRoot() : 1
                        var column = [Float](repeating: 0, count: trainRows.count)
                        for (i, row) in trainRows.enumerated() {
                            let v = raw[row].isNaN ? 0 : Double(raw[row])
                            column[i] = Float((v - mean) / scale)
                        }
                        out.value[f] = column
                        meanOut.value[f] = mean
                        scaleOut.value[f] = scale
                    }
                }
            }
        }
        self.means = means
        self.scales = scales
        self.columns = columns
        state = LBFGSState(weights: [Double](repeating: 0, count: featureCount + 1))
    }

    /// Resumes from a checkpointed optimiser state.
    func restore(_ saved: LBFGSState) throws {
        guard saved.weights.count == featureCount + 1 else {
            throw TrainingError(.invalidCheckpoint, "checkpoint has a different number of features")
        }
        state = saved
    }

    var isDone: Bool { state.converged || state.iteration >= parameters.maxIterations }

    /// Objective and gradient at `weights` (two threads over row blocks).
    func evaluate(_ weights: [Double]) -> (Double, [Double]) {
        let parts = Parallel.ranges(rowCount)
        let width = featureCount
        var partials = [[Double]](repeating: [], count: parts.count)
        var losses = [Double](repeating: 0, count: parts.count)
        let objective = parameters.objective
        partials.withUnsafeMutableBufferPointer { partialOut in
            losses.withUnsafeMutableBufferPointer { lossOut in
                let partialOut = UncheckedBox(partialOut), lossOut = UncheckedBox(lossOut)
                Parallel.run(parts.count) { part in
                    var gradient = [Double](repeating: 0, count: width + 1)
                    var loss = 0.0
                    let block = 4096
                    var z = [Double](repeating: 0, count: block)
                    var start = parts[part].lowerBound
                    while start < parts[part].upperBound {
                        let end = min(start + block, parts[part].upperBound)
                        let count = end - start
                        for i in 0..<count { z[i] = weights[width] }
                        for f in 0..<width {
                            let w = weights[f]
                            if w == 0 { continue }
                            columns[f].withUnsafeBufferPointer { x in
                                for i in 0..<count { z[i] += w * Double(x[start + i]) }
                            }
                        }
                        // Residuals (dLoss/dz) replace z.
                        for i in 0..<count {
                            let y = labels[start + i], m = z[i]
                            switch objective {
                            case .binaryLogistic:
                                loss += (m > 0 ? m + Foundation.log1p(Foundation.exp(-m)) : Foundation.log1p(Foundation.exp(m))) - y * m
                                z[i] = 1 / (1 + Foundation.exp(-m)) - y
                            case .squaredError:
                                loss += 0.5 * (m - y) * (m - y)
                                z[i] = m - y
                            }
                        }
                        for f in 0..<width {
                            var dot = 0.0
                            columns[f].withUnsafeBufferPointer { x in
                                for i in 0..<count { dot += z[i] * Double(x[start + i]) }
                            }
                            gradient[f] += dot
                        }
                        for i in 0..<count { gradient[width] += z[i] }
                        start = end
                    }
                    partialOut.value[part] = gradient
                    lossOut.value[part] = loss
                }
            }
        }
        let n = Double(rowCount), lambda = parameters.lambda
        var gradient = [Double](repeating: 0, count: width + 1)
        var loss = 0.0
        for part in 0..<parts.count {
            loss += losses[part]
            for k in 0...width { gradient[k] += partials[part][k] }
        }
        var penalty = 0.0
        for f in 0..<width { penalty += weights[f] * weights[f] }
        for k in 0...width { gradient[k] /= n }
        for f in 0..<width { gradient[f] += lambda / n * weights[f] }
        return (loss / n + 0.5 * lambda / n * penalty, gradient)
    }

    /// One L-BFGS iteration (two-loop recursion, backtracking line search with the Armijo rule).
    func step() {
        if state.gradient.isEmpty {
            (state.value, state.gradient) = evaluate(state.weights)
            if maxAbs(state.gradient) <= parameters.tolerance {
                state.converged = true
                return
            }
        }
        let g = state.gradient
        // Two-loop recursion for the search direction d = -H g.
        var q = g
        let history = state.steps.count
        var alphas = [Double](repeating: 0, count: history)
        for k in stride(from: history - 1, through: 0, by: -1) {
            let rho = 1 / dot(state.changes[k], state.steps[k])
            alphas[k] = rho * dot(state.steps[k], q)
            axpy(-alphas[k], state.changes[k], &q)
        }
        if history > 0 {
            let last = history - 1
            let gammaScale = dot(state.steps[last], state.changes[last]) / dot(state.changes[last], state.changes[last])
            for k in 0..<q.count { q[k] *= gammaScale }
        } else {
            let norm = dot(g, g).squareRoot()
            for k in 0..<q.count { q[k] /= max(norm, 1) }
        }
        for k in 0..<history {
            let rho = 1 / dot(state.changes[k], state.steps[k])
            let beta = rho * dot(state.changes[k], q)
            axpy(alphas[k] - beta, state.steps[k], &q)
        }
        var direction = q.map { -$0 }
        var slope = dot(direction, g)
        if !(slope < 0) {  // not a descent direction: restart from steepest descent
            state.steps = []
            state.changes = []
            direction = g.map { -$0 / max(dot(g, g).squareRoot(), 1) }
            slope = dot(direction, g)
        }
        var stepSize = 1.0
        var candidate = state.weights, value = 0.0, gradient: [Double] = []
        for _ in 0..<50 {
            for k in 0..<candidate.count { candidate[k] = state.weights[k] + stepSize * direction[k] }
            (value, gradient) = evaluate(candidate)
            if value <= state.value + 1e-4 * stepSize * slope { break }
            stepSize *= 0.5
        }
        let s = zip(candidate, state.weights).map { $0 - $1 }
        let y = zip(gradient, g).map { $0 - $1 }
        if dot(s, y) > 1e-10 * dot(y, y) {
            state.steps.append(s)
            state.changes.append(y)
            if state.steps.count > Self.historySize {
                state.steps.removeFirst()
                state.changes.removeFirst()
            }
        }
        let previous = state.value
        state.weights = candidate
        state.value = value
        state.gradient = gradient
        state.iteration += 1
        let relativeDecrease = (previous - value) / max(abs(previous), abs(value), 1)
        if maxAbs(gradient) <= parameters.tolerance || relativeDecrease <= 64 * Double.ulpOfOne {
            state.converged = true
        }
    }

    /// The model in raw feature units, as XGBoost's `gblinear` stores it.
    var model: LinearModel {
        var weights: [Float] = []
        var bias = state.weights[featureCount]
        for f in 0..<featureCount {
            weights.append(Float(state.weights[f] / scales[f]))
            bias -= state.weights[f] * means[f] / scales[f]
        }
        let base: Float = parameters.objective == .binaryLogistic ? 0.5 : 0
        return LinearModel(
            objective: parameters.objective, baseScore: base, featureNames: featureNames, weights: weights,
            bias: Float(bias))
    }

    /// Mean loss of the current weights (without the penalty), for progress reports.
    var meanLoss: Double {
        let penalty = (0..<featureCount).reduce(0) { $0 + state.weights[$1] * state.weights[$1] }
        let value = state.value - 0.5 * parameters.lambda / Double(rowCount) * penalty
        return parameters.objective == .squaredError ? (2 * value).squareRoot() : value
    }

    private func dot(_ a: [Double], _ b: [Double]) -> Double {
        var total = 0.0
        for k in 0..<a.count { total += a[k] * b[k] }
        return total
    }

    private func axpy(_ alpha: Double, _ x: [Double], _ y: inout [Double]) {
        for k in 0..<x.count { y[k] += alpha * x[k] }
    }

    private func maxAbs(_ values: [Double]) -> Double { values.reduce(0) { max($0, abs($1)) } }
}
