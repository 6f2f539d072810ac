/// A declared schema: the columns a dataset must have, their types and whether they may be missing.
///
/// The CSV reader enforces types while parsing; `validate(_:)` checks the rest. Errors name the
/// column and the rule that failed, never a value.
public struct TableSchema: Sendable, Codable, Equatable {
    /// One declared column.
    public struct ColumnRule: Sendable, Codable, Equatable {
        public var name: String
        public var type: ColumnType
        /// Whether missing cells are allowed.
        public var allowsMissing: Bool

        public init(name: String, type: ColumnType, allowsMissing: Bool = true) {
            self.name = name
            self.type = type
            self.allowsMissing = allowsMissing
        }
    }

    public var columns: [ColumnRule]
    /// The fewest rows the table may have.
    public var minimumRows: Int
    /// Whether columns not declared here are an error.
    public var allowsExtraColumns: Bool

    public init(columns: [ColumnRule], minimumRows: Int = 0, allowsExtraColumns: Bool = false) {
        self.columns = columns
        self.minimumRows = minimumRows
        self.allowsExtraColumns = allowsExtraColumns
    }

    /// Why an undeclared header cell fails (named by position, never by its text).
    static let undeclared = "its name is not in the schema"

    /// The declared type of a column, if any.
    public func type(of name: String) -> ColumnType? { columns.first { $0.name == name }?.type }

    /// Checks a table against every rule; throws the first failure. The columns named in
    /// `knownComplete` are known to hold no missing value (the CSV reader saw none while parsing),
    /// so they are not scanned for one.
    func validate(_ table: Table, knownComplete: Set<String> = []) throws {
        for rule in columns {
            guard let column = table.columns.first(where: { $0.name == rule.name }) else {
                throw TrainingError(.schemaViolation, "column '\(rule.name)' fails rule 'present': it is missing")
            }
            guard column.type == rule.type || (rule.type == .boolean && column.type == .integer) else {
                throw TrainingError(
                    .schemaViolation, "column '\(rule.name)' fails rule 'type \(rule.type.rawValue)'")
            }
            if !rule.allowsMissing, !knownComplete.contains(rule.name), column.hasMissing {
                throw TrainingError(
                    .schemaViolation, "column '\(rule.name)' fails rule 'no missing values'")
            }
        }
        if !allowsExtraColumns {
            // By position: an undeclared header cell may be data (a file uploaded without its header).
            for (position, column) in table.columns.enumerated() where !columns.contains(where: { $0.name == column.name }) {
                throw TrainingError(.schemaViolation, "header field \(position + 1) fails rule 'declared': \(Self.undeclared)")
            }
        }
        if table.rowCount < minimumRows {
            throw TrainingError(
                .notEnoughRows, "table fails rule 'at least \(minimumRows) rows': it has \(table.rowCount)")
        }
    }
}
