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
    /// varying fastest (the order of joining the tables pairwise, left to right).
    public static func innerJoin(_ tables: [Table], on key: String) throws -> Table {
        guard let first = tables.first else { throw TrainingError(.joinFailed, "join of no tables") }
        let keys = try tables.map { try $0.column(named: key) }
        for column in keys where column.type == .float {
            throw TrainingError(.joinFailed, "join key '\(key)' must be an id, categorical or integer column")
        }
        var seen = Set(first.columns.map(\.name))
        for table in tables.dropFirst() {
            for column in table.columns where column.name != key && !seen.insert(column.name).inserted {
                throw TrainingError(.joinFailed, "column '\(column.name)' appears in both tables of the join")
            }
        }
        if tables.count == 1 { return first }
        // Build side: every table after the first, its rows grouped by key.
        let groups = keys.dropFirst().map(KeyGroups.init)
        // Probe side: the first table's keys, looked up once per distinct value.
        let probe = keys[0]
        var probeCodes: [Int32] = []
        var groupOfLevel: [[Int32]] = []
        if case .strings(let codes, let levels) = probe.storage {
            probeCodes = codes
            groupOfLevel = groups.map { index in levels.map { Int32(index.group(of: $0)) } }
        }
        var rows = [[Int]](repeating: [], count: tables.count)
        for t in rows.indices { rows[t].reserveCapacity(first.rowCount) }
        var matched = [Int](repeating: 0, count: groups.count)
        var position = matched
        probing: for row in 0..<first.rowCount {
            for t in groups.indices {
                let group: Int
                if !groupOfLevel.isEmpty {
                    let code = probeCodes[row]
                    group = code < 0 ? -1 : Int(groupOfLevel[t][Int(code)])
                } else if let value = probe.keyString(row) {
                    group = groups[t].group(of: value)
                } else {
                    group = -1
                }
                if group < 0 { continue probing }
                matched[t] = group
                position[t] = groups[t].start[group]
            }
            // Every combination of the matches, like an odometer.
            while true {
                rows[0].append(row)
                for t in groups.indices { rows[t + 1].append(groups[t].members[position[t]]) }
                var t = groups.count - 1
                while t >= 0 {
                    position[t] += 1
                    if position[t] < groups[t].start[matched[t] + 1] { break }
                    position[t] = groups[t].start[matched[t]]
                    t -= 1
                }
                if t < 0 { break }
            }
        }
        var columns = first.columns.map { $0.gather(rows[0]) }
        for (t, table) in tables.enumerated().dropFirst() {
            columns += table.columns.filter { $0.name != key }.map { $0.gather(rows[t]) }
        }
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
        }
    }
}

/// A table's rows grouped by the value of its key column (CSR layout: the rows of group `g` are
/// `members[start[g]..<start[g + 1]]`, in row order), with an open-addressing index from key to group
/// that hashes the key's UTF-8 bytes directly (join keys are long unique ids: `String` hashing and a
/// growing `Dictionary` dominated the join).
struct KeyGroups {
    private(set) var start: [Int] = [0]
    private(set) var members: [Int] = []
    private var groupKeys: [String] = []
    private var groupHashes: [UInt64] = []
    private var slots: [Int32]
    private let mask: Int

    init(_ column: Column) {
        let rows = column.count
        var capacity = 16
        while capacity < rows * 2 { capacity <<= 1 }
        slots = [Int32](repeating: -1, count: capacity)
        mask = capacity - 1
        var groupOf = [Int32](repeating: -1, count: rows)
        var sizes: [Int] = []
        for row in 0..<rows {
            guard let value = column.keyString(row) else { continue }
            let hash = Self.hash(value)
            var slot = Int(truncatingIfNeeded: hash) & mask
            while true {
                let existing = slots[slot]
                if existing < 0 {
                    slots[slot] = Int32(groupKeys.count)
                    groupOf[row] = Int32(groupKeys.count)
                    groupKeys.append(value)
                    groupHashes.append(hash)
                    sizes.append(1)
                    break
                }
                if groupHashes[Int(existing)] == hash && groupKeys[Int(existing)] == value {
                    groupOf[row] = existing
                    sizes[Int(existing)] += 1
                    break
                }
                slot = (slot + 1) & mask
            }
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

    /// The group of `key`, or -1 when no row has it.
    func group(of key: String) -> Int {
        let hash = Self.hash(key)
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let existing = slots[slot]
            if existing < 0 { return -1 }
            if groupHashes[Int(existing)] == hash && groupKeys[Int(existing)] == key { return Int(existing) }
            slot = (slot + 1) & mask
        }
    }

    /// A 64-bit hash of the UTF-8 bytes, 8 at a time (multiply-xorshift mixing; not for adversaries —
    /// the keys come from the parties' own data inside the enclave, and collisions only cost probes).
    static func hash(_ key: String) -> UInt64 {
        var key = key
        return key.withUTF8 { bytes in
            var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(bytes.count)
            var i = 0
            let raw = UnsafeRawBufferPointer(bytes)
            while i + 8 <= bytes.count {
                h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
                h ^= h >> 32
                i += 8
            }
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while i < bytes.count {
                tail |= UInt64(bytes[i]) << shift
                shift += 8
                i += 1
            }
            h = (h ^ tail) &* 0xC4CE_B9FE_1A85_EC53
            return h ^ (h >> 29)
        }
    }
}
