/// A progress event of a training job, for the CLI and the enclave's progress messages.
/// It carries counts and losses only, never row values.
public struct TrainingProgress: Sendable, Equatable {
    /// The stage a job is in.
    public enum Phase: String, Sendable {
        case reading, joining, validating, splitting, binning, standardising, training, evaluating, exporting, done
    }

    public var phase: Phase
    /// The boosting round or optimiser iteration just finished (1-based; 0 outside training).
    public var iteration: Int
    /// The planned number of rounds or the iteration limit.
    public var totalIterations: Int
    /// The training loss after `iteration` (mean log-loss, or RMSE), when computed: every
    /// iteration for linear models, every tenth round and the last for GBDT.
    public var loss: Double?
    /// The validation loss after `iteration`, if there is a validation set.
    public var validationLoss: Double?

    public init(
        phase: Phase, iteration: Int = 0, totalIterations: Int = 0, loss: Double? = nil, validationLoss: Double? = nil
    ) {
        self.phase = phase
        self.iteration = iteration
        self.totalIterations = totalIterations
        self.loss = loss
        self.validationLoss = validationLoss
    }
}

/// Receives progress events; called on the training thread.
public typealias ProgressHandler = @Sendable (TrainingProgress) -> Void
