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
        // Build side: every table after the first, its rows grouped by key.
        var groups = [KeyGroups?](repeating: nil, count: tables.count - 1)
        groups.withUnsafeMutableBufferPointer { out in
            let out = UncheckedBox(out)
            Parallel.run(out.value.count) { t in out.value[t] = KeyGroups(keys[t + 1]) }
        }
        let index = groups.map { $0! }
        // Probe side: the first table's rows, in contiguous parts, each part's matches in row order.
        let parts = Parallel.ranges(first.rowCount)
        var partRows = [[[Int]]](repeating: [], count: parts.count)
        partRows.withUnsafeMutableBufferPointer { out in
            let out = UncheckedBox(out)
            Parallel.run(parts.count) { part in
                out.value[part] = Self.probe(keys[0], rows: parts[part], index: index, buildKeys: Array(keys.dropFirst()))
            }
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
    private static func probe(_ keys: KeyColumn, rows: Range<Int>, index: [KeyGroups], buildKeys: [KeyColumn]) -> [[Int]] {
        var out = [[Int]](repeating: [], count: index.count + 1)
        for t in out.indices { out[t].reserveCapacity(rows.count) }
        var matched = [Int](repeating: 0, count: index.count)
        var position = matched
        // Groups are looked up a batch of rows at a time, so their cache misses overlap.
        let batch = 64
        var groups = [[Int]](repeating: [Int](repeating: -1, count: batch), count: index.count)
        var lookup = KeyGroups.BatchLookup(capacity: batch, tables: index.count)
        let unique = index.allSatisfy(\.isUnique)
        for batchStart in stride(from: rows.lowerBound, to: rows.upperBound, by: batch) {
            let batchRows = batchStart..<min(batchStart + batch, rows.upperBound)
            for t in index.indices {
                index[t].groups(of: batchRows, in: keys, buildKeys: buildKeys[t], into: &groups[t], table: t, using: &lookup)
            }
            if unique {
                // Every build key occurs once: each probe row matches at most one row per table.
                matching: for row in batchRows {
                    for t in index.indices where groups[t][row - batchStart] < 0 { continue matching }
                    out[0].append(row)
                    for t in index.indices { out[t + 1].append(lookup.firstRows[t][row - batchStart]) }
                }
                continue
            }
            probing: for row in batchRows {
                for t in index.indices {
                    let group = groups[t][row - batchStart]
                    if group < 0 { continue probing }
                    matched[t] = group
                    position[t] = index[t].start[group]
                }
                while true {
                    out[0].append(row)
                    for t in index.indices { out[t + 1].append(index[t].members[position[t]]) }
                    var t = index.count - 1
                    while t >= 0 {
                        position[t] += 1
                        if position[t] < index[t].start[matched[t] + 1] { break }
                        position[t] = index[t].start[matched[t]]
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

/// A table's rows grouped by the value of its key column (CSR layout: the rows of group `g` are
/// `members[start[g]..<start[g + 1]]`, in row order), with an open-addressing index from key to
/// group. Each slot packs the upper half of the key's hash with its group, so a probe touches the
/// key bytes only when those 32 bits already match.
struct KeyGroups: Sendable {
    private(set) var start: [Int] = [0]
    private(set) var members: [Int] = []
    /// The first row of each group (whose bytes a probe compares with).
    private(set) var representative: [Int] = []
    /// Whether every key occurs once: then group `g`'s only row is `representative[g]`.
    var isUnique: Bool { members.count == representative.count }
    /// 0 is empty; otherwise the hash's upper 32 bits, then group + 1.
    private var slots: [UInt64]
    private let mask: Int

    init(_ keys: KeyColumn) {
        let rows = keys.count
        // At most two thirds full: probes stay short and mostly within one cache line.
        var capacity = 16
        while capacity < rows + rows / 2 { capacity <<= 1 }
        slots = [UInt64](repeating: 0, count: capacity)
        mask = capacity - 1
        var groupOf = [Int32](repeating: -1, count: rows)
        var sizes: [Int] = []
        representative.reserveCapacity(rows)
        sizes.reserveCapacity(rows)
        var keyedRows = 0
        for row in 0..<rows {
            let hash = keys.hashes[row]
            if hash == 0 { continue }
            keyedRows += 1
            let tag = hash & 0xFFFF_FFFF_0000_0000
            var slot = Int(truncatingIfNeeded: hash) & mask
            while true {
                let existing = slots[slot]
                if existing == 0 {
                    slots[slot] = tag | UInt64(representative.count + 1)
                    groupOf[row] = Int32(representative.count)
                    representative.append(row)
                    sizes.append(1)
                    break
                }
                if existing & 0xFFFF_FFFF_0000_0000 == tag {
                    let group = Int(existing & 0xFFFF_FFFF) - 1
                    if keys.sameKey(row, as: representative[group], of: keys) {
                        groupOf[row] = Int32(group)
                        sizes[group] += 1
                        break
                    }
                }
                slot = (slot + 1) & mask
            }
        }
        if representative.count == keyedRows {
            // Every key once: group g is its first row alone.
            start = Array(0...representative.count)
            members = representative
            return
        }
        start = [Int](repeating: 0, count: sizes.count + 1)
        for g in sizes.indices { start[g + 1] = start[g] + sizes[g] }
        var fill = start
        members = [Int](repeating: 0, count: start[sizes.count])
        for row in 0..<rows where groupOf[row] >= 0 {
            let g = Int(groupOf[row])
            members[fill[g]] = row
            fill[g] += 1
        }
    }

    /// Scratch space of `groups(of:in:buildKeys:into:table:using:)`.
    struct BatchLookup {
        var slot: [UInt64]
        var candidate: [Int]
        /// Per build table, the first row of each looked-up group.
        var firstRows: [[Int]]
        init(capacity: Int, tables: Int) {
            slot = [UInt64](repeating: 0, count: capacity)
            candidate = [Int](repeating: -1, count: capacity)
            firstRows = [[Int]](repeating: [Int](repeating: -1, count: capacity), count: tables)
        }
    }

    /// The groups of `rows` of `keys` into `out` (-1 where no row of `buildKeys` has the key), in
    /// stages over the whole batch: every row's slot is loaded, then each candidate group's first
    /// row, then that row's key bounds and the ends of its bytes, and only then are keys compared.
    /// Within a stage the loads do not depend on one another, so their cache misses overlap instead
    /// of queuing row after row. Collisions take `group(of:in:buildKeys:)`.
    func groups(
        of rows: Range<Int>, in keys: KeyColumn, buildKeys: KeyColumn, into out: inout [Int], table t: Int,
        using scratch: inout BatchLookup
    ) {
        let tagMask: UInt64 = 0xFFFF_FFFF_0000_0000
        for (i, row) in rows.enumerated() {
            let hash = keys.hashes[row]
            scratch.slot[i] = hash == 0 ? 0 : slots[Int(truncatingIfNeeded: hash) & mask]
        }
        for (i, row) in rows.enumerated() {
            let value = scratch.slot[i]
            if value != 0, value & tagMask == keys.hashes[row] & tagMask {
                scratch.candidate[i] = representative[Int(value & 0xFFFF_FFFF) - 1]
            } else {
                scratch.candidate[i] = value == 0 ? -1 : -2  // -1: no such key; -2: probe on
            }
        }
        // Compare lengths and the first and last bytes: this brings both ends of every candidate's
        // key into cache for the full comparison below, and rejects most non-matches early.
        buildKeys.bytes.withUnsafeBytes { buildBytes in
            keys.bytes.withUnsafeBytes { probeBytes in
                for (i, row) in rows.enumerated() where scratch.candidate[i] >= 0 {
                    let candidate = scratch.candidate[i]
                    let bs = buildKeys.start(candidate), be = buildKeys.ends[candidate]
                    let ps = keys.start(row), pe = keys.ends[row]
                    if be - bs != pe - ps || buildBytes[bs] != probeBytes[ps] || buildBytes[be - 1] != probeBytes[pe - 1] {
                        scratch.candidate[i] = -2
                    }
                }
            }
        }
        for (i, row) in rows.enumerated() {
            let candidate = scratch.candidate[i]
            if candidate == -1 {
                out[i] = -1
            } else if candidate >= 0, keys.sameKey(row, as: candidate, of: buildKeys) {
                out[i] = Int(scratch.slot[i] & 0xFFFF_FFFF) - 1
                scratch.firstRows[t][i] = candidate
            } else {
                out[i] = group(of: row, in: keys, buildKeys: buildKeys)
                if out[i] >= 0 { scratch.firstRows[t][i] = representative[out[i]] }
            }
        }
    }

    /// The group holding row `row` of `keys`, or -1 when no row of `buildKeys` (the column this
    /// index was built from) has that key.
    @inline(__always) func group(of row: Int, in keys: KeyColumn, buildKeys: KeyColumn) -> Int {
        let hash = keys.hashes[row]
        if hash == 0 { return -1 }
        let tag = hash & 0xFFFF_FFFF_0000_0000
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let existing = slots[slot]
            if existing == 0 { return -1 }
            if existing & 0xFFFF_FFFF_0000_0000 == tag {
                let group = Int(existing & 0xFFFF_FFFF) - 1
                if keys.sameKey(row, as: representative[group], of: buildKeys) { return group }
            }
            slot = (slot + 1) & mask
        }
    }
}
