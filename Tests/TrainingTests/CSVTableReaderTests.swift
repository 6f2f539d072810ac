import Foundation
import Testing

@testable import Training

@Suite struct CSVTableReaderTests {
    let document = """
        id,age,city,score,note
        a1,34,"Paris",1.5,"said ""hi"", left"
        a2,,Lyon,NA,plain
        a3,51,"Paris",-2e-3,\r
        a4,29,Nice,0.25,"multi
        line"

        """

    @Test func infersTypesAndMissingValues() throws {
        let table = try CSVTableReader.read(Array(document.utf8), typeOverrides: ["id": .id])
        #expect(table.rowCount == 4)
        #expect(table.columnNames == ["id", "age", "city", "score", "note"])
        #expect(try table.column(named: "id").type == .id)
        let age = try table.column(named: "age")
        #expect(age.type == .float)
        #expect(age.floatValues()[0] == 34)
        #expect(age.isMissing(1))
        let city = try table.column(named: "city")
        guard case .strings(let codes, let levels) = city.storage else {
            Issue.record("city should be categorical")
            return
        }
        #expect(city.type == .categorical)
        #expect(codes.map { levels[Int($0)] } == ["Paris", "Lyon", "Paris", "Nice"])
        let score = try table.column(named: "score").floatValues()
        #expect(score[0] == 1.5 && score[1].isNaN && score[2] == Float(-0.002) && score[3] == 0.25)
        guard case .strings(let noteCodes, let noteLevels) = try table.column(named: "note").storage else {
            Issue.record("note should be text")
            return
        }
        #expect(noteLevels[Int(noteCodes[0])] == "said \"hi\", left")
        #expect(noteCodes[2] == -1)
        #expect(noteLevels[Int(noteCodes[3])] == "multi\nline")
    }

    /// The same table whatever the chunking: whole, byte by byte, and split at every offset.
    @Test func chunkingDoesNotChangeTheTable() throws {
        let bytes = Array(document.utf8)
        let whole = try CSVTableReader.read(bytes)
        func fingerprint(_ table: Table) -> String {
            table.columns.map { column in
                "\(column.name):\(column.type):" + (0..<table.rowCount).map { row in
                    column.isMissing(row) ? "-" : "\(column.doubleValues()[row])"
                }.joined(separator: ",")
            }.joined(separator: "|")
        }
        var byteByByte = CSVTableReader()
        for byte in bytes { try byteByByte.append([byte]) }
        #expect(fingerprint(try byteByByte.finish()) == fingerprint(whole))
        for offset in 0...bytes.count {
            var reader = CSVTableReader()
            try reader.append(bytes[..<offset])
            try reader.append(bytes[offset...])
            #expect(fingerprint(try reader.finish()) == fingerprint(whole), "split at \(offset)")
        }
    }

