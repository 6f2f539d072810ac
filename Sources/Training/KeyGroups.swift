#if canImport(Glibc)
import Glibc
#endif

/// A key column's buffers as plain pointers for the join's hot loops: no bounds checks, no
/// reference counting. Valid only inside `KeyColumn.withView`.
struct KeyColumnView {
    let bytes: UnsafeBufferPointer<UInt8>
    let ends: UnsafeBufferPointer<Int>
    let hashes: UnsafeBufferPointer<UInt64>
    /// Every key's length when all rows hold a key of the same length (then row `r` starts at
    /// `r × width` and `ends` need not be read: one cache miss less per lookup), else 0.
    let width: Int

    @inline(__always) func start(_ row: Int) -> Int { width != 0 ? row &* width : (row == 0 ? 0 : ends[row &- 1]) }
    @inline(__always) func end(_ row: Int) -> Int { width != 0 ? (row &+ 1) &* width : ends[row] }

    /// Whether row `row` here and row `other` of `column` hold the same bytes.
    @inline(__always) func sameBytes(_ row: Int, as other: Int, of column: KeyColumnView) -> Bool {
        let a = start(row), b = column.start(other)
        let count = end(row) &- a
        guard count == column.end(other) &- b else { return false }
        let x = UnsafeRawPointer(bytes.baseAddress! + a), y = UnsafeRawPointer(column.bytes.baseAddress! + b)
        var i = 0
        while i &+ 8 <= count {
            if x.loadUnaligned(fromByteOffset: i, as: UInt64.self) != y.loadUnaligned(fromByteOffset: i, as: UInt64.self) {
                return false
            }
            i &+= 8
        }
        return i == count || memcmp(x + i, y + i, count &- i) == 0
    }
}

extension KeyColumn {
    /// Calls `body` with a view of this column's buffers.
    func withView<R>(_ body: (KeyColumnView) throws -> R) rethrows -> R {
        try bytes.withUnsafeBufferPointer { bytes in
            try ends.withUnsafeBufferPointer { ends in
                try hashes.withUnsafeBufferPointer { hashes in
                    try body(KeyColumnView(bytes: bytes, ends: ends, hashes: hashes, width: Self.uniformWidth(ends)))
                }
            }
        }
    }

    /// Calls `body` with views of every column of `columns`.
    static func withViews<R>(_ columns: [KeyColumn], _ body: ([KeyColumnView]) throws -> R) rethrows -> R {
        func nest(_ index: Int, _ views: [KeyColumnView]) throws -> R {
            guard index < columns.count else { return try body(views) }
            return try columns[index].withView { try nest(index + 1, views + [$0]) }
        }
        return try nest(0, [])
    }

    /// The length every row's key has, or 0 when lengths differ, a key is missing or there are no
    /// rows (a sequential pass over `ends`).
    private static func uniformWidth(_ ends: UnsafeBufferPointer<Int>) -> Int {
        guard let first = ends.first, first > 0 else { return 0 }
        var previous = 0, uniform = true
        for end in ends {
            uniform = uniform && end &- previous == first
            previous = end
        }
        return uniform ? first : 0
    }
}

/// A table's rows grouped by the value of its key column, for the build side of a hash join.
///
/// An open-addressing index maps each key to the first row that holds it: each slot packs the upper
/// half of the key's hash with that row, so a probe reaches the key's bytes straight from the slot
/// (two cache misses: the slot, then the bytes) and touches them only when those 32 bits already
/// match. When some key occurs more than once, the rows of each key are kept too (CSR layout: the
/// rows of group `g` are `members[start[g]..<start[g + 1]]`, in row order).
final class KeyGroups: @unchecked Sendable {
    /// Whether every key occurs once: then a key's only row is the one its slot names.
    let isUnique: Bool
    /// Non-unique keys only: each row's group, its rows' offsets and the rows themselves.
    private(set) var groupOf: [Int32] = []
    private(set) var start: [Int] = []
    private(set) var members: [Int] = []
    /// 0 is empty; otherwise the hash's upper 32 bits, then the key's first row + 1.
    private let slots: UnsafeMutableBufferPointer<UInt64>
    private let mask: Int
    private static let tagMask: UInt64 = 0xFFFF_FFFF_0000_0000

