/// The cells of an `id` column: every key's UTF-8 bytes end to end in one buffer, each row's end
/// offset, and each row's hash, computed while the bytes were still in cache.
///
/// Join keys are long and nearly all distinct (the demo's are 64-hex customer hashes): one heap
/// `String` per row, hashed again by the join and compared through a pointer, dominated parsing and
/// joining. Here a join compares 32 bits of the stored hash and then two byte ranges of one
/// buffer. A missing key is the empty range (an empty CSV field is always missing) with hash 0.
public struct KeyColumn: Sendable, Equatable {
    /// Every key's bytes, end to end.
    public private(set) var bytes: [UInt8] = []
    /// `ends[row]` is where row `row`'s bytes end; they start where the previous row's end.
    public private(set) var ends: [Int] = []
    /// `KeyColumn.hash` of each row's bytes (0 for a missing key).
    public private(set) var hashes: [UInt64] = []

    public init() {}

    /// A column of `keys` (`nil` or empty is missing).
    public init(_ keys: [String?]) {
        for key in keys {
            var key = key ?? ""
            key.withUTF8 { append(UnsafeRawBufferPointer($0)) }
        }
    }

    /// Adopts buffers filled elsewhere (the CSV block parser); `ends` and `hashes` have one entry
    /// per row.
    init(bytes: [UInt8], ends: [Int], hashes: [UInt64]) {
        precondition(ends.count == hashes.count && (ends.last ?? 0) == bytes.count)
        self.bytes = bytes
        self.ends = ends
        self.hashes = hashes
    }

    public var count: Int { ends.count }

    /// Where row `row`'s bytes start.
    @inline(__always) public func start(_ row: Int) -> Int { row == 0 ? 0 : ends[row - 1] }

    public func isMissing(_ row: Int) -> Bool { start(row) == ends[row] }

    public var missingCount: Int {
        var missing = 0
        var previous = 0
        for end in ends {
            if end == previous { missing += 1 }
            previous = end
        }
        return missing
    }

    /// Row `row`'s key as text, or nil when missing.
    public func string(_ row: Int) -> String? {
        let range = start(row)..<ends[row]
        return range.isEmpty ? nil : String(decoding: bytes[range], as: UTF8.self)
    }

    /// Calls `body` with row `row`'s bytes (empty when missing).
    public func withKey<R>(_ row: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let range = start(row)..<ends[row]
        return try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    /// Appends one key (empty is missing).
    public mutating func append(_ key: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: key)
        ends.append(bytes.count)
        hashes.append(key.isEmpty ? 0 : Self.hash(key))
    }

    /// Appends every row of `other`.
    public mutating func append(contentsOf other: KeyColumn) {
        let base = bytes.count
        bytes += other.bytes
        ends += other.ends.map { $0 + base }
        hashes += other.hashes
    }

    /// A new column with the keys at `rows`, in that order.
    public func gather(_ rows: [Int]) -> KeyColumn {
        var total = 0
        for row in rows { total += ends[row] - start(row) }
        var out = KeyColumn()
        out.bytes.reserveCapacity(total)
        out.ends.reserveCapacity(rows.count)
        out.hashes.reserveCapacity(rows.count)
        bytes.withUnsafeBytes { source in
            for row in rows {
                out.bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: source[start(row)..<ends[row]]))
                out.ends.append(out.bytes.count)
                out.hashes.append(hashes[row])
            }
        }
        return out
    }

    /// A 64-bit hash of the bytes, 8 at a time (multiply-xorshift mixing; not for adversaries: the
    /// keys come from the parties' own data inside the enclave, and collisions only cost probes).
    /// Never 0 for a non-empty key, so 0 can mark a missing one.
    @inline(__always) public static func hash(_ raw: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(raw.count)
        var i = 0
        while i + 8 <= raw.count {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 32
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < raw.count {
            tail |= UInt64(raw[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ tail) &* 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 29
        return h == 0 ? 1 : h
    }
}
