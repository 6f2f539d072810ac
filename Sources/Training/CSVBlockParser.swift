/// How one column's cells are parsed and stored.
enum CSVColumnKind: Sendable, Equatable {
    case float, integer, boolean, categorical, id
    /// No declared type: numbers until the first text, then categorical (`InferredColumn`).
    case inferred

    init(declared: ColumnType?) {
        switch declared {
        case nil: self = .inferred
        case .float?: self = .float
        case .integer?: self = .integer
        case .boolean?: self = .boolean
        case .categorical?: self = .categorical
        case .id?: self = .id
        }
    }
}

/// The first fault of a block: where, and what (row numbers are the block's, from 0).
enum CSVFault: Sendable {
    /// A cell broke its column's rule.
    case rule(row: Int, column: Int, rule: String)
    /// The record is malformed; `detail` follows "row N ".
    case malformed(row: Int, detail: String)

    var row: Int {
        switch self {
        case .rule(let row, _, _), .malformed(let row, _): row
        }
    }

    /// Faults in input order: a record's structure is checked before its cells, cells left to right.
    var order: (Int, Int) {
        switch self {
        case .rule(let row, let column, _): (row, column)
        case .malformed(let row, _): (row, -1)
        }
    }
}

/// Parses one block of whole CSV records (no header) in a single pass: each field is found and
/// converted straight into its column's buffer, with no per-record field list and no per-cell
/// array bookkeeping. Blocks are independent, so several parse at once; `CSVTableReader` cuts the
/// input into blocks and merges their fragments in order.
struct CSVBlockParser: Sendable {
    let kinds: [CSVColumnKind]
    let limits: CSVLimits

    /// Parses `buf` (the end of the block is the end of its last record) into a fragment. Inferred
    /// columns go into `inferred`, in order; only a reader that parses its blocks one after another
    /// passes them.
    func parse(_ buf: UnsafeBufferPointer<UInt8>, inferred: [InferredColumn?] = []) -> CSVFragment {
        let n = buf.count
        let fragment = CSVFragment(kinds: kinds, rowCapacity: rowEstimate(buf), keyByteCapacity: n)
        var columns = fragment.columns
        let levels = fragment.levels
        let columnCount = kinds.count
        let maxField = limits.maxFieldBytes
        var scratch: [UInt8] = []
        var row = 0
        var p = 0
        records: while p < n {
            let first = buf[p]
            if first == UInt8(ascii: "\n") || first == UInt8(ascii: "\r") {  // a blank line
                p += first == UInt8(ascii: "\r") && p + 1 < n && buf[p + 1] == UInt8(ascii: "\n") ? 2 : 1
                continue
            }
            if row == fragment.rowCapacity {
                fragment.grow()
                columns = fragment.columns
            }
            let recordStart = p
            var k = 0
            while true {
                if p < n, buf[p] != UInt8(ascii: "\""), k < columnCount,
                    let length = storeNumber(UnsafeBufferPointer(rebasing: buf[p..<n]), column: k, row: row, columns: columns)
                {
                    p += length  // a number, scanned and converted up to its delimiter in one pass
                } else {
                    var start = p, end: Int
                    var escaped = false
                    if p < n, buf[p] == UInt8(ascii: "\"") {
                        var j = p + 1
                        while true {
                            guard j < n else {
                                fragment.fault = diagnose(buf, recordStart, row: row)
                                break records
                            }
                            if buf[j] == UInt8(ascii: "\"") {
                                if j + 1 < n, buf[j + 1] == UInt8(ascii: "\"") {
                                    escaped = true
                                    j += 2
                                    continue
                                }
                                break
                            }
                            j += 1
                        }
                        start = p + 1
                        end = j
                        p = j + 1
                        if p < n, !Self.isDelimiter(buf[p]) {
                            fragment.fault = diagnose(buf, recordStart, row: row)
                            break records
                        }
                    } else {
                        end = Self.fieldEnd(buf, from: p)
                        p = end
                        if p < n, buf[p] == UInt8(ascii: "\"") {
                            fragment.fault = diagnose(buf, recordStart, row: row)
                            break records
                        }
                    }
                    guard end - start <= maxField, k < columnCount else {
                        fragment.fault = diagnose(buf, recordStart, row: row)
                        break records
                    }
                    let failed: String?
                    if escaped {
                        scratch.removeAll(keepingCapacity: true)
                        var q = start
                        while q < end {
                            scratch.append(buf[q])
                            q += buf[q] == UInt8(ascii: "\"") ? 2 : 1
                        }
                        failed = scratch.withUnsafeBufferPointer {
                            store($0, column: k, row: row, columns: columns, levels: levels, inferred: inferred)
                        }
                    } else {
                        failed = store(
                            UnsafeBufferPointer(rebasing: buf[start..<end]), column: k, row: row, columns: columns,
                            levels: levels, inferred: inferred)
                    }
                    if let failed {
                        fragment.fault = diagnose(buf, recordStart, row: row, else: .rule(row: row, column: k, rule: failed))
                        break records
                    }
                }
                k += 1
                if p < n, buf[p] == UInt8(ascii: ",") {
                    p += 1
                    continue
                }
                if p < n { p += buf[p] == UInt8(ascii: "\r") && p + 1 < n && buf[p + 1] == UInt8(ascii: "\n") ? 2 : 1 }
                break
            }
            guard k == columnCount else {
                fragment.fault = diagnose(buf, recordStart, row: row)
                break
            }
            row += 1
        }
        fragment.rows = row
        fragment.byteCount = n
        return fragment
    }

