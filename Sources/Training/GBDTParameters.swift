/// Parameters of gradient-boosted trees, named and defaulted as XGBoost's (`tree_method="hist"`).
public struct GBDTParameters: Sendable, Equatable, Codable {
    public var objective: Objective = .binaryLogistic
    /// Boosting rounds (`num_round`).
    public var numRound = 100
    public var maxDepth = 6
    /// Learning rate (`eta`).
    public var eta = 0.3
    /// L2 regularisation on leaf weights (`lambda`).
    public var lambda = 1.0
    /// Minimum loss reduction to make a split (`gamma`).
    public var gamma = 0.0
    public var minChildWeight = 1.0
    public var subsample = 1.0
    public var colsampleBytree = 1.0
    /// Bins per feature including the missing-value bin (`max_bin`, at most 256).
    public var maxBin = 256
    /// The starting prediction; estimated from the labels (their mean) when nil.
    public var baseScore: Double? = nil

    public init() {}

    /// Parameters from XGBoost-style `KEY=VALUE` settings; unknown keys and bad values are errors.
    public init(_ settings: [String: String], objective: Objective) throws {
        self.init()
        self.objective = objective
        var reader = ParameterReader(settings)
        numRound = try reader.int("num_round", default: numRound, in: 1...100_000, aliases: ["num_rounds"])
        maxDepth = try reader.int("max_depth", default: maxDepth, in: 1...16)
        eta = try reader.double("eta", default: eta, in: 0...1, aliases: ["learning_rate"])
        lambda = try reader.double("lambda", default: lambda, in: 0...1e9, aliases: ["reg_lambda"])
        gamma = try reader.double("gamma", default: gamma, in: 0...1e9, aliases: ["min_split_loss"])
        minChildWeight = try reader.double("min_child_weight", default: minChildWeight, in: 0...1e9)
        subsample = try reader.double("subsample", default: subsample, in: 1e-6...1)
        colsampleBytree = try reader.double("colsample_bytree", default: colsampleBytree, in: 1e-6...1)
        maxBin = try reader.int("max_bin", default: maxBin, in: 3...256)
        if let text = try reader.take("base_score") {
            guard let value = Double(text), value.isFinite else {
                throw TrainingError(.invalidParameter, "parameter 'base_score' must be a number")
            }
            if objective == .binaryLogistic, !(value > 0 && value < 1) {
                throw TrainingError(.invalidParameter, "parameter 'base_score' must be in (0, 1) for binary:logistic")
            }
            baseScore = value
        }
        try reader.finish()
    }
}

/// Parameters of the linear models.
public struct LinearParameters: Sendable, Equatable, Codable {
    public var objective: Objective = .binaryLogistic
    /// L2 penalty on the weights of standardised features (`lambda`, as scikit-learn's `1/C`).
    public var lambda = 1.0
    /// L-BFGS iterations (`max_iter`).
    public var maxIterations = 100
    /// Stop when the largest gradient component is at most `tol` (scikit-learn's `tol`).
    public var tolerance = 1e-4

    public init() {}

    public init(_ settings: [String: String], objective: Objective) throws {
        self.init()
        self.objective = objective
        var reader = ParameterReader(settings)
        lambda = try reader.double("lambda", default: lambda, in: 0...1e9, aliases: ["reg_lambda"])
        maxIterations = try reader.int("max_iter", default: maxIterations, in: 1...100_000, aliases: ["iterations"])
        tolerance = try reader.double("tol", default: tolerance, in: 0...1)
        try reader.finish()
    }
}

/// Takes parameters out of a settings dictionary, so that leftovers can be reported as unknown.
struct ParameterReader {
    private var settings: [String: String]

    init(_ settings: [String: String]) { self.settings = settings }

    /// The value of `name` or of one of its aliases; the same parameter given under two names is an error.
    mutating func take(_ name: String, aliases: [String] = []) throws -> String? {
        let given = ([name] + aliases).filter { settings[$0] != nil }
        guard given.count <= 1 else {
            throw TrainingError(.invalidParameter, "parameter '\(name)' is given twice, as \(given.map { "'\($0)'" }.joined(separator: " and "))")
        }
        return given.first.flatMap { settings.removeValue(forKey: $0) }
    }

    mutating func int(_ name: String, default value: Int, in range: ClosedRange<Int>, aliases: [String] = []) throws -> Int {
        guard let text = try take(name, aliases: aliases) else { return value }
        guard let parsed = Int(text), range.contains(parsed) else {
            throw TrainingError(
                .invalidParameter, "parameter '\(name)' must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return parsed
    }

    mutating func double(
        _ name: String, default value: Double, in range: ClosedRange<Double>, aliases: [String] = []
    ) throws -> Double {
        guard let text = try take(name, aliases: aliases) else { return value }
        guard let parsed = Double(text), parsed.isFinite, range.contains(parsed) else {
            throw TrainingError(.invalidParameter, "parameter '\(name)' must be a number in [\(range.lowerBound), \(range.upperBound)]")
        }
        return parsed
    }

    func finish() throws {
        if let unknown = settings.keys.sorted().first {
            throw TrainingError(.invalidParameter, "unknown parameter '\(unknown)'")
        }
    }
}
