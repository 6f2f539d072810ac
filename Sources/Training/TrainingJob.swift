import Foundation

/// Metrics of a model on one set of rows.
public struct MetricSet: Sendable, Equatable, Codable {
    public var rows: Int
    public var auc: Double?
    public var logLoss: Double?
    public var accuracy: Double?
    public var rmse: Double?

    /// Metrics of predictions against labels for an objective.
    public init(objective: Objective, labels: [Double], predictions: [Double]) {
        rows = labels.count
        switch objective {
        case .binaryLogistic:
            auc = Metrics.auc(labels: labels, scores: predictions)
            logLoss = Metrics.logLoss(labels: labels, probabilities: predictions)
            accuracy = Metrics.accuracy(labels: labels, probabilities: predictions)
            if auc?.isNaN == true { auc = nil }
        case .squaredError:
            rmse = Metrics.rmse(labels: labels, predictions: predictions)
        }
    }
}

/// What a job reports: sizes, iterations and metrics (no row values).
public struct TrainingMetrics: Sendable, Equatable, Codable {
    public var algorithm: String
    public var objective: String
    public var features: [String]
    public var iterations: Int
    public var train: MetricSet
    public var validation: MetricSet?
    /// Wall-clock seconds of the stages: `prepare` (join, features, split), `fit` (binning or
    /// standardisation, and training), `evaluate` (predictions and metrics).
    public var seconds: [String: Double]
}

/// The outcome of a training job.
public struct TrainingResult: Sendable {
    public let model: Model
    /// The model in XGBoost's JSON format.
    public let modelJSON: Data
    public let metrics: TrainingMetrics
    /// The model's prediction for every row of the combined table, in table order.
    public let scores: [Double]
    /// Whether each row of the combined table was held out for validation.
    public let isValidation: [Bool]
    /// The label of every row of the combined table (0/1 for binary objectives), in table order.
    public let labels: [Double]
}

/// Checkpointing and stopping of a running job.
public struct TrainingControl: Sendable {
    /// Hand out a checkpoint after every this many rounds or iterations (0: never).
    public var checkpointEvery: Int
    /// Receives checkpoints (bytes to be stored, e.g. encrypted, by the caller).
    public var onCheckpoint: (@Sendable ([UInt8]) -> Void)?
    /// Asked after every round; when it returns true the job hands out a checkpoint and throws
    /// `TrainingError.Code.interrupted`.
    public var shouldStop: (@Sendable () -> Bool)?

    public init(
        checkpointEvery: Int = 0, onCheckpoint: (@Sendable ([UInt8]) -> Void)? = nil,
        shouldStop: (@Sendable () -> Bool)? = nil
    ) {
        self.checkpointEvery = checkpointEvery
        self.onCheckpoint = onCheckpoint
        self.shouldStop = shouldStop
    }
}

/// A training job: CSV inputs → combined table → features → seeded split → model → metrics, scores
/// and an XGBoost JSON model. `cleanroom train` and the enclave run exactly this code.
public struct TrainingJob: Sendable {
    public let spec: TrainingSpec

    public init(spec: TrainingSpec) throws {
        try spec.validate()
        self.spec = spec
    }

    /// A CSV reader for input `index`, typed by that input's schema; the inner-join key is read
    /// as an id column. Feed it chunks as they arrive, then pass its table to `run(tables:)`.
    public func reader(forInput index: Int, limits: CSVLimits = CSVLimits()) -> CSVTableReader {
        let schema = index < spec.schemas.count ? spec.schemas[index] : nil
        var overrides: [String: ColumnType] = [:]
        if case .inner(let key)? = spec.join {
            let declared = schema?.type(of: key)
            overrides[key] = declared == .integer || declared == .categorical ? declared! : .id
        }
        return CSVTableReader(schema: schema, typeOverrides: overrides, limits: limits)
    }

    /// Runs the job on whole CSV documents (one per input).
    public func run(
        csv inputs: [Data], resumeFrom checkpoint: [UInt8]? = nil, control: TrainingControl = TrainingControl(),
        progress: ProgressHandler? = nil
    ) throws -> TrainingResult {
        progress?(TrainingProgress(phase: .reading))
        var tables: [Table] = []
        for (index, input) in inputs.enumerated() {
            var reader = reader(forInput: index)
            try reader.append(input)
            tables.append(try reader.finish())
        }
        return try run(tables: tables, resumeFrom: checkpoint, control: control, progress: progress)
    }

