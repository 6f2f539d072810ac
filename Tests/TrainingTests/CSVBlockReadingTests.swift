import Foundation
import Testing

@testable import Training

/// The reader cuts its input into blocks of whole records, parses them on several threads and
/// merges them in order. Whatever the block size and however the input is fed, the table and the
/// first error must be exactly those of reading one record after another.
@Suite struct CSVBlockReadingTests {
    static let schema = TableSchema(columns: [
        .init(name: "id", type: .id), .init(name: "x", type: .float), .init(name: "n", type: .integer),
        .init(name: "b", type: .boolean), .init(name: "c", type: .categorical),
    ])

    /// What a generated document must read as.
    struct Expected {
        var ids: [String?] = []
        var xs: [Float] = []
        var ns: [Int64?] = []
        var bs: [Bool?] = []
        var cs: [String?] = []
    }

    /// A document using every feature of the format: quoted and escaped fields with commas and line
    /// ends inside, LF, CRLF and CR line ends, blank lines, every missing-value token.
    static func document(rows: Int, using generator: inout some RandomNumberGenerator) -> ([UInt8], Expected) {
        var expected = Expected()
        let ends = ["\n", "\r\n", "\r"]
        var text = "id,x,n,b,c" + ends.randomElement(using: &generator)!
        let missing = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
        let categories = ["plain", "with, comma", "with \"quote\"", "multi\nline", "cr\r\nlf", "x"]
        func field(_ value: String, forceQuotes: Bool = false) -> String {
            let needs = value.contains { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }
            guard needs || forceQuotes else { return value }
            return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        for row in 0..<rows {
            var cells: [String] = []
            if row % 17 == 3 {
                cells.append(missing.randomElement(using: &generator)!)
                expected.ids.append(nil)
            } else {
                let id = String(format: "%064x", UInt64.random(in: 0...UInt64.max, using: &generator)) + "-\(row)"
                cells.append(field(id, forceQuotes: row % 5 == 0))
                expected.ids.append(id)
            }
            if row % 11 == 0 {
                cells.append(missing.randomElement(using: &generator)!)
                expected.xs.append(.nan)
            } else {
                let x = Double.random(in: -1e4...1e4, using: &generator)
                cells.append(field(String(x), forceQuotes: row % 7 == 0))
                expected.xs.append(Float(x))
            }
            if row % 13 == 0 {
                cells.append("")
                expected.ns.append(nil)
            } else {
                let n = Int64.random(in: -1_000_000...1_000_000, using: &generator)
                cells.append((n >= 0 && row % 2 == 0 ? "+" : "") + String(n))
                expected.ns.append(n)
            }
            switch row % 5 {
            case 0: cells.append("NA"); expected.bs.append(nil)
            case 1: cells.append("TRUE"); expected.bs.append(true)
            case 2: cells.append("0"); expected.bs.append(false)
            case 3: cells.append("False"); expected.bs.append(false)
            default: cells.append("1"); expected.bs.append(true)
            }
            if row % 9 == 0 {
                cells.append("")
                expected.cs.append(nil)
            } else {
                let category = categories.randomElement(using: &generator)!
                cells.append(field(category))
                expected.cs.append(category)
            }
            text += cells.joined(separator: ",") + ends.randomElement(using: &generator)!
            if row % 23 == 0 { text += ends.randomElement(using: &generator)! }  // a blank line
        }
        return (Array(text.utf8), expected)
    }

    static func read(_ bytes: [UInt8], blockBytes: Int, limits: CSVLimits = CSVLimits(), pieces: Int? = nil,
                     using generator: inout some RandomNumberGenerator) throws -> Table {
        var reader = CSVTableReader(schema: schema, limits: limits)
        reader.blockBytes = blockBytes
        // The size hint only sizes buffers: right, far too small or far too large, nothing changes.
        reader.sizeHint = [nil, bytes.count, bytes.count / 50, bytes.count * 20, Int.max].randomElement(using: &generator)!
        var offset = 0
        while offset < bytes.count {
            let size = pieces.map { _ in Int.random(in: 1...(blockBytes * 3), using: &generator) } ?? bytes.count
            try reader.append(bytes[offset..<min(bytes.count, offset + size)])
            offset += size
        }
        return try reader.finish()
    }

    @Test(arguments: [1, 2, 3, 7, 64, 1000, 1 << 20])
    func anyBlockSizeReadsTheDocumentExactly(blockBytes: Int) throws {
        var generator = SystemRandomNumberGenerator()
        let (bytes, expected) = Self.document(rows: 3000, using: &generator)
        for pieces in [nil, 1] as [Int?] {
            let table = try Self.read(bytes, blockBytes: blockBytes, pieces: pieces, using: &generator)
            #expect(table.rowCount == expected.ids.count)
            let ids = try table.column(named: "id"), x = try table.column(named: "x").floatValues()
            let n = try table.column(named: "n"), b = try table.column(named: "b"), c = try table.column(named: "c")
            #expect(ids.type == .id && c.type == .categorical && b.type == .integer)
            var mismatches: [String] = []
            for row in 0..<table.rowCount {
                if ids.keyString(row) != expected.ids[row] { mismatches.append("id \(row)") }
                if !(x[row] == expected.xs[row] || (x[row].isNaN && expected.xs[row].isNaN)) { mismatches.append("x \(row)") }
                if n.keyString(row).flatMap({ Int64($0) }) != expected.ns[row] { mismatches.append("n \(row)") }
                if b.keyString(row).map({ $0 == "1" }) != expected.bs[row] { mismatches.append("b \(row)") }
                if c.keyString(row) != expected.cs[row] { mismatches.append("c \(row)") }
            }
            #expect(mismatches.isEmpty, "blocks of \(blockBytes) bytes: \(mismatches.prefix(5))")
            // Ids keep the hashes the join relies on.
            guard case .keys(let keys) = ids.storage else {
                Issue.record("ids should be stored as keys")
                return
            }
            for row in 0..<keys.count {
                let hash = keys.withKey(row) { $0.isEmpty ? 0 : KeyColumn.hash($0) }
                if hash != keys.hashes[row] { mismatches.append("hash \(row)") }
            }
            #expect(mismatches.isEmpty)
        }
    }

    /// Faults of every kind planted at random rows: the first one in input order is reported, with
    /// its row number, whatever the blocks.
    @Test(arguments: [1, 5, 64, 700, 1 << 20])
    func theFirstFaultIsNamedWhateverTheBlocks(blockBytes: Int) throws {
        var generator = SystemRandomNumberGenerator()
        let rows = 400
        var lines = (0..<rows).map { row in "k\(row),\(Double(row) / 3),\(row),true,cat\(row % 4)" }
        let faults: [(line: String, message: String, code: TrainingError.Code)] = [
            ("k,oops,1,true,a", "column 'x' row R fails rule 'type float'", .schemaViolation),
            ("k,1,1.5,true,a", "column 'n' row R fails rule 'type integer'", .schemaViolation),
            ("k,1,1,maybe,a", "column 'b' row R fails rule 'type boolean'", .schemaViolation),
            ("k,1,1,true", "row R has 4 fields; the header has 5", .malformedCSV),
            ("k,1,1,true,a,extra", "row R has 6 fields; the header has 5", .malformedCSV),
            ("k,x\"y,1,true,a", "row R has a quote inside an unquoted field", .malformedCSV),
            ("k,\"1\"2,1,true,a", "row R has text after a closing quote", .malformedCSV),
            ("k,bad,1,true,a,extra", "row R has 6 fields; the header has 5", .malformedCSV),
        ]
        for _ in 0..<12 {
            var planted = lines
            let first = Int.random(in: 0..<rows - 1, using: &generator)
            let second = Int.random(in: first + 1..<rows, using: &generator)
            let fault = faults.randomElement(using: &generator)!
            planted[first] = fault.line
            planted[second] = faults.randomElement(using: &generator)!.line
            let bytes = Array(("id,x,n,b,c\n" + planted.joined(separator: "\n") + "\n").utf8)
            let message = fault.message.replacingOccurrences(of: "R", with: String(first + 1))
            #expect(throws: TrainingError(fault.code, message), "blocks of \(blockBytes) bytes, fault at \(first)") {
                try Self.read(bytes, blockBytes: blockBytes, pieces: 1, using: &generator)
            }
        }
        lines[rows - 1] = "k,1,1,true,\"never closed"
        let bytes = Array(("id,x,n,b,c\n" + lines.joined(separator: "\n")).utf8)
        #expect(throws: TrainingError(.malformedCSV, "row \(rows) has an unterminated quoted field")) {
            try Self.read(bytes, blockBytes: blockBytes, using: &generator)
        }
    }

    /// A categorical column's level limit counts levels across blocks: the row where the first
    /// level past the limit appears is named, unless an earlier fault comes first.
    @Test(arguments: [3, 40, 1 << 20])
    func categoricalLevelLimitSpansBlocks(blockBytes: Int) throws {
        var generator = SystemRandomNumberGenerator()
        var limits = CSVLimits()
        limits.maxCategoricalLevels = 30
        // Levels repeat, then level 31 first appears at row 200 (1-based 201).
        var lines = (0..<300).map { row in "k,1,1,true,level\(row < 200 ? row % 30 : row % 40)" }
        lines[200] = "k,1,1,true,level35"
        var bytes = Array(("id,x,n,b,c\n" + lines.joined(separator: "\n")).utf8)
        #expect(throws: TrainingError(.schemaViolation, "column 'c' row 201 fails rule 'at most 30 categories'")) {
            try Self.read(bytes, blockBytes: blockBytes, limits: limits, pieces: 1, using: &generator)
        }
        lines[150] = "k,1,1,nope,level1"
        bytes = Array(("id,x,n,b,c\n" + lines.joined(separator: "\n")).utf8)
        #expect(throws: TrainingError(.schemaViolation, "column 'b' row 151 fails rule 'type boolean'")) {
            try Self.read(bytes, blockBytes: blockBytes, limits: limits, pieces: 1, using: &generator)
        }
        // In the same row, the categorical cell left of a bad cell comes first.
        let reordered = TableSchema(columns: [
            .init(name: "c", type: .categorical), .init(name: "x", type: .float),
        ])
        let text = "c,x\n" + (0..<300).map { row in row == 200 ? "level35,oops" : "level\(row % 30),1" }.joined(separator: "\n")
        #expect(throws: TrainingError(.schemaViolation, "column 'c' row 201 fails rule 'at most 30 categories'")) {
            var reader = CSVTableReader(schema: reordered, limits: limits)
            reader.blockBytes = blockBytes
            try reader.append(Array(text.utf8))
            _ = try reader.finish()
        }
    }

    /// The size hint comes from whoever announces the input (the server, for a dataset): an absurd
    /// one is ignored rather than reserved.
    @Test func anAbsurdSizeHintIsIgnored() throws {
        var reader = CSVTableReader(schema: Self.schema)
        reader.sizeHint = Int.max
        reader.blockBytes = 64
        try reader.append(Array(("id,x,n,b,c\n" + (0..<50).map { "k\($0),1,2,true,a\n" }.joined()).utf8))
        #expect(try reader.finish().rowCount == 50)
    }

    @Test func rowLimitCountsEveryBlock() throws {
        var generator = SystemRandomNumberGenerator()
        var limits = CSVLimits()
        limits.maxRows = 100
        let text = "id,x,n,b,c\n" + (0..<101).map { "k\($0),1,1,true,a" }.joined(separator: "\n")
        #expect(throws: TrainingError(.malformedCSV, "more than 100 rows")) {
            try Self.read(Array(text.utf8), blockBytes: 50, limits: limits, pieces: 1, using: &generator)
        }
        let fits = "id,x,n,b,c\n" + (0..<100).map { "k\($0),1,1,true,a" }.joined(separator: "\n")
        #expect(try Self.read(Array(fits.utf8), blockBytes: 50, limits: limits, using: &generator).rowCount == 100)
    }

    /// An incomplete record longer than the limit is refused while the input is still arriving,
    /// with the row number it would have had.
    @Test func overlongRecordIsNamedByItsRow() throws {
        var limits = CSVLimits()
        limits.maxRecordBytes = 200
        var reader = CSVTableReader(schema: Self.schema, limits: limits)
        reader.blockBytes = 64
        try reader.append(Array(("id,x,n,b,c\n" + (0..<30).map { "k\($0),1,1,true,a\n" }.joined()).utf8))
        #expect(throws: TrainingError(.malformedCSV, "row 31 is longer than 200 bytes")) {
            try reader.append(Array(("k,1,1,true,\"" + String(repeating: "y", count: 300)).utf8))
        }
    }

    /// Numbers are converted while the field is scanned; every form must read exactly as the
    /// single-cell parsers (which match strtod) read it, at the end of a record or before a comma.
    @Test func numbersReadInOnePassEqualTheCellParsers() throws {
        let floats = ["0", "-0", "+5", "7.", ".5", "1e5", "1E-5", "-2.5e+3", "0.1", "123456789012345",
                      "1234567890123456", "12345678901234567890123", "0.000000000000000000001", "1e22", "1e23",
                      "3.4028235e38", "00012.5000", "9007199254740993", "-0.770151", "4.9e-324"]
        let integers = ["0", "-0", "+7", "42", "-42", "999999999999999999", "1000000000000000000",
                        "9223372036854775807", "-9223372036854775807", "00000000000000000012"]
        var text = "f,i\n"
        for (index, value) in floats.enumerated() { text += "\(value),\(integers[index % integers.count])\n" }
        let schema = TableSchema(columns: [.init(name: "f", type: .float), .init(name: "i", type: .integer)])
        for blockBytes in [3, 1 << 20] {
            var reader = CSVTableReader(schema: schema)
            reader.blockBytes = blockBytes
            try reader.append(Array(text.utf8))
            let table = try reader.finish()
            let f = try table.column(named: "f").floatValues()
            guard case .integer(let i) = try table.column(named: "i").storage else {
                Issue.record("i should be an integer column")
                return
            }
            for (row, value) in floats.enumerated() {
                let expected = Array(value.utf8).withUnsafeBufferPointer { CSVValue.parseDouble($0) }.map { Float($0) }
                #expect(f[row] == expected, "\(value)")
                let integer = integers[row % integers.count]
                #expect(i[row] == Array(integer.utf8).withUnsafeBufferPointer { CSVValue.parseInt($0) }, "\(integer)")
            }
        }
        for bad in ["1e", "1x", "--1", "1.2.3", "0x10", "inf", "1e5e5"] {
            #expect(throws: TrainingError(.schemaViolation, "column 'f' row 1 fails rule 'type float'"), "\(bad)") {
                try CSVTableReader.read(Array("f,i\n\(bad),1\n".utf8), schema: schema)
            }
        }
        for bad in ["9223372036854775808", "-9223372036854775808", "1.5", "+", "-", "12a", "1e3"] {
            #expect(throws: TrainingError(.schemaViolation, "column 'i' row 1 fails rule 'type integer'"), "\(bad)") {
                try CSVTableReader.read(Array("f,i\n1,\(bad)\n".utf8), schema: schema)
            }
        }
    }

    /// Buffers are sized by what a block can hold: 4 MiB of blank lines under a 1024-column header
    /// must not reserve 1024 columns × a million rows per block (that is 4 GiB of address space a
    /// block, which the kernel only hands out lazily: the process's peak virtual size shows it).
    @Test func wideTablesAndBlankLinesStayCheap() throws {
        func peakVirtualBytes() -> Int {
            let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmPeak:") } ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            return (fields.count > 1 ? Int(fields[1]) ?? 0 : 0) * 1024
        }
        let width = 1024
        let names = (0..<width).map { "c\($0)" }
        let schema = TableSchema(columns: names.map { .init(name: $0, type: .float) })
        var reader = CSVTableReader(schema: schema)
        try reader.append(Array((names.joined(separator: ",") + "\n").utf8))
        let before = peakVirtualBytes()
        #expect(before > 0)
        try reader.append([UInt8](repeating: UInt8(ascii: "\n"), count: 4 << 20))
        let row = (0..<width).map { String($0) }.joined(separator: ",") + "\n"
        try reader.append(Array((row + row).utf8))
        let table = try reader.finish()
        #expect(peakVirtualBytes() - before < 1 << 30, "blank lines reserved cells for rows they cannot hold")
        #expect(table.rowCount == 2)
        #expect(try table.column(named: "c1023").floatValues() == [1023, 1023])
    }

    /// A block's buffers are first sized from the line ends of its first 4 KiB. The count must be
    /// exact at every alignment and length, for bytes that differ from the line ends in one bit only
    /// (0x8A, 0x0B, 0x1D, …).
    @Test func lineEndsAreCountedExactly() {
        var generator = SystemRandomNumberGenerator()
        let near: [UInt8] = [0x0A, 0x0D, 0x8A, 0x8D, 0x0B, 0x0E, 0x1A, 0x1D, 0x00, 0xFF, 0x2C, 0x0C, 0x09]
        let bytes = (0..<4099).map { _ in near.randomElement(using: &generator)! }
        bytes.withUnsafeBufferPointer { all in
            for start in 0..<9 {
                for length in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, all.count - start] {
                    let part = UnsafeBufferPointer(rebasing: all[start..<start + length])
                    let expected = part.reduce(0) { $0 + ($1 == 0x0A || $1 == 0x0D ? 1 : 0) }
                    #expect(CSVBlockParser.lineEndCount(part) == expected, "start \(start), length \(length)")
                }
            }
        }
    }

    /// A block's buffers are sized from its first 4 KiB: a block whose later records are much
    /// shorter holds many more rows than that, and its buffers grow as it is parsed (every column
    /// kind, the rows stored before each growth kept).
    @Test func aBlockDenserThanItsStartGrowsItsBuffers() throws {
        let schema = TableSchema(columns: [
            .init(name: "id", type: .id), .init(name: "x", type: .float), .init(name: "n", type: .integer),
            .init(name: "b", type: .boolean), .init(name: "c", type: .categorical),
        ])
        var text = "id,x,n,b,c\n"
        for row in 0..<8 { text += String(repeating: "k", count: 1000) + "\(row),\(row).5,\(row),true,wide\n" }
        let rows = 30_000
        for row in 8..<rows { text += "\(row),\(row).5,\(row),\(row % 2 == 0),c\(row % 3)\n" }
        let bytes = Array(text.utf8)
        try #require(bytes.count < 1 << 20, "one block")
        let table = try CSVTableReader.read(bytes, schema: schema)
        #expect(table.rowCount == rows)
        let x = try table.column(named: "x").floatValues(), n = try table.column(named: "n")
        let id = try table.column(named: "id"), c = try table.column(named: "c"), b = try table.column(named: "b")
        for row in [0, 7, 8, 9, 1000, 4095, 4096, 20_000, rows - 1] {
            #expect(x[row] == Float(row) + 0.5)
            #expect(n.keyString(row) == String(row))
            #expect(id.keyString(row) == (row < 8 ? String(repeating: "k", count: 1000) + String(row) : String(row)))
            #expect(c.keyString(row) == (row < 8 ? "wide" : "c\(row % 3)"))
            #expect(b.keyString(row) == (row < 8 || row % 2 == 0 ? "1" : "0"))
        }
    }

    /// The "no missing values" rule trusts what the parser saw instead of scanning the columns: a
    /// single missing cell of any kind, in any block (quoted, or as any missing-value token), is
    /// still found, and a table without one passes.
    @Test(arguments: [0, 1, 2, 3, 4])
    func oneMissingCellInAnyBlockBreaksTheNoMissingRule(column: Int) throws {
        let names = ["id", "x", "n", "b", "c"]
        let schema = TableSchema(columns: [
            .init(name: "id", type: .id, allowsMissing: false), .init(name: "x", type: .float, allowsMissing: false),
            .init(name: "n", type: .integer, allowsMissing: false), .init(name: "b", type: .boolean, allowsMissing: false),
            .init(name: "c", type: .categorical, allowsMissing: false),
        ])
        var generator = SystemRandomNumberGenerator()
        let rows = 3000, gap = Int.random(in: 100..<rows, using: &generator)
        let token = ["", "NA", "null", "\"\"", "\"NaN\""].randomElement(using: &generator)!
        func document(missing: Bool) -> [UInt8] {
            var text = names.joined(separator: ",") + "\n"
            for row in 0..<rows {
                var cells = ["k\(row)", "\(row).25", "\(row)", row % 2 == 0 ? "true" : "false", "c\(row % 4)"]
                if missing, row == gap { cells[column] = token }
                text += cells.joined(separator: ",") + "\n"
            }
            return Array(text.utf8)
        }
        for blockBytes in [256, 1 << 20] {
            var reader = CSVTableReader(schema: schema)
            reader.blockBytes = blockBytes
            try reader.append(document(missing: false))
            #expect(try reader.finish().rowCount == rows)
            var broken = CSVTableReader(schema: schema)
            broken.blockBytes = blockBytes
            try broken.append(document(missing: true))
            #expect("row \(gap), token \(token)", performing: { try broken.finish() }, throws: { error in
                (error as? TrainingError)?.message == "column '\(names[column])' fails rule 'no missing values'"
            })
        }
    }
}
