import Foundation

/// Limits on CSV input, so hostile bytes cannot make the reader use unbounded memory.
public struct CSVLimits: Sendable {
    /// The longest field, in bytes.
    public var maxFieldBytes = 64 * 1024
    /// The longest record, in bytes (a record may span chunks while it is incomplete).
    public var maxRecordBytes = 1024 * 1024
    /// The most columns.
    public var maxColumns = 4096
    /// The most data rows.
    public var maxRows = Int(Int32.max)
    /// The most distinct values of one categorical column.
    public var maxCategoricalLevels = 65_536

    public init() {}
}

/// Builds a `Table` from CSV bytes fed in chunks of any size (RFC 4180: a header row, fields
/// separated by commas, optional double quotes with `""` escapes, LF or CRLF line ends).
///
/// Types come from the schema or the overrides; other columns are inferred: numeric text makes a
/// `.float` column, which becomes `.categorical` at its first non-numeric value. Missing cells are
/// the empty field and `NA`, `N/A`, `NaN`, `nan`, `null`, `NULL`, `None`.
///
/// The input is cut into blocks of whole records. When every column's type is declared, blocks
/// are parsed on `Parallel.threads` threads while more input arrives, and merged in order, so the
/// table and its errors are exactly those of reading record by record: the first fault in input
/// order, with its row number. Memory is the table, a few blocks in flight and one incomplete
/// record.
public struct CSVTableReader {
    private let schema: TableSchema?
    private let overrides: [String: ColumnType]
    private let limits: CSVLimits
    /// Bytes gathered before a block is cut (tests make it small to exercise many blocks).
    var blockBytes = 1 << 20
    /// The input's expected size, when known (a dataset's size): the columns are then allocated
    /// once, from the first blocks' density, instead of being copied as they grow.
    public var sizeHint: Int?
    private var pending: [UInt8] = []
    private var sawBOMCheck = false
    private var body: CSVTableBody?

    public init(schema: TableSchema? = nil, typeOverrides: [String: ColumnType] = [:], limits: CSVLimits = CSVLimits()) {
        self.schema = schema
        self.overrides = typeOverrides
        self.limits = limits
    }

    /// Reads a whole CSV document.
    public static func read(
        _ bytes: some Sequence<UInt8>, schema: TableSchema? = nil, typeOverrides: [String: ColumnType] = [:],
        limits: CSVLimits = CSVLimits()
    ) throws -> Table {
        var reader = CSVTableReader(schema: schema, typeOverrides: typeOverrides, limits: limits)
        try reader.append(bytes)
        return try reader.finish()
    }

    /// Feeds the next chunk of bytes.
    public mutating func append(_ bytes: some Sequence<UInt8>) throws {
        pending.append(contentsOf: bytes)
        if !sawBOMCheck {
            if pending.count < 3 { return }
            if pending[0] == 0xEF, pending[1] == 0xBB, pending[2] == 0xBF { pending.removeFirst(3) }
            sawBOMCheck = true
        }
        guard let body = try body ?? readHeader(final: false) else {
            if pending.count > limits.maxRecordBytes {
                throw TrainingError(.malformedCSV, "row 1 is longer than \(limits.maxRecordBytes) bytes")
            }
            return
        }
        guard pending.count >= min(blockBytes, limits.maxRecordBytes) else { return }
        let cut = pending.withUnsafeBufferPointer { CSVRecordSplitter.lastRecordEnd($0) }
        if cut > 0 {
            // The gathered bytes become the block; only the unfinished record is copied.
            var block = pending
            pending = Array(block[cut...])
            block.removeLast(block.count - cut)
            try body.submit(block)
        }
        if pending.count > limits.maxRecordBytes {
            throw TrainingError(.malformedCSV, "row \(try body.rowsWhenDone() + 1) is longer than \(limits.maxRecordBytes) bytes")
        }
    }

    /// Ends the input and returns the table; the schema (if any) is validated.
    public mutating func finish() throws -> Table {
        sawBOMCheck = true
        if body == nil, pending.count >= 3, pending[0] == 0xEF, pending[1] == 0xBB, pending[2] == 0xBF {
            pending.removeFirst(3)
        }
        guard let body = try body ?? readHeader(final: true) else {
            throw TrainingError(.malformedCSV, "no header row")
        }
        if !pending.isEmpty { try body.submit(pending) }
        pending = []
        let table = try body.finish()
        try schema?.validate(table, knownComplete: body.columnsWithoutMissing)
        return table
    }