    /// Stores cell `row` of a float or integer column `k` when `bytes` start with a number that its
    /// column's parser reads the same way and a delimiter (or the end) follows it; returns the
    /// number's length, or nil to take the general path.
    @inline(__always) private func storeNumber(
        _ bytes: UnsafeBufferPointer<UInt8>, column k: Int, row: Int, columns: [FragmentColumn]
    ) -> Int? {
        let length: Int
        switch kinds[k] {
        case .float:
            guard let (value, n) = CSVValue.parseDoublePrefix(bytes) else { return nil }
            guard n <= limits.maxFieldBytes, n == bytes.count || Self.isDelimiter(bytes[n]) else { return nil }
            columns[k].floats[row] = Float(value)
            length = n
        case .integer:
            guard let (value, n) = CSVValue.parseIntPrefix(bytes) else { return nil }
            guard n <= limits.maxFieldBytes, n == bytes.count || Self.isDelimiter(bytes[n]) else { return nil }
            columns[k].integers[row] = value
            length = n
        default:
            return nil
        }
        return length
    }

    /// The rows to make room for at first: the line ends of the block's first 4 KiB, scaled to the
    /// block with a quarter to spare (records are about as long throughout; `parse` grows the
    /// buffers when they are not). Capped by the most rows the block can hold (a record of k fields
    /// has at least k - 1 commas), so a block of blank lines under a 4096-column header does not
    /// reserve 4096 columns × its line ends. Counting every line end of the block instead was a
    /// whole extra pass over it.
    func rowEstimate(_ buf: UnsafeBufferPointer<UInt8>) -> Int {
        let n = buf.count, sample = min(n, 4096)
        let sampled = Self.lineEndCount(UnsafeBufferPointer(rebasing: buf[..<sample])) + 1
        return min(sampled * (n / sample) + sampled / 4 + 16, n / max(kinds.count - 1, 1) + 1)
    }

    /// How many bytes of `buf` are `\n` or `\r` (only a block's first 4 KiB are counted).
    static func lineEndCount(_ buf: UnsafeBufferPointer<UInt8>) -> Int {
        var count = 0
        for byte in buf { count &+= byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") ? 1 : 0 }
        return count
    }

    @inline(__always) static func isDelimiter(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: ",") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
    }

