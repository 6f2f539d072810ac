import Crypto
import Envelope
import Foundation
import Training

/// The enclave's data work with the real engines: Encryption SDK decryption with the released
/// data key, CSV parsing against the declared schema, the policy's join, training through
/// `Training.TrainingJob`, and one Encryption SDK message per granted artifact, encrypted with a
/// raw RSA keyring (OAEP-SHA256) to the recipient's result key.
public final class TrainingWorkload: EnclaveWorkload {
    private var admission: Admission?
    private var progress: @Sendable (ProgressEvent) -> Void = { _ in }
    private var job: TrainingJob?
    private var tables: [Table?] = []
    private var checkpoints: CheckpointSupport?
    /// Rounds or iterations between checkpoints, when the server stores them.
    let checkpointEvery: Int

    /// `checkpointEvery`: rounds (GBDT) or iterations (linear models) between checkpoints.
    public init(checkpointEvery: Int = 10) {
        self.checkpointEvery = max(checkpointEvery, 1)
    }

    public func useCheckpoints(_ support: CheckpointSupport) {
        checkpoints = support
    }

    public func prepare(admission: Admission, progress: @escaping @Sendable (ProgressEvent) -> Void) throws(EnclaveError) {
        self.admission = admission
        self.progress = progress
        tables = Array(repeating: nil, count: admission.datasets.count)
        job = try Self.trainingJob(policy: admission.policy, datasets: admission.datasets)
    }

    /// Refuses a policy whose training section the trainer does not accept (an unknown or
    /// out-of-range hyperparameter, an objective the algorithm lacks, …). The server runs this when a
    /// policy is proposed, so such a policy is refused then, not after every approval and a run.
    public static func checkTraining(_ policy: JobPolicy) throws(EnclaveError) {
        _ = try trainingJob(policy: policy, datasets: policy.datasets)
    }

    /// The trainer for `policy`, its datasets in stream order.
    static func trainingJob(policy: JobPolicy, datasets: [JobPolicy.Dataset]) throws(EnclaveError) -> TrainingJob {
        do {
            return try TrainingJob(spec: spec(policy: policy, datasets: datasets))
        } catch {
            throw EnclaveError(.policyInvalid, "the policy's training section cannot run: \(error)")
        }
    }

    /// The training description the policy makes, with one schema per dataset in stream order.
    static func spec(policy: JobPolicy, datasets: [JobPolicy.Dataset]) -> TrainingSpec {
        let algorithm: Algorithm =
            switch policy.training.algorithm {
            case .logisticRegression: .logistic
            case .linearRegression: .linear
            case .gradientBoostedTrees: .gbdt
            }
        var parameters: [String: String] = [:]
        for (key, value) in policy.training.hyperparameters ?? [:] {  // the trainer knows the policy's aliases
            switch value {
            case .number(let number):
                parameters[key] = number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
            case .string(let text): parameters[key] = text
            case .bool(let flag): parameters[key] = flag ? "1" : "0"
            }
        }
        if algorithm == .gbdt, let objective = policy.training.objective { parameters["objective"] = objective }
        let join: JoinSpec? =
            datasets.count < 2 ? nil : (policy.join.type == .inner ? .inner(key: policy.join.key ?? "") : .union)
        let schemas = datasets.map { dataset in
            TableSchema(
                columns: dataset.columns.map { column in
                    let type: ColumnType =
                        switch column.type {
                        case .float: .float
                        case .integer: .integer
                        case .boolean: .boolean
                        case .string: column.name == policy.join.key ? .id : .categorical
                        }
                    return TableSchema.ColumnRule(name: column.name, type: type, allowsMissing: column.isNullable)
                },
                minimumRows: policy.constraints.minRowsPerParty ?? 0)
        }
        return TrainingSpec(
            label: policy.training.label, features: policy.training.features, algorithm: algorithm,
            parameters: parameters, join: join, validationFraction: policy.training.validation.fraction,
            seed: policy.training.validation.seed, schemas: schemas)
    }

