/// The training algorithm of a job.
public enum Algorithm: String, Sendable, Codable, CaseIterable {
    /// L2-regularised logistic regression (exported as `gblinear`, `binary:logistic`).
    case logistic
    /// L2-regularised linear regression (exported as `gblinear`, `reg:squarederror`).
    case linear
    /// Histogram gradient-boosted trees (exported as `gbtree`); objective from the `objective`
    /// parameter, `binary:logistic` by default.
    case gbdt
}

/// What to train: the same description drives `cleanroom train` and the enclave.
public struct TrainingSpec: Sendable, Equatable {
    public var label: String
    /// Feature columns; nil means every column except the label and id columns.
    public var features: [String]?
    public var algorithm: Algorithm
    /// XGBoost-named parameters (`num_round`, `max_depth`, `eta`, `lambda`, `max_iter`, `tol`, …).
    public var parameters: [String: String]
    /// How several inputs are combined; nil for a single input.
    public var join: JoinSpec?
    /// Share of rows held out for validation (0 for none).
    public var validationFraction: Double
    public var seed: UInt64
    /// Declared schema per input (by position); inputs without one have their types inferred.
    public var schemas: [TableSchema]

    public init(
        label: String, features: [String]? = nil, algorithm: Algorithm, parameters: [String: String] = [:],
        join: JoinSpec? = nil, validationFraction: Double = 0.2, seed: UInt64 = 0, schemas: [TableSchema] = []
    ) {
        self.label = label
        self.features = features
        self.algorithm = algorithm
        self.parameters = parameters
        self.join = join
        self.validationFraction = validationFraction
        self.seed = seed
        self.schemas = schemas
    }

    /// The objective the algorithm and parameters select.
    public func objective() throws -> Objective {
        switch algorithm {
        case .logistic: return .binaryLogistic
        case .linear: return .squaredError
        case .gbdt:
            guard let name = parameters["objective"] else { return .binaryLogistic }
            guard let objective = Objective(rawValue: name) else {
                throw TrainingError(.invalidParameter, "parameter 'objective' must be binary:logistic or reg:squarederror")
            }
            return objective
        }
    }

    /// Checks the parameters without any data (unknown names, ranges).
    public func validate() throws {
        let objective = try objective()
        var settings = parameters
        settings.removeValue(forKey: "objective")
        if algorithm != .gbdt, parameters["objective"] != nil {
            throw TrainingError(.invalidParameter, "parameter 'objective' applies to gbdt only")
        }
        switch algorithm {
        case .gbdt: _ = try GBDTParameters(settings, objective: objective)
        case .logistic, .linear: _ = try LinearParameters(settings, objective: objective)
        }
        guard validationFraction >= 0, validationFraction < 1 else {
            throw TrainingError(.invalidParameter, "validation fraction must be in [0, 1)")
        }
        if label.isEmpty { throw TrainingError(.unknownColumn, "no label column") }
    }
}