    /// Ten thousand rows with every column type give the same table whole and fed in random small
    /// pieces, and a schema violation names the first failing cell in row order — the earliest row,
    /// then the leftmost column — wherever it falls.
    @Test func largeInputInRandomPiecesMatchesWholeAndReportsTheFirstViolation() throws {
        var generator = SystemRandomNumberGenerator()
        var text = "id,x,n,c,q\n"
        for row in 0..<10_000 {
            let x = Double.random(in: -1e6...1e6, using: &generator)
            let missing = row % 97 == 0
            text += "id-\(row),\(missing ? "" : String(x)),\(row % 13),cat\(row % 7),\"a \"\"\(row % 5)\"\"\"\n"
        }
        let bytes = Array(text.utf8)
        let schema = TableSchema(columns: [
            .init(name: "id", type: .id, allowsMissing: false), .init(name: "x", type: .float),
            .init(name: "n", type: .integer, allowsMissing: false), .init(name: "c", type: .categorical),
            .init(name: "q", type: .categorical),
        ])
        func fingerprint(_ table: Table) -> String {
            table.columns.map { column in
                "\(column.name):\(column.type):" + (0..<table.rowCount).map { row in
                    column.isMissing(row) ? "-" : (column.keyString(row) ?? "\(column.doubleValues()[row])")
                }.joined(separator: ",")
            }.joined(separator: "|")
        }
        let whole = try CSVTableReader.read(bytes, schema: schema)
        #expect(whole.rowCount == 10_000)
        var small = CSVTableReader(schema: schema)
        var offset = 0
        while offset < bytes.count {
            let size = Int.random(in: 1...40, using: &generator)
            try small.append(bytes[offset..<min(bytes.count, offset + size)])
            offset += size
        }
        #expect(fingerprint(try small.finish()) == fingerprint(whole))

        // Violations in column n at row 5000 and in column x at rows 5000 and 7000: x at 5000 is first.
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        func breakCell(_ row: Int, _ column: Int) {
            var cells = lines[row].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            cells[column] = "not-a-number"
            lines[row] = cells.joined(separator: ",")
        }
        breakCell(7000, 1)
        breakCell(5000, 2)
        #expect(throws: TrainingError(.schemaViolation, "column 'n' row 5000 fails rule 'type integer'")) {
            try CSVTableReader.read(Array(lines.joined(separator: "\n").utf8), schema: schema)
        }
        breakCell(5000, 1)
        #expect(throws: TrainingError(.schemaViolation, "column 'x' row 5000 fails rule 'type float'")) {
            try CSVTableReader.read(Array(lines.joined(separator: "\n").utf8), schema: schema)
        }
    }

    @Test func hasMissingFindsAMissingCellAnywhereAndAgreesWithTheCount() {
        for count in [0, 1, 4095, 4096, 4097, 10_000] {
            for position in Set([0, count / 2, count - 1, count]) where position >= 0 {
                var floats = [Float](repeating: 1.5, count: count), integers = [Int64](repeating: 7, count: count)
                var codes = [Int32](repeating: 2, count: count)
                if position < count {
                    floats[position] = .nan
                    integers[position] = Column.missingInteger
                    codes[position] = -1
                }
                for column in [
                    Column(name: "f", type: .float, storage: .float(floats)),
                    Column(name: "i", type: .integer, storage: .integer(integers)),
                    Column(name: "c", type: .categorical, storage: .strings(codes: codes, levels: ["a", "b", "c"])),
                ] {
                    #expect(column.hasMissing == (position < count), "\(column.name): \(count) rows, missing at \(position)")
                    #expect(column.hasMissing == (column.missingCount > 0))
                }
            }
        }
    }

    @Test func numbersParseExactlyLikeStrtod() {
        for text in ["0.1", "-0.770151", "1e-7", "123456789012345678901", "3.4028235e38", "2.2250738585072014e-308",
                     "0.000001234567", "+5", "7.", ".5", "1E5"] {
            let parsed = Array(text.utf8).withUnsafeBufferPointer { CSVValue.parseDouble($0) }
            #expect(parsed == Double(text), "\(text)")
        }
        for text in ["abc", "1e", "--1", "0x10", "1.2.3", "inf", "e5"] {
            let parsed = Array(text.utf8).withUnsafeBufferPointer { CSVValue.parseDouble($0) }
            #expect(parsed == nil || parsed?.isFinite == false, "\(text)")
        }
    }

    @Test func inferredNumericColumnBecomesCategoricalAtText() throws {
        let table = try CSVTableReader.read(Array("x\n1\n2\nthree\n\n4\n".utf8))
        let column = try table.column(named: "x")
        #expect(column.type == .categorical)
        #expect(table.rowCount == 4)
    }

    @Test func malformedInputIsRejectedPrecisely() {
        let cases: [(String, TrainingError.Code)] = [
            ("a,b\n1,2,3\n", .malformedCSV),
            ("a,b\n\"1,2\n", .malformedCSV),
            ("a,b\n1\"x,2\n", .malformedCSV),
            ("a,b\n\"1\"x,2\n", .malformedCSV),
            ("a,a\n1,2\n", .unknownColumn),
            ("a,\n1,2\n", .malformedCSV),
            ("", .malformedCSV),
        ]
        for (text, code) in cases {
            #expect {
                try CSVTableReader.read(Array(text.utf8))
            } throws: { error in
                (error as? TrainingError)?.code == code
            }
        }
    }

    @Test func limitsBoundFieldsAndRecords() {
        var limits = CSVLimits()
        limits.maxFieldBytes = 8
        #expect(throws: TrainingError.self) {
            try CSVTableReader.read(Array("a\n123456789\n".utf8), limits: limits)
        }
        limits = CSVLimits()
        limits.maxRecordBytes = 64
        var reader = CSVTableReader(limits: limits)
        #expect(throws: TrainingError.self) {
            try reader.append(Array(("a\n\"" + String(repeating: "x", count: 100)).utf8))
        }
        limits = CSVLimits()
        limits.maxColumns = 3
        #expect(throws: TrainingError.self) { try CSVTableReader.read(Array("a,b,c,d\n".utf8), limits: limits) }
    }

    /// Schema errors name the column and the rule, never the offending value.
    @Test func schemaViolationsNameColumnAndRuleNotValue() throws {
        let schema = TableSchema(columns: [
            .init(name: "id", type: .id, allowsMissing: false),
            .init(name: "income", type: .float),
            .init(name: "age", type: .integer, allowsMissing: false),
        ], minimumRows: 2)
        do {
            _ = try CSVTableReader.read(Array("id,income,age\nx,secret-value-42,3\n".utf8), schema: schema)
            Issue.record("expected a schema violation")
        } catch let error as TrainingError {
            #expect(error.code == .schemaViolation)
            #expect(error.message.contains("'income'") && error.message.contains("type float"))
            #expect(!error.message.contains("secret-value-42"))
        }
        #expect {
            try CSVTableReader.read(Array("id,income,age\nx,1.5,\ny,2,4\n".utf8), schema: schema)
        } throws: { error in
            let error = error as? TrainingError
            return error?.code == .schemaViolation && error?.message.contains("'age' fails rule 'no missing values'") == true
        }
        #expect {
            try CSVTableReader.read(Array("id,income,age\nx,1.5,3\n".utf8), schema: schema)
        } throws: { error in
            (error as? TrainingError)?.message.contains("at least 2 rows") == true
        }
        #expect {
            try CSVTableReader.read(Array("id,income\nx,1.5\n".utf8), schema: schema)
        } throws: { error in
            (error as? TrainingError)?.message.contains("'age' fails rule 'present'") == true
        }
        #expect {
            try CSVTableReader.read(Array("id,income,age,extra\nx,1.5,3,1\ny,1,2,3\n".utf8), schema: schema)
        } throws: { error in
            (error as? TrainingError)?.message == "header field 4 fails rule 'declared': its name is not in the schema"
        }
        // A file uploaded without its header: its first line is data, and no error repeats it.
        for (csv, expected) in [
            ("x,1.5,1.5\ny,1,2\n", "header field 2 fails rule 'declared': its name is not in the schema"),
            ("id,income,age,4556-7375\nx,1.5,3,1\n", "header field 4 fails rule 'declared': its name is not in the schema"),
            ("id,id,age\nx,1.5,3\n", "column 'id' appears more than once"),
        ] {
            #expect {
                try CSVTableReader.read(Array(csv.utf8), schema: schema)
            } throws: { error in
                let message = (error as? TrainingError)?.message ?? ""
                return message.contains(expected) && !message.contains("1.5") && !message.contains("4556")
            }
        }
        // Too many categories in an undeclared column, found while the data streams (before the
        // 'declared' check): the column is still named by position.
        var few = CSVLimits()
        few.maxCategoricalLevels = 3
        #expect {
            try CSVTableReader.read(Array("id,income,age,4556-7375\nx,1.5,3,a\ny,1,2,b\nz,1,2,c\nw,1,2,d\n".utf8), schema: schema, limits: few)
        } throws: { error in
            (error as? TrainingError)?.message == "header field 4 row 4 fails rule 'at most 3 categories'"
        }
        let table = try CSVTableReader.read(Array("id,income,age\nx,1.5,3\ny,,4\n".utf8), schema: schema)
        #expect(try table.column(named: "age").type == .integer)
    }
}