    /// Whether an error may name a header cell: with a schema only a declared name, since the
    /// first line of a file uploaded without its header holds data (in the enclave, the schema
    /// and the declared names are public, the rest of the file is not).
    private func canName(_ header: String) -> Bool {
        schema == nil || schema?.type(of: header) != nil || overrides[header] != nil
    }

    /// How errors call the column of header cell `index` (0-based).
    private func errorName(_ header: String, at index: Int) -> String {
        canName(header) ? "column '\(header)'" : "header field \(index + 1)"
    }

    /// Reads the header record from `pending` (skipping blank lines); nil while it is incomplete.
    private mutating func readHeader(final: Bool) throws -> CSVTableBody? {
        var fields: [CSVRecordSplitter.Field] = []
        var names: [String] = []
        let limits = self.limits
        let consumed = try pending.withUnsafeBufferPointer { buf throws -> Int? in
            var position = 0
            while position < buf.count {
                let next: Int?
                do {
                    next = try CSVRecordSplitter.split(buf, from: position, final: final, limits: limits, into: &fields)
                } catch let error as CSVRecordSplitter.Malformed {
                    throw TrainingError(.malformedCSV, "row 1 \(error.detail)")
                }
                guard let next else { return nil }
                position = next
                if CSVRecordSplitter.isBlank(fields) { continue }
                for (k, field) in fields.enumerated() {
                    let name = String(decoding: CSVRecordSplitter.bytes(buf, field), as: UTF8.self)
                    if name.isEmpty { throw TrainingError(.malformedCSV, "header field \(k + 1) is empty") }
                    if let earlier = names.firstIndex(of: name) {
                        // An undeclared name is refused as such (saying which cells are equal would
                        // tell something about a first line that may be data).
                        throw canName(name)
                            ? TrainingError(.unknownColumn, "column '\(name)' appears more than once")
                            : TrainingError(
                                .schemaViolation, "header field \(earlier + 1) fails rule 'declared': \(TableSchema.undeclared)")
                    }
                    names.append(name)
                }
                return position
            }
            return nil
        }
        guard let consumed else { return nil }
        pending.removeFirst(consumed)
        let kinds = names.map { CSVColumnKind(declared: overrides[$0] ?? schema?.type(of: $0)) }
        let body = CSVTableBody(
            names: names, errorNames: names.enumerated().map { errorName($1, at: $0) },
            parser: CSVBlockParser(kinds: kinds, limits: limits), sizeHint: sizeHint)
        self.body = body
        return body
    }
}

/// The data records of one CSV document: blocks parsed (in parallel when every column's type is
/// declared), then checked and appended to the columns in input order as they complete — on the
/// reader's thread while the next blocks parse, so the end of the input leaves little to do.
final class CSVTableBody {
    private let names: [String]
    /// What errors call each column (`column 'name'`, or `header field k` for a name that may be data).
    private let errorNames: [String]
    private let parser: CSVBlockParser
    private let columns: [ColumnAccumulator]
    /// Inferred columns, read one block after another (their type depends on every earlier cell).
    private let inferred: [InferredColumn?]
    private let pool: CSVBlockPool?
    /// The expected size of the whole input, if known: the columns are reserved from it.
    private let sizeHint: Int?
    private var reserved = false
    /// Rows checked so far.
    private var rows = 0

    init(names: [String], errorNames: [String], parser: CSVBlockParser, sizeHint: Int?) {
        self.names = names
        self.errorNames = errorNames
        self.parser = parser
        self.sizeHint = sizeHint
        columns = parser.kinds.map(ColumnAccumulator.init)
        let sequential = parser.kinds.contains(.inferred)
        inferred = sequential ? parser.kinds.map { $0 == .inferred ? InferredColumn() : nil } : []
        pool = sequential || Parallel.threads < 2 ? nil : CSVBlockPool(parser: parser, maxInFlight: 2 * Parallel.threads)
        pool?.merge = { [weak self] fragment in try self?.check(fragment) }
    }

    /// Parses a block of whole records (the last block may end without a line end).
    func submit(_ block: [UInt8]) throws {
        guard let pool else {
            try check(block.withUnsafeBufferPointer { parser.parse($0, inferred: inferred) })
            return
        }
        try pool.start(block)
    }

    /// The rows of every block submitted so far (after waiting for them all).
    func rowsWhenDone() throws -> Int {
        try pool?.waitForAll()
        return rows
    }

    /// Waits for every block and returns the table (not yet checked against a schema).
    func finish() throws -> Table {
        _ = try rowsWhenDone()
        return try Table(
            columns: names.indices.map { k in
                inferred.isEmpty || inferred[k] == nil ? columns[k].build(name: names[k]) : inferred[k]!.build(name: names[k])
            })
    }

