/// How the tables of a job are combined into one.
public enum JoinSpec: Sendable, Equatable {
    /// Stack tables with the same columns (names and types) one after another.
    case union
    /// Keep rows whose key appears in both tables (hash join; every matching pair is kept).
    case inner(key: String)

    /// Parses `union` or `inner:KEY` (the `--join` syntax of `cleanroom train`).
    public init(parsing text: String) throws {
        if text == "union" {
            self = .union
        } else if text.hasPrefix("inner:"), text.count > 6 {
            self = .inner(key: String(text.dropFirst(6)))
        } else {
            throw TrainingError(.invalidParameter, "join must be 'union' or 'inner:KEY_COLUMN'")
        }
    }
}

extension Table {
    /// Stacks tables with the same column names and types (column order follows the first table).
    public static func union(_ tables: [Table]) throws -> Table {
        guard let first = tables.first else { throw TrainingError(.joinFailed, "union of no tables") }
        if tables.count == 1 { return first }
        var columns: [Column] = []
        for column in first.columns {
            var parts: [Column] = []
            for (index, table) in tables.enumerated() {
                guard let other = table.columns.first(where: { $0.name == column.name }) else {
                    throw TrainingError(.joinFailed, "union: table \(index + 1) has no column '\(column.name)'")
                }
                guard other.type == column.type else {
                    throw TrainingError(
                        .joinFailed,
                        "union: column '\(column.name)' is \(other.type.rawValue) in table \(index + 1) "
                            + "but \(column.type.rawValue) in table 1")
                }
                parts.append(other)
            }
            columns.append(Column.concatenate(parts))
        }
        for (index, table) in tables.enumerated() where table.columns.count != first.columns.count {
            throw TrainingError(.joinFailed, "union: table \(index + 1) has a different number of columns")
        }
        return try Table(columns: columns)
    }

    /// Inner hash join on `key` (an id, categorical or integer column in both tables).
    /// The key column appears once; other column names must not clash.
    public static func innerJoin(_ left: Table, _ right: Table, on key: String) throws -> Table {
        let leftKey = try left.column(named: key), rightKey = try right.column(named: key)
        for column in [leftKey, rightKey] where column.type == .float {
            throw TrainingError(.joinFailed, "join key '\(key)' must be an id, categorical or integer column")
        }
        for column in right.columns where column.name != key && left.columns.contains(where: { $0.name == column.name }) {
            throw TrainingError(.joinFailed, "column '\(column.name)' appears in both tables of the join")
        }
        // Build side: the right table's rows grouped by key (CSR layout).
        var keyIndex: [String: Int] = [:]
        var groupOf = [Int](repeating: -1, count: right.rowCount)
        var groupCount = 0
        for row in 0..<right.rowCount {
            guard let value = rightKey.keyString(row) else { continue }
            if let group = keyIndex[value] {
                groupOf[row] = group
            } else {
                keyIndex[value] = groupCount
                groupOf[row] = groupCount
                groupCount += 1
            }
        }
        var start = [Int](repeating: 0, count: groupCount + 1)
        for group in groupOf where group >= 0 { start[group + 1] += 1 }
        for g in 0..<groupCount { start[g + 1] += start[g] }
        var fill = start
        var members = [Int](repeating: 0, count: start[groupCount])
        for row in 0..<right.rowCount where groupOf[row] >= 0 {
            members[fill[groupOf[row]]] = row
            fill[groupOf[row]] += 1
        }
        // Probe side: each left row, with a per-level cache for string keys.
        var leftRows: [Int] = [], rightRows: [Int] = []
        var levelGroup: [Int]? = nil
        if case .strings(_, let levels) = leftKey.storage {
            levelGroup = levels.map { keyIndex[$0] ?? -1 }
        }
        for row in 0..<left.rowCount {
            let group: Int
            if let levelGroup, case .strings(let codes, _) = leftKey.storage {
                group = codes[row] < 0 ? -1 : levelGroup[Int(codes[row])]
            } else if let value = leftKey.keyString(row) {
                group = keyIndex[value] ?? -1
            } else {
                group = -1
            }
            guard group >= 0 else { continue }
            for index in start[group]..<start[group + 1] {
                leftRows.append(row)
                rightRows.append(members[index])
            }
        }
        var columns = left.columns.map { $0.gather(leftRows) }
        columns += right.columns.filter { $0.name != key }.map { $0.gather(rightRows) }
        return try Table(columns: columns)
    }

    /// Combines tables as `spec` says (a single table is returned as it is).
    public static func combine(_ tables: [Table], _ spec: JoinSpec?) throws -> Table {
        guard tables.count > 1 else {
            guard let only = tables.first else { throw TrainingError(.notEnoughRows, "no input tables") }
            return only
        }
        switch spec {
        case nil:
            throw TrainingError(.joinFailed, "several tables need a join: 'union' or 'inner:KEY'")
        case .union:
            return try union(tables)
        case .inner(let key):
            var result = tables[0]
            for table in tables.dropFirst() { result = try innerJoin(result, table, on: key) }
            return result
        }
    }
}

extension Column {
    /// Columns of one type, end to end (string levels are merged).
    static func concatenate(_ parts: [Column]) -> Column {
        let first = parts[0]
        switch first.storage {
        case .float:
            var all: [Float] = []
            for part in parts { if case .float(let v) = part.storage { all += v } }
            return Column(name: first.name, type: first.type, storage: .float(all))
        case .integer:
            var all: [Int64] = []
            for part in parts { if case .integer(let v) = part.storage { all += v } }
            return Column(name: first.name, type: first.type, storage: .integer(all))
        case .strings:
            var index: [String: Int32] = [:]
            var levels: [String] = []
            var all: [Int32] = []
            for part in parts {
                guard case .strings(let codes, let partLevels) = part.storage else { continue }
                let remap: [Int32] = partLevels.map { level in
                    if let code = index[level] { return code }
                    let code = Int32(levels.count)
                    index[level] = code
                    levels.append(level)
                    return code
                }
                all += codes.map { $0 < 0 ? -1 : remap[Int($0)] }
            }
            return Column(name: first.name, type: first.type, storage: .strings(codes: all, levels: levels))
        }
    }
}