    /// The index of the first comma, line end or quote at or after `start` (8 bytes at a time).
    @inline(__always) static func fieldEnd(_ buf: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        let n = buf.count
        var j = start
        let raw = UnsafeRawBufferPointer(buf)
        let ones: UInt64 = 0x0101_0101_0101_0101
        @inline(__always) func zeroBytes(_ v: UInt64) -> UInt64 { (v &- ones) & ~v & 0x8080_8080_8080_8080 }
        while j + 8 <= n {
            let word = raw.loadUnaligned(fromByteOffset: j, as: UInt64.self)
            // The lowest flagged byte is always a true match (borrows only flag bytes above one).
            let found = zeroBytes(word ^ (ones &* 0x2C)) | zeroBytes(word ^ (ones &* 0x0A))
                | zeroBytes(word ^ (ones &* 0x0D)) | zeroBytes(word ^ (ones &* 0x22))
            if found != 0 { return j + found.trailingZeroBitCount / 8 }
            j += 8
        }
        while j < n {
            let byte = buf[j]
            if isDelimiter(byte) || byte == UInt8(ascii: "\"") { return j }
            j += 1
        }
        return n
    }

    /// Stores cell `row` of column `k`; returns the name of the rule it broke, if any.
    @inline(__always) private func store(
        _ field: UnsafeBufferPointer<UInt8>, column k: Int, row: Int, columns: [FragmentColumn],
        levels: [FragmentLevels?], inferred: [InferredColumn?]
    ) -> String? {
        switch kinds[k] {
        case .categorical:
            if CSVValue.isMissing(field) {
                columns[k].codes[row] = -1
                columns[k].sawMissing.pointee = true
                return nil
            }
            guard let code = levels[k]!.code(of: field, maxLevels: limits.maxCategoricalLevels) else {
                return "at most \(limits.maxCategoricalLevels) categories"
            }
            columns[k].codes[row] = code
            return nil
        case .inferred:
            return inferred[k]!.append(field, maxLevels: limits.maxCategoricalLevels)
        default:
            return columns[k].store(field, row: row)
        }
    }

    /// The first fault of the record at `start`, as a record-at-a-time reader names it: its
    /// structure, then its field count, then `cellFault` (the first cell that broke a rule).
    private func diagnose(
        _ buf: UnsafeBufferPointer<UInt8>, _ start: Int, row: Int, else cellFault: CSVFault? = nil
    ) -> CSVFault {
        var fields: [CSVRecordSplitter.Field] = []
        do {
            _ = try CSVRecordSplitter.split(buf, from: start, final: true, limits: limits, into: &fields)
        } catch {
            return .malformed(row: row, detail: error.detail)
        }
        if fields.count != kinds.count {
            return .malformed(row: row, detail: "has \(fields.count) fields; the header has \(kinds.count)")
        }
        return cellFault ?? .malformed(row: row, detail: "could not be read")
    }
}

/// One block's cells, in buffers sized for the block (rows as `rowEstimate` says, grown when there
/// are more; its bytes bound its key bytes), freed when the reader has merged them.
final class CSVFragment: @unchecked Sendable {
    private(set) var columns: [FragmentColumn]
    /// Rows the columns have room for.
    private(set) var rowCapacity: Int
    /// The levels of each categorical column (nil for the others).
    let levels: [FragmentLevels?]
    /// Whole rows parsed.
    var rows = 0
    /// The block's size in bytes.
    var byteCount = 0
    /// The first fault; the rows before it are complete, and the faulty row's cells left of the
    /// faulty column are stored too.
    var fault: CSVFault?

    init(kinds: [CSVColumnKind], rowCapacity: Int, keyByteCapacity: Int) {
        self.rowCapacity = max(rowCapacity, 1)
        columns = kinds.map { FragmentColumn(kind: $0, rowCapacity: max(rowCapacity, 1), keyByteCapacity: keyByteCapacity) }
        levels = kinds.map { $0 == .categorical ? FragmentLevels() : nil }
    }