    init(_ keys: KeyColumnView) {
        let rows = keys.hashes.count
        // At most two thirds full: probes stay short and mostly within one cache line.
        var capacity = 16
        while capacity < rows + rows / 2 { capacity <<= 1 }
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: 0)
        mask = capacity - 1
        var groupOf = [Int32](repeating: -1, count: rows)
        var firstRows: [Int] = []
        var sizes: [Int] = []
        firstRows.reserveCapacity(rows)
        sizes.reserveCapacity(rows)
        var keyedRows = 0
        for row in 0..<rows {
            let hash = keys.hashes[row]
            if hash == 0 { continue }
            keyedRows += 1
            let tag = hash & Self.tagMask
            var slot = Int(truncatingIfNeeded: hash) & mask
            while true {
                let existing = slots[slot]
                if existing == 0 {
                    slots[slot] = tag | UInt64(row + 1)
                    groupOf[row] = Int32(firstRows.count)
                    firstRows.append(row)
                    sizes.append(1)
                    break
                }
                if existing & Self.tagMask == tag {
                    let first = Int(existing & 0xFFFF_FFFF) - 1
                    if keys.hashes[first] == hash, keys.sameBytes(row, as: first, of: keys) {
                        let group = Int(groupOf[first])
                        groupOf[row] = Int32(group)
                        sizes[group] += 1
                        break
                    }
                }
                slot = (slot + 1) & mask
            }
        }
        isUnique = firstRows.count == keyedRows
        if isUnique { return }
        start = [Int](repeating: 0, count: sizes.count + 1)
        for g in sizes.indices { start[g + 1] = start[g] + sizes[g] }
        var fill = start
        members = [Int](repeating: 0, count: start[sizes.count])
        for row in 0..<rows where groupOf[row] >= 0 {
            let g = Int(groupOf[row])
            members[fill[g]] = row
            fill[g] += 1
        }
        self.groupOf = groupOf
    }

    deinit { slots.deallocate() }

    /// For rows `rows` of `keys`, the first row of `build` (the column this index was built from)
    /// with the same key, or -1, into `out` — in stages over the whole batch: every row's slot is
    /// loaded, then (past slots of other tags) each candidate's length and the first and last of its
    /// bytes, and only then are keys compared in full. Within a stage the loads do not depend on
    /// one another, so their cache misses overlap instead of queuing row after row. Collisions take
    /// `firstRow(of:in:build:)`.
    func firstRows(
        of rows: Range<Int>, in keys: KeyColumnView, build: KeyColumnView, into out: UnsafeMutableBufferPointer<Int>,
        slotScratch loaded: UnsafeMutableBufferPointer<UInt64>
    ) {
        let base = rows.lowerBound
        for i in 0..<rows.count {
            let hash = keys.hashes[base &+ i]
            loaded[i] = hash == 0 ? 0 : slots[Int(truncatingIfNeeded: hash) & mask]
        }
        // -1: no such key; -2: look again (the key under the tag is another one).
        for i in 0..<rows.count {
            var value = loaded[i]
            let row = base &+ i, hash = keys.hashes[row], tag = hash & Self.tagMask
            // A key pushed past its home slot is in one of the next few, mostly in the same cache
            // line: step on here rather than in a second lookup.
            var slot = Int(truncatingIfNeeded: hash) & mask
            while value != 0, value & Self.tagMask != tag {
                slot = (slot &+ 1) & mask
                value = slots[slot]
            }
            if value == 0 {
                out[i] = -1
                continue
            }
            let candidate = Int(value & 0xFFFF_FFFF) &- 1
            let bs = build.start(candidate), be = build.end(candidate)
            let ps = keys.start(row), pe = keys.end(row)
            let plausible = be &- bs == pe &- ps && build.bytes[bs] == keys.bytes[ps] && build.bytes[be &- 1] == keys.bytes[pe &- 1]
            out[i] = plausible ? candidate : -2
        }
        for i in 0..<rows.count where out[i] != -1 {
            let row = base &+ i
            if out[i] >= 0, keys.sameBytes(row, as: out[i], of: build) { continue }
            out[i] = firstRow(of: row, in: keys, build: build)
        }
    }

    /// The first row of `build` with row `row`'s key, or -1.
    func firstRow(of row: Int, in keys: KeyColumnView, build: KeyColumnView) -> Int {
        let hash = keys.hashes[row]
        if hash == 0 { return -1 }
        let tag = hash & Self.tagMask
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let existing = slots[slot]
            if existing == 0 { return -1 }
            if existing & Self.tagMask == tag {
                let first = Int(existing & 0xFFFF_FFFF) - 1
                if keys.sameBytes(row, as: first, of: build) { return first }
            }
            slot = (slot + 1) & mask
        }
    }
}
