/// An error from the training engine: a stable code for programs and a message for people.
///
/// Messages name columns, rules, rows and parameters — never a cell value, because the data
/// belongs to parties who may not see each other's rows.
public struct TrainingError: Error, Equatable, CustomStringConvertible, Sendable {
    /// What kind of rule failed; tests and callers compare these.
    public enum Code: String, Sendable {
        /// The CSV bytes are malformed (quoting, column count, limits).
        case malformedCSV = "malformed_csv"
        /// A column breaks the declared schema (type, missing values, row counts).
        case schemaViolation = "schema_violation"
        /// A named column does not exist, or exists twice.
        case unknownColumn = "unknown_column"
        /// A join cannot be carried out (schemas differ, key type, empty result).
        case joinFailed = "join_failed"
        /// A training parameter is unknown or out of range.
        case invalidParameter = "invalid_parameter"
        /// The label cannot be used with the objective (e.g. not 0/1 for logistic).
        case invalidLabel = "invalid_label"
        /// A model document (XGBoost JSON) cannot be read.
        case invalidModel = "invalid_model"
        /// A checkpoint cannot be read or does not belong to this job.
        case invalidCheckpoint = "invalid_checkpoint"
        /// Not enough rows to train or validate.
        case notEnoughRows = "not_enough_rows"
        /// The caller asked the job to stop; a checkpoint was handed out first.
        case interrupted = "interrupted"
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