    /// The columns no block stored a missing value in (inferred columns are not tracked).
    var columnsWithoutMissing: Set<String> {
        Set(names.indices.filter { k in (inferred.isEmpty || inferred[k] == nil) && !columns[k].sawMissing }.map { names[$0] })
    }

    /// Appends a fragment's rows, or throws its first fault (or a categorical column's level
    /// overflow, if that comes first) with the row number it has in the whole document.
    private func check(_ fragment: CSVFragment) throws {
        var fault = fragment.fault
        for (k, column) in columns.enumerated() {
            guard let local = fragment.levels[k] else { continue }
            // Cells of the faulty row left of a faulty cell were stored, and count.
            var scanned = fragment.rows
            if case .rule(_, let faultColumn, _)? = fault, faultColumn > k { scanned += 1 }
            if let row = column.mergeLevels(
                local, codes: fragment.columns[k].codes, rows: scanned, maxLevels: parser.limits.maxCategoricalLevels)
            {
                let overflow = CSVFault.rule(row: row, column: k, rule: "at most \(parser.limits.maxCategoricalLevels) categories")
                if fault == nil || overflow.order < fault!.order { fault = overflow }
            }
        }
        if rows + (fault?.row ?? fragment.rows) > parser.limits.maxRows
            || (fault != nil && rows + fault!.row >= parser.limits.maxRows)
        {
            throw TrainingError(.malformedCSV, "more than \(parser.limits.maxRows) rows")
        }
        switch fault {
        case .rule(let row, let column, let rule)?:
            throw TrainingError(.schemaViolation, "\(errorNames[column]) row \(rows + row + 1) fails rule '\(rule)'")
        case .malformed(let row, let detail)?:
            throw TrainingError(.malformedCSV, "row \(rows + row + 1) \(detail)")
        case nil:
            break
        }
        rows += fragment.rows
        if !reserved, let sizeHint, fragment.rows > 0, fragment.byteCount > 0 {
            // Sized once, from the first block's density, so the columns are not copied as they grow.
            // The hint is only believed while the table it implies could fit in memory: a size
            // announced by someone else must not make the reader reserve more than that.
            reserved = true
            let blocks = Double(sizeHint) / Double(fragment.byteCount) * 1.02
            let rows = Double(fragment.rows) * blocks
            let keyBytes = columns.indices.map { k in
                parser.kinds[k] == .id ? Double(fragment.columns[k].ends[fragment.rows - 1]) * blocks : 0
            }
            let implied = rows * Double(columns.count * 16) + keyBytes.reduce(0, +)
            if implied < Double(ProcessInfo.processInfo.physicalMemory) / 2 {
                for (k, column) in columns.enumerated() { column.reserve(rows: Int(rows), keyBytes: Int(keyBytes[k])) }
            }
        }
        for (k, column) in columns.enumerated() { column.append(fragment.columns[k], rows: fragment.rows) }
    }
}

/// One column's cells from every checked fragment.
final class ColumnAccumulator {
    let kind: CSVColumnKind
    private var floats: [Float] = []
    private var integers: [Int64] = []
    private var codes: [Int32] = []
    private var levels: [String] = []
    private var index: [String: Int32] = [:]
    /// The global code of each level of the fragment being appended.
    private var remap: [Int32] = []
    private var keyBytes: [UInt8] = []
    private var keyEnds: [Int] = []
    private var keyHashes: [UInt64] = []
    /// Whether any fragment appended stored a missing value.
    private(set) var sawMissing = false

    init(kind: CSVColumnKind) {
        self.kind = kind
    }

    func reserve(rows: Int, keyBytes bytes: Int) {
        switch kind {
        case .float: floats.reserveCapacity(rows)
        case .integer, .boolean: integers.reserveCapacity(rows)
        case .categorical: codes.reserveCapacity(rows)
        case .id:
            keyBytes.reserveCapacity(bytes)
            keyEnds.reserveCapacity(rows)
            keyHashes.reserveCapacity(rows)
        case .inferred: break
        }
    }

    /// Adds a fragment's new categorical levels; returns the fragment row (among its first `rows`,
    /// whose codes are `codes`) where a level past `maxLevels` first appears, if one does.
    func mergeLevels(_ fragment: FragmentLevels, codes: UnsafeMutablePointer<Int32>, rows: Int, maxLevels: Int) -> Int? {
        remap.removeAll(keepingCapacity: true)
        for level in fragment.levels {
            if let code = index[level] {
                remap.append(code)
                continue
            }
            guard levels.count < maxLevels else {
                let overflowing = Int32(remap.count)
                if let row = (0..<rows).first(where: { codes[$0] == overflowing }) { return row }
                remap.append(-1)  // only in a faulty row, past its fault
                continue
            }
            index[level] = Int32(levels.count)
            remap.append(Int32(levels.count))
            levels.append(level)
        }
        return nil
    }

