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
        try innerJoin([left, right], on: key)
    }

    /// Inner hash join of several tables on `key` in one pass: each table after the first is indexed
    /// by key, the first is probed once, and every column is gathered once. Rows come out in the
    /// order of the first table; several matches come out as every combination, the last table's
    /// varying fastest (the order of joining the tables pairwise, left to right). Indexing, probing
    /// and gathering each run on `Parallel.threads` threads.
    public static func innerJoin(_ tables: [Table], on key: String) throws -> Table {
        guard let first = tables.first else { throw TrainingError(.joinFailed, "join of no tables") }
        let keyColumns = try tables.map { try $0.column(named: key) }
        for column in keyColumns where column.type == .float {
            throw TrainingError(.joinFailed, "join key '\(key)' must be an id, categorical or integer column")
        }
        var seen = Set(first.columns.map(\.name))
        for table in tables.dropFirst() {
            for column in table.columns where column.name != key && !seen.insert(column.name).inserted {
                throw TrainingError(.joinFailed, "column '\(column.name)' appears in both tables of the join")
            }
        }
        if tables.count == 1 { return first }
        let keys = keyColumns.map(\.joinKeys)
        let parts = Parallel.ranges(first.rowCount)
        let partRows = KeyColumn.withViews(keys) { views in
            // Build side: every table after the first, its rows grouped by key.
            var index = [KeyGroups?](repeating: nil, count: tables.count - 1)
            index.withUnsafeMutableBufferPointer { out in
                let out = UncheckedBox(out)
                Parallel.run(out.value.count) { t in out.value[t] = KeyGroups(views[t + 1]) }
            }
            let groups = index.map { $0! }
            // Probe side: the first table's rows, in contiguous parts, each part's matches in row order.
            var partRows = [[[Int]]](repeating: [], count: parts.count)
            partRows.withUnsafeMutableBufferPointer { out in
                let out = UncheckedBox(out)
                Parallel.run(parts.count) { part in
                    out.value[part] = Self.probe(views[0], rows: parts[part], index: groups, buildKeys: Array(views.dropFirst()))
                }
            }
            return partRows
        }
        let rows = (0..<tables.count).map { t in partRows.flatMap { $0[t] } }
        // Gather every output column once.
        var sources: [(column: Column, table: Int)] = first.columns.map { ($0, 0) }
        for (t, table) in tables.enumerated().dropFirst() {
            sources += table.columns.filter { $0.name != key }.map { ($0, t) }
        }
        // Columns go to threads by their bytes per row, largest first, so that the id column's
        // bytes do not leave one thread working alone at the end.
        var assigned = [[Int]](repeating: [], count: Parallel.threads)
        var load = [Int](repeating: 0, count: Parallel.threads)
        for c in sources.indices.sorted(by: { sources[$0].column.bytesPerRow > sources[$1].column.bytesPerRow }) {
            let part = load.indices.min { load[$0] < load[$1] }!
            assigned[part].append(c)
            load[part] += sources[c].column.bytesPerRow
        }
        var columns = [Column?](repeating: nil, count: sources.count)
        columns.withUnsafeMutableBufferPointer { out in
            let out = UncheckedBox(out)
            Parallel.run(assigned.count) { part in
                for c in assigned[part] { out.value[c] = sources[c].column.gather(rows[sources[c].table]) }
            }
        }
        return try Table(columns: columns.map { $0! })
    }

    /// The matching row numbers of one part of the probe table: `result[0]` its own rows,
    /// `result[t]` table t's, every combination of the matches like an odometer.
    private static func probe(_ keys: KeyColumnView, rows: Range<Int>, index: [KeyGroups], buildKeys: [KeyColumnView]) -> [[Int]] {
        var out = [[Int]](repeating: [], count: index.count + 1)
        for t in out.indices { out[t].reserveCapacity(rows.count) }
        var matched = [Int](repeating: 0, count: index.count)
        var position = matched
        // Keys are looked up a batch of rows at a time, so their cache misses overlap.
        let batch = 64
        let found = UnsafeMutableBufferPointer<Int>.allocate(capacity: batch * index.count)
        let slots = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: batch)
        defer {
            found.deallocate()
            slots.deallocate()
        }
        let unique = index.allSatisfy(\.isUnique)
        for batchStart in stride(from: rows.lowerBound, to: rows.upperBound, by: batch) {
            let batchRows = batchStart..<min(batchStart + batch, rows.upperBound)
            for t in index.indices {
                index[t].firstRows(
                    of: batchRows, in: keys, build: buildKeys[t], into: UnsafeMutableBufferPointer(rebasing: found[(t * batch)...]),
                    slotScratch: slots)
            }
            if unique {
                // Every build key occurs once: each probe row matches at most one row per table.
                matching: for row in batchRows {
                    let i = row - batchStart
                    for t in index.indices where found[t * batch + i] < 0 { continue matching }
                    out[0].append(row)
                    for t in index.indices { out[t + 1].append(found[t * batch + i]) }
                }
                continue
            }
            probing: for row in batchRows {
                for t in index.indices {
                    let first = found[t * batch + row - batchStart]
                    if first < 0 { continue probing }
                    let group = index[t].isUnique ? -1 : Int(index[t].groupOf[first])
                    matched[t] = group
                    position[t] = group < 0 ? first : index[t].start[group]
                }
                while true {
                    out[0].append(row)
                    for t in index.indices { out[t + 1].append(matched[t] < 0 ? position[t] : index[t].members[position[t]]) }
                    var t = index.count - 1
                    while t >= 0 {
                        if matched[t] >= 0 {
                            position[t] += 1
                            if position[t] < index[t].start[matched[t] + 1] { break }
                            position[t] = index[t].start[matched[t]]
                        }
                        t -= 1
                    }
                    if t < 0 { break }
                }
            }
        }
        return out
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
            return try innerJoin(tables, on: key)
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
        case .keys:
            var all = KeyColumn()
            for part in parts { if case .keys(let keys) = part.storage { all.append(contentsOf: keys) } }
            return Column(name: first.name, type: first.type, storage: .keys(all))
        }
    }

    /// About how many bytes a row of the column takes (an id's key bytes, offset and hash).
    var bytesPerRow: Int {
        switch storage {
        case .float, .strings: 4
        case .integer: 8
        case .keys(let keys): 16 + (keys.count == 0 ? 0 : keys.bytes.count / keys.count)
        }
    }

    /// The column's cells as join keys: an id column as it is, other key columns by their text.
    var joinKeys: KeyColumn {
        if case .keys(let keys) = storage { return keys }
        return KeyColumn((0..<count).map { keyString($0) })
    }
}
