import Testing

@testable import Training

@Suite struct TableJoinTests {
    func read(_ text: String, key: String? = nil) throws -> Table {
        try CSVTableReader.read(Array(text.utf8), typeOverrides: key.map { [$0: .id] } ?? [:])
    }

    @Test func unionStacksTablesAndMergesCategories() throws {
        let a = try read("x,c\n1,red\n2,blue\n")
        let b = try read("c,x\ngreen,3\nred,\n")
        let table = try Table.union([a, b])
        #expect(table.rowCount == 4)
        #expect(table.columnNames == ["x", "c"])
        #expect(try table.column(named: "x").floatValues().prefix(3) == [1, 2, 3])
        guard case .strings(let codes, let levels) = try table.column(named: "c").storage else {
            Issue.record("c should be categorical")
            return
        }
        #expect(codes.map { levels[Int($0)] } == ["red", "blue", "green", "red"])
    }

    @Test func unionRejectsDifferentSchemas() throws {
        let a = try read("x,c\n1,red\n"), b = try read("x,d\n1,red\n"), c = try read("x,c\n1,2\n")
        #expect(throws: TrainingError(.joinFailed, "union: table 2 has no column 'c'")) { try Table.union([a, b]) }
        #expect(throws: TrainingError.self) { try Table.union([a, c]) }
    }

    @Test func innerJoinKeepsEveryMatchingPair() throws {
        let left = try read("id,a\nk1,1\nk2,2\nk3,3\n,4\nk1,5\n", key: "id")
        let right = try read("b,id\n10,k1\n20,k3\n30,k1\n40,k9\n", key: "id")
        let joined = try Table.innerJoin(left, right, on: "id")
        #expect(joined.columnNames == ["id", "a", "b"])
        var pairs: [String] = []
        let a = try joined.column(named: "a").floatValues(), b = try joined.column(named: "b").floatValues()
        for row in 0..<joined.rowCount { pairs.append("\(Int(a[row]))-\(Int(b[row]))") }
        #expect(pairs == ["1-10", "1-30", "3-20", "5-10", "5-30"])
    }

    @Test func threeWayJoinEqualsNestedLoopsOverEveryMatchingCombination() throws {
        // Keys from a small alphabet (many duplicates, some missing, some unmatched), 300 random trials.
        var generator = SystemRandomNumberGenerator()
        for trial in 0..<300 {
            func table(_ name: String, rows: Int) -> (csv: String, keys: [String?], values: [Int]) {
                var csv = "id,\(name)\n", keys: [String?] = [], values: [Int] = []
                for row in 0..<rows {
                    let k = Int.random(in: 0...6, using: &generator)
                    let key: String? = k == 6 ? nil : "key-\(k)-\(String(repeating: "x", count: k * 3))"
                    keys.append(key)
                    values.append(row)
                    csv += "\(key ?? ""),\(row)\n"
                }
                return (csv, keys, values)
            }
            let a = table("a", rows: Int.random(in: 0...12, using: &generator))
            let b = table("b", rows: Int.random(in: 0...12, using: &generator))
            let c = table("c", rows: Int.random(in: 0...12, using: &generator))
            var expected: [String] = []
            for (i, ka) in a.keys.enumerated() {
                guard let ka else { continue }
                for (j, kb) in b.keys.enumerated() where kb == ka {
                    for (k, kc) in c.keys.enumerated() where kc == ka { expected.append("\(ka) \(i) \(j) \(k)") }
                }
            }
            let joined = try Table.innerJoin(
                [try read(a.csv, key: "id"), try read(b.csv, key: "id"), try read(c.csv, key: "id")], on: "id")
            #expect(joined.columnNames == ["id", "a", "b", "c"])
            var got: [String] = []
            let ids = try joined.column(named: "id")
            let (va, vb, vc) = (
                try joined.column(named: "a").floatValues(), try joined.column(named: "b").floatValues(),
                try joined.column(named: "c").floatValues()
            )
            for row in 0..<joined.rowCount {
                got.append("\(ids.keyString(row) ?? "") \(Int(va[row])) \(Int(vb[row])) \(Int(vc[row]))")
            }
            #expect(got == expected, "trial \(trial)")
            if got != expected { break }
        }
    }

    @Test func innerJoinRejectsClashingColumnsAndFloatKeys() throws {
        let left = try read("id,a\nk1,1\n", key: "id"), right = try read("id,a\nk1,2\n", key: "id")
        #expect(throws: TrainingError(.joinFailed, "column 'a' appears in both tables of the join")) {
            try Table.innerJoin(left, right, on: "id")
        }
        let l2 = try read("id,a\n1,1\n"), r2 = try read("id,b\n1,2\n")
        #expect(throws: TrainingError.self) { try Table.innerJoin(l2, r2, on: "id") }
        #expect(throws: TrainingError(.unknownColumn, "no column named 'nope'")) {
            try Table.innerJoin(left, right, on: "nope")
        }
    }

    @Test func joinSpecParsesTheCommandLineSyntax() throws {
        #expect(try JoinSpec(parsing: "union") == .union)
        #expect(try JoinSpec(parsing: "inner:customer_id") == .inner(key: "customer_id"))
        #expect(throws: TrainingError.self) { try JoinSpec(parsing: "outer:x") }
        #expect(throws: TrainingError.self) { try JoinSpec(parsing: "inner:") }
    }
}