    /// Doubles the rows every column has room for, keeping the cells stored so far (the key bytes
    /// already have room for the whole block).
    func grow() {
        let old = columns
        rowCapacity *= 2
        columns = old.map { $0.resized(rowCapacity: rowCapacity, keeping: rowCapacity / 2) }
    }

    deinit {
        for column in columns { column.deallocate() }
    }
}

/// One column of a fragment: plain pointers, so storing a cell costs no reference counting or
/// uniqueness check.
struct FragmentColumn {
    let kind: CSVColumnKind
    /// Float, Int64 or Int32 (categorical codes) cells; key row ends for ids.
    let cells: UnsafeMutableRawPointer
    /// Ids: each row's key hash (0 when missing).
    let hashes: UnsafeMutablePointer<UInt64>?
    /// Ids: the key bytes, end to end.
    let keyBytes: UnsafeMutablePointer<UInt8>?
    /// Ids: how many key bytes are stored.
    let keyByteCount: UnsafeMutablePointer<Int>?
    /// Whether a missing value was stored (the schema's "no missing values" rule need not scan
    /// the column when no block saw one).
    let sawMissing: UnsafeMutablePointer<Bool>

    init(kind: CSVColumnKind, rowCapacity: Int, keyByteCapacity: Int) {
        self.kind = kind
        sawMissing = .allocate(capacity: 1)
        sawMissing.initialize(to: false)
        cells = .allocate(byteCount: rowCapacity * Self.cellBytes(kind), alignment: 8)
        hashes = kind == .id ? .allocate(capacity: rowCapacity) : nil
        keyBytes = kind == .id ? .allocate(capacity: max(keyByteCapacity, 1)) : nil
        keyByteCount = kind == .id ? .allocate(capacity: 1) : nil
        keyByteCount?.initialize(to: 0)
    }

    private init(_ other: FragmentColumn, cells: UnsafeMutableRawPointer, hashes: UnsafeMutablePointer<UInt64>?) {
        kind = other.kind
        self.cells = cells
        self.hashes = hashes
        keyBytes = other.keyBytes
        keyByteCount = other.keyByteCount
        sawMissing = other.sawMissing
    }

    private static func cellBytes(_ kind: CSVColumnKind) -> Int {
        switch kind {
        case .float: MemoryLayout<Float>.stride
        case .integer, .boolean, .id: 8
        case .categorical: MemoryLayout<Int32>.stride
        case .inferred: 1
        }
    }

    /// This column with room for `rowCapacity` rows and its first `rows` cells; this column's cell
    /// buffers are freed (the key bytes move over).
    func resized(rowCapacity: Int, keeping rows: Int) -> FragmentColumn {
        let bytes = Self.cellBytes(kind)
        let newCells = UnsafeMutableRawPointer.allocate(byteCount: rowCapacity * bytes, alignment: 8)
        newCells.copyMemory(from: cells, byteCount: rows * bytes)
        cells.deallocate()
        var newHashes: UnsafeMutablePointer<UInt64>? = nil
        if let hashes {
            newHashes = .allocate(capacity: rowCapacity)
            newHashes!.initialize(from: hashes, count: rows)
            hashes.deallocate()
        }
        return FragmentColumn(self, cells: newCells, hashes: newHashes)
    }

    func deallocate() {
        sawMissing.deallocate()
        cells.deallocate()
        hashes?.deallocate()
        keyBytes?.deallocate()
        keyByteCount?.deallocate()
    }

    var floats: UnsafeMutablePointer<Float> { cells.assumingMemoryBound(to: Float.self) }
    var integers: UnsafeMutablePointer<Int64> { cells.assumingMemoryBound(to: Int64.self) }
    var codes: UnsafeMutablePointer<Int32> { cells.assumingMemoryBound(to: Int32.self) }
    /// Ids: `ends[row]` is where the row's key ends in `keyBytes`.
    var ends: UnsafeMutablePointer<Int> { cells.assumingMemoryBound(to: Int.self) }

