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
/// the empty field and `NA`, `N/A`, `NaN`, `nan`, `null`, `NULL`, `None`. Memory is the table
/// itself plus one incomplete record.
public struct CSVTableReader {
    private let schema: TableSchema?
    private let overrides: [String: ColumnType]
    private let limits: CSVLimits
    private var pending: [UInt8] = []
    private var header: [String]? = nil
    private var builders: [ColumnBuilder] = []
    private var rows = 0
    private var sawBOMCheck = false
    private var fieldStarts: [Int] = []
    private var fieldEnds: [Int] = []
    private var fieldQuoted: [Bool] = []
    private var scratch: [UInt8] = []

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
        let consumed = try parse(final: false)
        if consumed > 0 { pending.removeFirst(consumed) }
        if pending.count > limits.maxRecordBytes {
            throw TrainingError(.malformedCSV, "row \(rows + 1) is longer than \(limits.maxRecordBytes) bytes")
        }
    }

    /// Ends the input and returns the table; the schema (if any) is validated.
    public mutating func finish() throws -> Table {
        sawBOMCheck = true
        if !pending.isEmpty {
            if pending.count >= 3, pending[0] == 0xEF, pending[1] == 0xBB, pending[2] == 0xBF, header == nil {
                pending.removeFirst(3)
            }
            _ = try parse(final: true)
            pending = []
        }
        guard let header else { throw TrainingError(.malformedCSV, "no header row") }
        var columns: [Column] = []
        for (index, name) in header.enumerated() { columns.append(builders[index].build(name: name)) }
        let table = try Table(columns: columns)
        try schema?.validate(table)
        return table
    }

    /// Parses complete records from `pending`; returns the bytes consumed.
    private mutating func parse(final: Bool) throws -> Int {
        let buffer = pending
        return try buffer.withUnsafeBufferPointer { buf -> Int in
            var position = 0
            while position < buf.count {
                guard let next = try splitRecord(buf, from: position, final: final) else { break }
                let isBlank = fieldStarts.count == 1 && !fieldQuoted[0] && fieldEnds[0] == fieldStarts[0]
                if !isBlank { try handleRecord(buf) }
                position = next
            }
            return position
        }
    }

    /// Splits one record into field ranges; returns the index after it, or nil if incomplete.
    private mutating func splitRecord(_ buf: UnsafeBufferPointer<UInt8>, from start: Int, final: Bool) throws -> Int? {
        fieldStarts.removeAll(keepingCapacity: true)
        fieldEnds.removeAll(keepingCapacity: true)
        fieldQuoted.removeAll(keepingCapacity: true)
        var i = start
        let n = buf.count
        while true {
            if fieldStarts.count >= limits.maxColumns {
                throw TrainingError(.malformedCSV, "row \(rows + 1) has more than \(limits.maxColumns) fields")
            }
            if i < n, buf[i] == UInt8(ascii: "\"") {
                // Quoted field: runs to the closing quote; "" is an escaped quote.
                var j = i + 1
                var closed = false
                while j < n {
                    if buf[j] == UInt8(ascii: "\"") {
                        if j + 1 < n, buf[j + 1] == UInt8(ascii: "\"") {
                            j += 2
                            continue
                        }
                        if j + 1 == n, !final { return nil }  // might be the first half of ""
                        closed = true
                        break
                    }
                    j += 1
                }
                if !closed {
                    if final { throw TrainingError(.malformedCSV, "row \(rows + 1) has an unterminated quoted field") }
                    return nil
                }
                if j - i - 1 > limits.maxFieldBytes {
                    throw TrainingError(.malformedCSV, "row \(rows + 1) has a field longer than \(limits.maxFieldBytes) bytes")
                }
                fieldStarts.append(i + 1)
                fieldEnds.append(j)
                fieldQuoted.append(true)
                i = j + 1
                if i == n {
                    if final { return n }
                    return nil
                }
                switch buf[i] {
                case UInt8(ascii: ","): i += 1; continue
                case UInt8(ascii: "\n"): return i + 1
                case UInt8(ascii: "\r"):
                    if i + 1 < n { return buf[i + 1] == UInt8(ascii: "\n") ? i + 2 : i + 1 }
                    return final ? n : nil
                default:
                    throw TrainingError(.malformedCSV, "row \(rows + 1) has text after a closing quote")
                }
            }
            // Unquoted field.
            var j = i
            while j < n {
                let byte = buf[j]
                if byte == UInt8(ascii: ",") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") { break }
                if byte == UInt8(ascii: "\"") {
                    throw TrainingError(.malformedCSV, "row \(rows + 1) has a quote inside an unquoted field")
                }
                j += 1
            }
            if j - i > limits.maxFieldBytes {
                throw TrainingError(.malformedCSV, "row \(rows + 1) has a field longer than \(limits.maxFieldBytes) bytes")
            }
            if j == n {
                guard final else { return nil }
                fieldStarts.append(i)
                fieldEnds.append(j)
                fieldQuoted.append(false)
                return n
            }
            fieldStarts.append(i)
            fieldEnds.append(j)
            fieldQuoted.append(false)
            switch buf[j] {
            case UInt8(ascii: ","): i = j + 1
            case UInt8(ascii: "\n"): return j + 1
            default:  // \r
                if j + 1 < n { return buf[j + 1] == UInt8(ascii: "\n") ? j + 2 : j + 1 }
                return final ? n : nil
            }
        }
    }

    private mutating func handleRecord(_ buf: UnsafeBufferPointer<UInt8>) throws {
        let count = fieldStarts.count
        guard let header else {
            var names: [String] = []
            for k in 0..<count {
                let name = fieldString(buf, k)
                if name.isEmpty { throw TrainingError(.malformedCSV, "header field \(k + 1) is empty") }
                if names.contains(name) { throw TrainingError(.unknownColumn, "column '\(name)' appears more than once") }
                names.append(name)
            }
            self.header = names
            builders = names.map { name in
                if let type = overrides[name] ?? schema?.type(of: name) {
                    return ColumnBuilder(declared: type)
                }
                return ColumnBuilder(declared: nil)
            }
            return
        }
        guard count == header.count else {
            throw TrainingError(.malformedCSV, "row \(rows + 1) has \(count) fields; the header has \(header.count)")
        }
        guard rows < limits.maxRows else { throw TrainingError(.malformedCSV, "more than \(limits.maxRows) rows") }
        for k in 0..<count {
            let start = fieldStarts[k], end = fieldEnds[k]
            let field: UnsafeBufferPointer<UInt8>
            if fieldQuoted[k], (start..<end).contains(where: { buf[$0] == UInt8(ascii: "\"") }) {
                scratch.removeAll(keepingCapacity: true)
                var p = start
                while p < end {
                    scratch.append(buf[p])
                    p += buf[p] == UInt8(ascii: "\"") ? 2 : 1
                }
                let unescaped = scratch
                try unescaped.withUnsafeBufferPointer { try add($0, column: k) }
                continue
            }
            field = UnsafeBufferPointer(rebasing: buf[start..<end])
            try add(field, column: k)
        }
        rows += 1
    }

    private mutating func add(_ field: UnsafeBufferPointer<UInt8>, column k: Int) throws {
        if let failedRule = builders[k].append(field, rowsBefore: rows, maxLevels: limits.maxCategoricalLevels) {
            let name = header?[k] ?? "\(k + 1)"
            throw TrainingError(.schemaViolation, "column '\(name)' row \(rows + 1) fails rule '\(failedRule)'")
        }
    }

    private func fieldString(_ buf: UnsafeBufferPointer<UInt8>, _ k: Int) -> String {
        var bytes = Array(buf[fieldStarts[k]..<fieldEnds[k]])
        if fieldQuoted[k] {
            var out: [UInt8] = []
            var p = 0
            while p < bytes.count {
                out.append(bytes[p])
                p += bytes[p] == UInt8(ascii: "\"") ? 2 : 1
            }
            bytes = out
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Accumulates one column's cells while parsing. A struct mutated in place inside the reader's
/// array: no reference counting or dynamic exclusivity checks per cell (they dominated parsing).
struct ColumnBuilder {
    enum Kind { case float, integer, strings }

    let declared: ColumnType?
    private(set) var kind: Kind
    private var floats: [Float] = []
    private var integers: [Int64] = []
    private var codes: [Int32] = []
    private var levels: [String] = []
    private var index: [String: Int32] = [:]

    init(declared: ColumnType?) {
        self.declared = declared
        switch declared {
        case nil, .float?: kind = .float
        case .integer?, .boolean?: kind = .integer
        case .categorical?, .id?: kind = .strings
        }
    }

    /// Appends a cell; returns the name of the rule it broke, if any.
    mutating func append(_ field: UnsafeBufferPointer<UInt8>, rowsBefore: Int, maxLevels: Int) -> String? {
        let missing = CSVValue.isMissing(field)
        switch kind {
        case .float:
            if missing {
                floats.append(.nan)
                return nil
            }
            if let value = CSVValue.parseDouble(field), value.isFinite {
                floats.append(Float(value))
                return nil
            }
            if declared == .float { return "type float" }
            // An inferred float column meets text: it becomes categorical.
            codes.reserveCapacity(floats.count + 1)
            for value in floats {
                if value.isNaN {
                    codes.append(-1)
                    continue
                }
                let text = value.description
                if let code = index[text] {
                    codes.append(code)
                } else {
                    index[text] = Int32(levels.count)
                    codes.append(Int32(levels.count))
                    levels.append(text)
                }
            }
            floats = []
            kind = .strings
            return append(field, rowsBefore: rowsBefore, maxLevels: maxLevels)
        case .integer:
            if missing {
                integers.append(Column.missingInteger)
            } else if declared == .boolean {
                guard let value = CSVValue.parseBoolean(field) else { return "type boolean" }
                integers.append(value ? 1 : 0)
            } else if let value = CSVValue.parseInt(field), value != Column.missingInteger {
                integers.append(value)
            } else {
                return "type integer"
            }
            return nil
        case .strings:
            if missing {
                codes.append(-1)
                return nil
            }
            let text = String(decoding: field, as: UTF8.self)
            if declared == .id {
                // Ids are matched (join) or echoed (scores), never counted as levels: no interning.
                codes.append(Int32(levels.count))
                levels.append(text)
                return nil
            }
            if let code = index[text] {
                codes.append(code)
                return nil
            }
            if levels.count >= maxLevels { return "at most \(maxLevels) categories" }
            index[text] = Int32(levels.count)
            codes.append(Int32(levels.count))
            levels.append(text)
            return nil
        }
    }

    func build(name: String) -> Column {
        switch kind {
        case .float: return Column(name: name, type: .float, storage: .float(floats))
        case .integer: return Column(name: name, type: .integer, storage: .integer(integers))
        case .strings:
            return Column(
                name: name, type: declared == .id ? .id : .categorical, storage: .strings(codes: codes, levels: levels))
        }
    }
}

/// Parsing of single CSV cells.
enum CSVValue {
    private static let booleanWords: [([UInt8], Bool)] = [(Array("true".utf8), true), (Array("false".utf8), false)]

    /// `true`/`false` in any letter case, or `1`/`0`.
    static func parseBoolean(_ field: UnsafeBufferPointer<UInt8>) -> Bool? {
        if field.count == 1 {
            switch field[0] {
            case UInt8(ascii: "1"): return true
            case UInt8(ascii: "0"): return false
            default: return nil
            }
        }
        for (word, value) in booleanWords where word.count == field.count {
            // `| 0x20` lower-cases ASCII letters; other bytes cannot match a letter after it.
            if zip(word, field).allSatisfy({ $0 == $1 | 0x20 }) { return value }
        }
        return nil
    }

    private static let missingTokens: [[UInt8]] = ["NA", "N/A", "NaN", "nan", "null", "NULL", "None"].map {
        Array($0.utf8)
    }

    static func isMissing(_ field: UnsafeBufferPointer<UInt8>) -> Bool {
        if field.isEmpty { return true }
        if field.count > 4 { return false }
        for token in missingTokens where token.count == field.count && token.elementsEqual(field) { return true }
        return false
    }

    static func parseInt(_ field: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard !field.isEmpty, field.count <= 20 else { return nil }
        return Int64(String(decoding: field, as: UTF8.self))
    }

    private static let powersOfTen: [Double] = (0...22).map { Double("1e\($0)")! }

    /// Parses a decimal number with correct rounding (Clinger's fast path, else the standard
    /// library), the same double that numpy reads from the same text.
    static func parseDouble(_ field: UnsafeBufferPointer<UInt8>) -> Double? {
        let n = field.count
        guard n > 0, n <= 64 else { return n == 0 ? nil : slowParse(field) }
        var i = 0
        var negative = false
        if field[0] == UInt8(ascii: "-") || field[0] == UInt8(ascii: "+") {
            negative = field[0] == UInt8(ascii: "-")
            i = 1
        }
        var mantissa: UInt64 = 0
        var digits = 0
        var exponent = 0
        var sawDigit = false
        while i < n, field[i] &- 48 < 10 {
            sawDigit = true
            if mantissa != 0 || field[i] != 48 { digits += 1 }
            if digits <= 19 { mantissa = mantissa &* 10 &+ UInt64(field[i] &- 48) } else { exponent += 1 }
            i += 1
        }
        if i < n, field[i] == UInt8(ascii: ".") {
            i += 1
            while i < n, field[i] &- 48 < 10 {
                sawDigit = true
                if mantissa != 0 || field[i] != 48 { digits += 1 }
                if digits <= 19 {
                    mantissa = mantissa &* 10 &+ UInt64(field[i] &- 48)
                    exponent -= 1
                }
                i += 1
            }
        }
        guard sawDigit else { return slowParse(field) }
        if i < n, field[i] == UInt8(ascii: "e") || field[i] == UInt8(ascii: "E") {
            i += 1
            var expNegative = false
            if i < n, field[i] == UInt8(ascii: "-") || field[i] == UInt8(ascii: "+") {
                expNegative = field[i] == UInt8(ascii: "-")
                i += 1
            }
            var e = 0
            var sawExpDigit = false
            while i < n, field[i] &- 48 < 10 {
                sawExpDigit = true
                if e < 100_000 { e = e * 10 + Int(field[i] &- 48) }
                i += 1
            }
            guard sawExpDigit else { return nil }
            exponent += expNegative ? -e : e
        }
        guard i == n else { return slowParse(field) }
        if digits <= 15, exponent >= -22, exponent <= 22 {
            var value = Double(mantissa)
            value = exponent < 0 ? value / powersOfTen[-exponent] : value * powersOfTen[exponent]
            return negative ? -value : value
        }
        return slowParse(field)
    }

    private static func slowParse(_ field: UnsafeBufferPointer<UInt8>) -> Double? {
        guard field.count <= 400 else { return nil }
        let text = String(decoding: field, as: UTF8.self)
        // Only plain decimal syntax: no hex floats, no "inf"/"nan" words.
        guard text.utf8.allSatisfy({ $0 &- 48 < 10 || $0 == 46 || $0 == 43 || $0 == 45 || $0 == 101 || $0 == 69 }) else {
            return nil
        }
        return Double(text)
    }
}
