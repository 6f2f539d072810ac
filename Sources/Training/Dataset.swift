/// Features and labels ready for training: column-major 32-bit floats (NaN is missing), the
/// precision XGBoost uses, so that exported split thresholds route rows exactly as here.
///
/// Categorical features enter as their level codes (an ordinal encoding); id columns are never
/// features.
public struct Dataset: Sendable {
    public let featureNames: [String]
    /// One array per feature, `rowCount` long.
    public let columns: [[Float]]
    public let labels: [Double]

    public var rowCount: Int { labels.count }
    public var featureCount: Int { columns.count }

    public init(featureNames: [String], columns: [[Float]], labels: [Double]) {
        precondition(featureNames.count == columns.count)
        precondition(columns.allSatisfy { $0.count == labels.count })
        self.featureNames = featureNames
        self.columns = columns
        self.labels = labels
    }

    /// Takes `label` and `features` (default: every other non-id column) from a table.
    public init(table: Table, label: String, features: [String]? = nil) throws {
        let labelColumn = try table.column(named: label)
        guard labelColumn.type != .id else {
            throw TrainingError(.invalidLabel, "label column '\(label)' is an id column")
        }
        let names = features ?? table.columns.filter { $0.name != label && $0.type != .id }.map(\.name)
        guard !names.isEmpty else { throw TrainingError(.unknownColumn, "no feature columns") }
        var columns: [[Float]] = []
        for name in names {
            if name == label { throw TrainingError(.unknownColumn, "column '\(name)' is both label and feature") }
            let column = try table.column(named: name)
            if column.type == .id {
                throw TrainingError(.schemaViolation, "column '\(name)' fails rule 'features are not id columns'")
            }
            columns.append(column.floatValues())
        }
        let labels: [Double]
        if case .strings(let codes, let levels) = labelColumn.storage {
            // A two-level text label: the levels in sorted order are 0 and 1.
            guard levels.count == 2 else {
                throw TrainingError(.invalidLabel, "text label column '\(label)' must have exactly two values")
            }
            let positive: Int32 = levels[0] < levels[1] ? 1 : 0
            labels = codes.map { $0 < 0 ? .nan : ($0 == positive ? 1 : 0) }
        } else {
            labels = labelColumn.doubleValues()
        }
        if labels.contains(where: { $0.isNaN }) {
            throw TrainingError(.schemaViolation, "label column '\(label)' fails rule 'no missing values'")
        }
        self.init(featureNames: names, columns: columns, labels: labels)
    }

    /// The rows at `rows`, in that order.
    public func rows(_ rows: [Int]) -> Dataset {
        Dataset(
            featureNames: featureNames, columns: columns.map { column in rows.map { column[$0] } },
            labels: rows.map { labels[$0] })
    }
}