    /// Appends the fragment column's first `rows` cells (after `mergeLevels` for categorical ones).
    func append(_ column: FragmentColumn, rows: Int) {
        if column.sawMissing.pointee { sawMissing = true }
        switch kind {
        case .float: floats.append(contentsOf: UnsafeBufferPointer(start: column.floats, count: rows))
        case .integer, .boolean: integers.append(contentsOf: UnsafeBufferPointer(start: column.integers, count: rows))
        case .categorical:
            let remap = self.remap
            codes.append(contentsOf: UnsafeBufferPointer(start: column.codes, count: rows).lazy.map { $0 < 0 ? -1 : remap[Int($0)] })
        case .id:
            let base = keyBytes.count
            keyBytes.append(contentsOf: UnsafeBufferPointer(start: column.keyBytes, count: rows == 0 ? 0 : column.ends[rows - 1]))
            keyEnds.append(contentsOf: UnsafeBufferPointer(start: column.ends, count: rows).lazy.map { $0 + base })
            keyHashes.append(contentsOf: UnsafeBufferPointer(start: column.hashes, count: rows))
        case .inferred:
            break  // `InferredColumn` holds the cells
        }
    }

    func build(name: String) -> Column {
        switch kind {
        case .float: Column(name: name, type: .float, storage: .float(floats))
        case .integer, .boolean: Column(name: name, type: .integer, storage: .integer(integers))
        case .categorical: Column(name: name, type: .categorical, storage: .strings(codes: codes, levels: levels))
        case .id: Column(name: name, type: .id, storage: .keys(KeyColumn(bytes: keyBytes, ends: keyEnds, hashes: keyHashes)))
        case .inferred: preconditionFailure("inferred columns are built by InferredColumn")
        }
    }
}

/// Parses blocks on the global dispatch queue, at most `maxInFlight` outstanding (running, or
/// parsed and not yet merged), and merges their fragments in submission order through `merge` on
/// the parsing threads: whichever thread finds the next fragment ready merges it and every ready
/// one after it, and no thread waits for its turn. So the thread that feeds the blocks (in the
/// enclave, the one that also receives and decrypts them) only cuts blocks; appending the parsed
/// cells to the columns (copying them and faulting in the columns' pages) no longer holds it up
/// while the parsing threads idle.
final class CSVBlockPool: @unchecked Sendable {
    private let parser: CSVBlockParser
    private let maxInFlight: Int
    /// Appends a fragment to the table or throws its first fault; called for one fragment at a
    /// time, in submission order, and not after it threw.
    var merge: ((CSVFragment) throws -> Void)?
    private let condition = NSCondition()
    private var done: [Int: CSVFragment] = [:]
    private var submitted = 0
    private var merged = 0
    private var merging = false
    private var failure: (any Error)?

    init(parser: CSVBlockParser, maxInFlight: Int) {
        self.parser = parser
        self.maxInFlight = maxInFlight
    }

    /// Starts parsing `block` once fewer than `maxInFlight` are outstanding; throws the first
    /// fault merged so far.
    func start(_ block: [UInt8]) throws {
        let sequence = try condition.withLock {
            while failure == nil, submitted - merged >= maxInFlight { condition.wait() }
            if let failure { throw failure }
            submitted += 1
            return submitted - 1
        }
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            let fragment = block.withUnsafeBufferPointer { parser.parse($0) }
            condition.withLock { done[sequence] = fragment }
            mergeReady()
        }
    }

    /// Waits until every block started is merged; throws the first fault.
    func waitForAll() throws {
        try condition.withLock {
            while failure == nil, merged < submitted { condition.wait() }
            if let failure { throw failure }
        }
    }

    /// Merges the next fragments in order while they are ready and no other thread merges.
    private func mergeReady() {
        while true {
            let next: CSVFragment? = condition.withLock {
                guard !merging, failure == nil, let fragment = done.removeValue(forKey: merged) else { return nil }
                merging = true
                return fragment
            }
            guard let next else { return }
            var error: (any Error)?
            do { try merge?(next) } catch let thrown { error = thrown }
            condition.withLock {
                merging = false
                merged += 1
                if let error {
                    failure = error
                    done.removeAll()  // nothing after a fault is merged
                }
                condition.broadcast()
            }
        }
    }
}