    /// Stores cell `row` of a float, integer, boolean or id column; returns the name of the rule it
    /// broke, if any.
    @inline(__always) func store(_ field: UnsafeBufferPointer<UInt8>, row: Int) -> String? {
        switch kind {
        case .float:
            if CSVValue.isMissing(field) {
                floats[row] = .nan
                sawMissing.pointee = true
            } else if let value = CSVValue.parseDouble(field), value.isFinite {
                floats[row] = Float(value)
            } else {
                return "type float"
            }
        case .integer:
            if CSVValue.isMissing(field) {
                integers[row] = Column.missingInteger
                sawMissing.pointee = true
            } else if let value = CSVValue.parseInt(field), value != Column.missingInteger {
                integers[row] = value
            } else {
                return "type integer"
            }
        case .boolean:
            if CSVValue.isMissing(field) {
                integers[row] = Column.missingInteger
                sawMissing.pointee = true
            } else if let value = CSVValue.parseBoolean(field) {
                integers[row] = value ? 1 : 0
            } else {
                return "type boolean"
            }
        case .id:
            // Ids are matched (join) or echoed (scores), never counted as levels: no interning.
            var count = keyByteCount!.pointee
            if CSVValue.isMissing(field) {
                hashes![row] = 0
                sawMissing.pointee = true
            } else {
                (keyBytes! + count).update(from: field.baseAddress!, count: field.count)
                count += field.count
                keyByteCount!.pointee = count
                hashes![row] = KeyColumn.hash(UnsafeRawBufferPointer(field))
            }
            ends[row] = count
        case .categorical, .inferred:
            preconditionFailure("categorical and inferred cells are stored by the parser")
        }
        return nil
    }
}

/// The levels of one categorical column of a fragment, in order of first appearance.
final class FragmentLevels {
    var levels: [String] = []
    private var index: [String: Int32] = [:]

    /// The level code of `field`, added if new; nil past `maxLevels` levels.
    func code(of field: UnsafeBufferPointer<UInt8>, maxLevels: Int) -> Int32? {
        let text = String(decoding: field, as: UTF8.self)
        if let code = index[text] { return code }
        guard levels.count < maxLevels else { return nil }
        let code = Int32(levels.count)
        index[text] = code
        levels.append(text)
        return code
    }
}

/// A column with no declared type, read one block after another: numeric text makes a `.float`
/// column, which becomes `.categorical` at its first non-numeric value (the earlier numbers become
/// their text).
final class InferredColumn {
    private var floats: [Float] = []
    private var codes: [Int32]? = nil
    private var levels: [String] = []
    private var index: [String: Int32] = [:]

    /// Appends a cell; returns the name of the rule it broke, if any.
    func append(_ field: UnsafeBufferPointer<UInt8>, maxLevels: Int) -> String? {
        let missing = CSVValue.isMissing(field)
        if codes == nil {
            if missing {
                floats.append(.nan)
                return nil
            }
            if let value = CSVValue.parseDouble(field), value.isFinite {
                floats.append(Float(value))
                return nil
            }
            var converted: [Int32] = []
            converted.reserveCapacity(floats.count + 1)
            for value in floats {
                if value.isNaN {
                    converted.append(-1)
                } else {
                    converted.append(intern(value.description))
                }
            }
            floats = []
            codes = converted
        }
        if missing {
            codes!.append(-1)
            return nil
        }
        let text = String(decoding: field, as: UTF8.self)
        if index[text] == nil, levels.count >= maxLevels { return "at most \(maxLevels) categories" }
        codes!.append(intern(text))
        return nil
    }

    private func intern(_ text: String) -> Int32 {
        if let code = index[text] { return code }
        let code = Int32(levels.count)
        index[text] = code
        levels.append(text)
        return code
    }

    func build(name: String) -> Column {
        guard let codes else { return Column(name: name, type: .float, storage: .float(floats)) }
        return Column(name: name, type: .categorical, storage: .strings(codes: codes, levels: levels))
    }
}