    public func beginDataset(index: Int, dataset: JobPolicy.Dataset, key: ReleasedDataKey, byteCount: UInt64)
        throws(EnclaveError)
        -> any DatasetIngest
    {
        guard let admission, let job else { throw EnclaveError(.internal, "the workload was not prepared") }
        progress(ProgressEvent(phase: "decrypting", iteration: UInt32(index + 1), total: UInt32(admission.datasets.count),
                               message: "dataset \(dataset.id)"))
        var csv = job.reader(forInput: index)
        csv.sizeHint = Int(clamping: byteCount)
        let reader = ReaderBox(csv)
        return EnvelopeDatasetIngest(
            dataset: dataset, key: key, approvals: admission.approvals,
            onPlaintext: { (bytes) throws(EnclaveError) in
                do {
                    try reader.reader.append(bytes)
                } catch {
                    throw Self.schemaError(error, dataset: dataset.id)
                }
            },
            onFinish: { [weak self] () throws(EnclaveError) in
                do {
                    self?.tables[index] = try reader.reader.finish()
                } catch {
                    throw Self.schemaError(error, dataset: dataset.id)
                }
            })
    }

    /// A CSV or schema failure, naming the dataset, column and rule (never a value).
    static func schemaError(_ error: any Error, dataset: String) -> EnclaveError {
        guard let error = error as? TrainingError else {
            return EnclaveError(.schemaViolation, "dataset \(dataset): the CSV could not be read")
        }
        if error.code == .notEnoughRows {
            return EnclaveError(.tooFewRows, "dataset \(dataset): \(error.message)")
        }
        return EnclaveError(.schemaViolation, "dataset \(dataset): \(error.message)")
    }

    public func run() async throws(EnclaveError) -> [OutputProducer] {
        guard let admission, let job else { throw EnclaveError(.internal, "the workload was not prepared") }
        var inputs = tables.compactMap { $0 }
        guard inputs.count == admission.datasets.count else { throw EnclaveError(.internal, "a dataset is missing") }
        let policy = admission.policy
        progress(ProgressEvent(phase: "joining"))
        let combined: Table
        do {
            combined = try Table.combine(inputs, job.spec.join)
        } catch {
            throw EnclaveError(.training, "the join failed: \(error)")
        }
        // Joined, the parsed tables are needed only for their row counts: they go before training
        // (a third of the enclave's memory at 1M joined rows).
        let rowCounts = inputs.map(\.rowCount)
        inputs = []
        tables = []
        if let minimum = policy.constraints.minJoinedRows, combined.rowCount < minimum {
            throw EnclaveError(
                .tooFewRows, "the joined table has \(combined.rowCount) rows; the policy requires at least \(minimum)")
        }
        var single = job.spec
        single.join = nil
        single.schemas = []
        let result = try train(single, combined)
        progress(ProgressEvent(phase: "encrypting"))
        return try outputProducers(result: result, combined: combined, rowCounts: rowCounts, admission: admission)
    }

    /// Trains on the joined table; with checkpoint support, hands out a sealed checkpoint every
    /// `checkpointEvery` rounds and resumes from the support's state (a state that does not fit
    /// this job is refused, reported, and training starts over).
    func train(_ spec: TrainingSpec, _ combined: Table) throws(EnclaveError) -> TrainingResult {
        let progress = self.progress
        let lastIteration = IterationBox()
        let handler: ProgressHandler = { event in
            if event.phase == .training { lastIteration.set(UInt32(clamping: event.iteration)) }
            progress(
                ProgressEvent(
                    phase: event.phase.rawValue, iteration: UInt32(clamping: event.iteration),
                    total: UInt32(clamping: event.totalIterations), loss: event.loss.flatMap { $0.isFinite ? $0 : nil }))
        }
        var control = TrainingControl()
        if let checkpoints {
            control = TrainingControl(
                checkpointEvery: checkpointEvery,
                onCheckpoint: { state in checkpoints.save(state, iteration: lastIteration.value) })
        }
        var resume = checkpoints?.resumeState
        if resume != nil, let iteration = checkpoints?.resumeIteration {
            progress(
                ProgressEvent(
                    phase: "resuming", iteration: iteration, message: "resuming from the checkpoint of iteration \(iteration)"))
        }
        while true {
            do {
                return try TrainingJob(spec: spec).run(tables: [combined], resumeFrom: resume, control: control, progress: handler)
            } catch let error as TrainingError where error.code == .invalidCheckpoint && resume != nil {
                resume = nil
                progress(ProgressEvent(phase: "checkpoint", message: "checkpoint refused: \(error.message); training starts over"))
            } catch {
                throw EnclaveError(.training, "training failed: \(error)")
            }
        }
    }