    /// Runs the job on tables already read.
    public func run(
        tables: [Table], resumeFrom checkpoint: [UInt8]? = nil, control: TrainingControl = TrainingControl(),
        progress: ProgressHandler? = nil
    ) throws -> TrainingResult {
        let clock = ContinuousClock()
        var started = clock.now
        var seconds: [String: Double] = [:]
        func lap(_ name: String) {
            let now = clock.now
            let elapsed = started.duration(to: now).components
            seconds[name] = Double(elapsed.seconds) + Double(elapsed.attoseconds) * 1e-18
            started = now
        }
        if tables.count > 1 { progress?(TrainingProgress(phase: .joining)) }
        let table = try Table.combine(tables, spec.join)
        progress?(TrainingProgress(phase: .validating))
        let dataset = try Dataset(table: table, label: spec.label, features: spec.features)
        progress?(TrainingProgress(phase: .splitting))
        let split = try DataSplit(rowCount: dataset.rowCount, validationFraction: spec.validationFraction, seed: spec.seed)
        guard split.trainRows.count >= 2 else { throw TrainingError(.notEnoughRows, "fewer than 2 training rows") }
        let objective = try spec.objective()
        var settings = spec.parameters
        settings.removeValue(forKey: "objective")
        let fingerprint = Checkpoint.fingerprint(
            [spec.algorithm.rawValue, objective.rawValue, dataset.featureNames.joined(separator: "\u{1}"),
             settings.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{1}"),
             "\(dataset.rowCount)", "\(split.trainRows.count)", "\(spec.seed)"].joined(separator: "\u{0}"))
        let model: Model
        let iterations: Int
        lap("prepare")
        switch spec.algorithm {
        case .gbdt:
            let parameters = try GBDTParameters(settings, objective: objective)
            let trainer = try GBDTTrainer(
                parameters: parameters, dataset: dataset, trainRows: split.trainRows,
                validationRows: split.validationRows, seed: spec.seed, progress: progress)
            if let checkpoint {
                guard case .trees(let trees) = try Checkpoint.decode(checkpoint, fingerprint: fingerprint),
                    trees.count <= parameters.numRound
                else { throw TrainingError(.invalidCheckpoint, "checkpoint is not of this algorithm") }
                try trainer.restore(trees: trees)
            }
            while trainer.trees.count < parameters.numRound {
                let (loss, validationLoss) = trainer.boostOneRound()
                let round = trainer.trees.count
                progress?(TrainingProgress(phase: .training, iteration: round, totalIterations: parameters.numRound,
                                           loss: loss, validationLoss: validationLoss))
                let stop = round < parameters.numRound && control.shouldStop?() == true
                if let onCheckpoint = control.onCheckpoint,
                    stop || (control.checkpointEvery > 0 && round % control.checkpointEvery == 0)
                {
                    onCheckpoint(Checkpoint.encode(.trees(trainer.trees), fingerprint: fingerprint))
                }
                if stop { throw TrainingError(.interrupted, "stopped after round \(round)") }
            }
            model = .trees(trainer.model)
            iterations = trainer.trees.count
        case .logistic, .linear:
            let parameters = try LinearParameters(settings, objective: objective)
            progress?(TrainingProgress(phase: .standardising))
            let trainer = try LinearTrainer(parameters: parameters, dataset: dataset, trainRows: split.trainRows)
            if let checkpoint {
                guard case .linear(let state) = try Checkpoint.decode(checkpoint, fingerprint: fingerprint) else {
                    throw TrainingError(.invalidCheckpoint, "checkpoint is not of this algorithm")
                }
                try trainer.restore(state)
            }
            while !trainer.isDone {
                trainer.step()
                let iteration = trainer.state.iteration
                progress?(TrainingProgress(phase: .training, iteration: iteration,
                                           totalIterations: parameters.maxIterations, loss: trainer.meanLoss))
                let stop = !trainer.isDone && control.shouldStop?() == true
                if let onCheckpoint = control.onCheckpoint,
                    stop || (control.checkpointEvery > 0 && iteration % control.checkpointEvery == 0)
                {
                    onCheckpoint(Checkpoint.encode(.linear(trainer.state), fingerprint: fingerprint))
                }
                if stop { throw TrainingError(.interrupted, "stopped after iteration \(iteration)") }
            }
            model = .linear(trainer.model)
            iterations = trainer.state.iteration
        }
        lap("fit")
        progress?(TrainingProgress(phase: .evaluating))
        let scores = model.predict(dataset)
        var isValidation = [Bool](repeating: false, count: dataset.rowCount)
        for row in split.validationRows { isValidation[row] = true }
        // The two sets at once (each sorts its scores for the AUC).
        var sets = [MetricSet?](repeating: nil, count: 2)
        sets.withUnsafeMutableBufferPointer { out in
            let out = UncheckedBox(out)
            Parallel.run(2) { part in
                let rows = part == 0 ? split.trainRows : split.validationRows
                guard part == 0 || !rows.isEmpty else { return }
                out.value[part] = MetricSet(
                    objective: objective, labels: rows.map { dataset.labels[$0] }, predictions: rows.map { scores[$0] })
            }
        }
        let train = sets[0]!, validation = sets[1]
        lap("evaluate")
        progress?(TrainingProgress(phase: .exporting))
        let metrics = TrainingMetrics(
            algorithm: spec.algorithm.rawValue, objective: objective.rawValue, features: dataset.featureNames,
            iterations: iterations, train: train, validation: validation, seconds: seconds)
        let json = model.xgboostJSON()
        progress?(TrainingProgress(phase: .done, iteration: iterations, totalIterations: iterations))
        return TrainingResult(model: model, modelJSON: json, metrics: metrics, scores: scores, isValidation: isValidation,
                              labels: dataset.labels)
    }
}
