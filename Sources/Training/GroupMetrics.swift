/// Held-out metrics of one group of rows of the combined table (for a `union`, one party's rows),
/// or the reason no figures are given.
///
/// A figure over a small group leaks about that group's rows, so a group with fewer held-out rows
/// than the minimum gets none — and then no group gets any, because the overall figures minus the
/// figures of the groups shown would give the hidden group's figures back.
public struct GroupMetrics: Sendable, Equatable, Codable {
    /// The group's name (a party id).
    public var group: String
    /// Rows of the group in the combined table.
    public var rows: Int
    /// Rows of the group held out for validation.
    public var validationRows: Int
    /// Metrics of the model on the group's held-out rows; nil when suppressed.
    public var validation: MetricSet?
    /// Why `validation` is nil.
    public var suppressed: String?

    public init(group: String, rows: Int, validationRows: Int, validation: MetricSet?, suppressed: String?) {
        self.group = group
        self.rows = rows
        self.validationRows = validationRows
        self.validation = validation
        self.suppressed = suppressed
    }

    /// Held-out metrics per group. `groups` names the rows of each group as ranges of the
    /// combined table (rows in no group are ignored); `minimumRows` is the smallest number of
    /// held-out rows a figure may be computed over (at least 1).
    public static func validation(
        of result: TrainingResult, groups: [(name: String, rows: [Range<Int>])], minimumRows: Int
    ) -> [GroupMetrics] {
        let minimum = max(minimumRows, 1)
        let objective = Objective(rawValue: result.metrics.objective) ?? .binaryLogistic
        var out: [GroupMetrics] = []
        for group in groups {
            var labels: [Double] = [], predictions: [Double] = []
            var rows = 0
            for range in group.rows {
                let clamped = range.clamped(to: 0..<result.scores.count)
                rows += clamped.count
                for row in clamped where result.isValidation[row] {
                    labels.append(result.labels[row])
                    predictions.append(result.scores[row])
                }
            }
            if labels.count < minimum {
                out.append(
                    GroupMetrics(
                        group: group.name, rows: rows, validationRows: labels.count, validation: nil,
                        suppressed: "\(labels.count) held-out rows; figures need at least \(minimum)"))
            } else {
                out.append(
                    GroupMetrics(
                        group: group.name, rows: rows, validationRows: labels.count,
                        validation: MetricSet(objective: objective, labels: labels, predictions: predictions),
                        suppressed: nil))
            }
        }
        if out.contains(where: { $0.validation == nil }) {
            for index in out.indices where out[index].validation != nil {
                out[index].validation = nil
                out[index].suppressed =
                    "withheld because another group's figures are suppressed (they could be derived from the overall "
                    + "figures)"
            }
        }
        return out
    }
}