    /// The `metrics` document: the joined row count, the overall train/validation metrics and the
    /// per-party section.
    static func metricsJSON(_ result: TrainingResult, rows: Int, perParty: PerPartyMetrics) throws(EnclaveError)
        -> [UInt8]
    {
        struct Document: Encodable {
            var joinedRows: Int
            var metrics: TrainingMetrics
            var perParty: PerPartyMetrics
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        do {
            return Array(try encoder.encode(Document(joinedRows: rows, metrics: result.metrics, perParty: perParty)))
        } catch {
            throw EnclaveError(.output, "could not encode the metrics")
        }
    }

    /// Held-out metrics per party where that means something: for a `union` every row comes from
    /// one party, so each party's held-out rows are evaluated apart (suppressed below the policy's
    /// minimum rows per party, or its minimum joined rows when it names none); for an `inner` join
    /// every joined row combines all parties' data, so there is no per-party figure to give.
    /// `rowCounts`: each dataset's rows, in stream order.
    static func perPartyMetrics(_ result: TrainingResult, admission: Admission, rowCounts: [Int]) -> PerPartyMetrics {
        let policy = admission.policy
        let constraints = policy.constraints
        let minimum = max(constraints.minRowsPerParty ?? constraints.minJoinedRows ?? 1, 1)
        if policy.join.type == .inner && admission.datasets.count > 1 {
            return PerPartyMetrics(
                join: "inner", minimumRows: minimum, parties: [],
                note: "inner join: every joined row combines the data of all parties, so no row belongs to one party "
                    + "and the overall figures are the only meaningful ones")
        }
        var owners: [String] = []
        var ranges: [String: [Range<Int>]] = [:]
        var offset = 0
        for (index, dataset) in admission.datasets.enumerated() {
            let count = index < rowCounts.count ? rowCounts[index] : 0
            if ranges[dataset.owner] == nil { owners.append(dataset.owner) }
            ranges[dataset.owner, default: []].append(offset..<offset + count)
            offset += count
        }
        if owners.count < 2 {
            return PerPartyMetrics(
                join: policy.join.type.rawValue, minimumRows: minimum, parties: [],
                note: "one party's data: its figures are the overall ones")
        }
        let groups = owners.map { (name: $0, rows: ranges[$0] ?? []) }
        return PerPartyMetrics(
            join: policy.join.type.rawValue, minimumRows: minimum,
            parties: GroupMetrics.validation(of: result, groups: groups, minimumRows: minimum),
            note: "held-out rows of each party's own data, evaluated apart")
    }
}

/// The per-party part of the `metrics` document.
struct PerPartyMetrics: Encodable, Equatable {
    /// `union` or `inner`.
    var join: String
    /// The fewest held-out rows a per-party figure is computed over.
    var minimumRows: Int
    /// One entry per party (empty when per-party figures are not meaningful).
    var parties: [GroupMetrics]
    /// What the figures are, or why there are none.
    var note: String
}

/// The last training iteration reported (progress comes before each checkpoint).
final class IterationBox: @unchecked Sendable {
    private let lock = NSLock()
    private var current: UInt32 = 0
    var value: UInt32 { lock.withLock { current } }
    func set(_ value: UInt32) { lock.withLock { current = value } }
}

/// Holds a CSV reader (a value type) for the ingest closures.
final class ReaderBox {
    var reader: CSVTableReader
    init(_ reader: CSVTableReader) { self.reader = reader }
}
