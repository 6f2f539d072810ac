/// A columnar table: named, typed columns of equal length.
///
/// Built from CSV by `CSVTableReader`, combined with `union(_:)` and `innerJoin(_:_:on:)`.
public struct Table: Sendable {
    public let columns: [Column]
    public let rowCount: Int

    /// A table from columns, which must have distinct names and equal lengths.
    public init(columns: [Column]) throws {
        var seen = Set<String>()
        for column in columns where !seen.insert(column.name).inserted {
            throw TrainingError(.unknownColumn, "column '\(column.name)' appears more than once")
        }
        let count = columns.first?.count ?? 0
        for column in columns where column.count != count {
            throw TrainingError(.schemaViolation, "column '\(column.name)' has a different number of rows")
        }
        self.columns = columns
        self.rowCount = count
    }

    public var columnNames: [String] { columns.map(\.name) }

    /// The column named `name`, or an `unknownColumn` error.
    public func column(named name: String) throws -> Column {
        guard let column = columns.first(where: { $0.name == name }) else {
            throw TrainingError(.unknownColumn, "no column named '\(name)'")
        }
        return column
    }

    /// The rows at `rows`, in that order.
    public func gather(_ rows: [Int]) -> Table {
        // Lengths stay equal and names distinct, so this cannot fail.
        try! Table(columns: columns.map { $0.gather(rows) })
    }
}
