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
            var b = table("b", rows: Int.random(in: 0...12, using: &generator))
            var c = table("c", rows: Int.random(in: 0...12, using: &generator))
            if trial % 2 == 1 {
                // Every key of the other tables once (the join's path for unique keys).
                func unique(_ t: (csv: String, keys: [String?], values: [Int]), _ name: String) -> (String, [String?], [Int]) {
                    var seen = Set<String>(), csv = "id,\(name)\n", keys: [String?] = [], values: [Int] = []
                    for (row, key) in t.keys.enumerated() where key == nil || seen.insert(key!).inserted {
                        keys.append(key)
                        values.append(row)
                        csv += "\(key ?? ""),\(row)\n"
                    }
                    return (csv, keys, values)
                }
                b = unique(b, "b")
                c = unique(c, "c")
            }
            var expected: [String] = []
            for (i, ka) in a.keys.enumerated() {
                guard let ka else { continue }
                for (j, kb) in b.keys.enumerated() where kb == ka {
                    for (k, kc) in c.keys.enumerated() where kc == ka {
                        expected.append("\(ka) \(i) \(b.values[j]) \(c.values[k])")
                    }
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

    /// Thousands of rows (many probe batches) with long keys that share prefixes, suffixes and
    /// lengths, unique or repeated on the build side: the one-pass join equals a dictionary join.
    /// With `sameLength`, every key of the build sides has the same length (they are read without
    /// their end offsets) while the probe side has missing keys (so it is not).
    @Test(arguments: [false, true], [false, true])
    func largeJoinsMatchADictionaryJoin(repeatedKeys: Bool, sameLength: Bool) throws {
        var generator = SystemRandomNumberGenerator()
        func key(_ n: Int) -> String {
            let digits = String(n)
            return "k" + String(repeating: "0", count: sameLength ? 44 - digits.count : 40) + digits + "z"
        }
        var left = "id,a\n", middle = "id,b\n", right = "c,id\n"
        var leftKeys: [Int?] = []
        for row in 0..<5000 {
            let n: Int? = row % 97 == 0 ? nil : Int.random(in: 0..<4000, using: &generator)
            leftKeys.append(n)
            left += "\(n.map(key) ?? ""),\(row)\n"
        }
        var middleRows: [Int: [Int]] = [:], rightRows: [Int: [Int]] = [:]
        for n in (0..<3000).shuffled(using: &generator) {
            for _ in 0..<(repeatedKeys && n % 5 == 0 ? 2 : 1) {
                middleRows[n, default: []].append(middleRows.values.reduce(0) { $0 + $1.count })
                middle += "\(key(n)),\(n)\n"
            }
        }
        var rightCount = 0
        for n in stride(from: 1000, to: 4000, by: 1) where n % 3 != 0 {
            rightRows[n, default: []].append(rightCount)
            right += "\(rightCount),\(key(n))\n"
            rightCount += 1
        }
        var expected: [String] = []
        for (row, n) in leftKeys.enumerated() {
            guard let n, let middles = middleRows[n], let rights = rightRows[n] else { continue }
            for _ in middles { for r in rights { expected.append("\(row) \(n) \(r)") } }
        }
        let joined = try Table.innerJoin(
            [try read(left, key: "id"), try read(middle, key: "id"), try read(right, key: "id")], on: "id")
        let a = try joined.column(named: "a").floatValues(), b = try joined.column(named: "b").floatValues()
        let c = try joined.column(named: "c").floatValues()
        var got: [String] = []
        for row in 0..<joined.rowCount { got.append("\(Int(a[row])) \(Int(b[row])) \(Int(c[row]))") }
        #expect(got == expected)
        #expect(joined.rowCount > 1000)
    }

    /// The join reads a build row's key without its end offsets only when every key has one length.
    @Test func keyViewsKnowWhenEveryKeyHasOneLength() {
        func width(_ keys: [String?]) -> Int { KeyColumn(keys).withView(\.width) }
        #expect(width(["abcd", "efgh", "ijkl"]) == 4)
        #expect(width(["abcd"]) == 4)
        #expect(width(["abcd", "efg", "ijkl"]) == 0)
        #expect(width(["abc", "efgh", "ijk"]) == 0)
        #expect(width(["abcd", nil, "ijkl"]) == 0)
        #expect(width([nil, nil]) == 0)
        #expect(width([]) == 0)
    }

    /// The key hash is fast, not collision-resistant: a party could craft keys that hash like
    /// another party's customers. A match must therefore always be confirmed on the key's bytes.
    @Test func keysThatCollideInTheHashDoNotJoin() throws {
        // Two 16-byte keys whose hash states meet after the second word: the state after the first
        // word is mixed as `KeyColumn.hash` mixes it, and the second word cancels the difference.
        func state(afterFirstWord word: UInt64) -> UInt64 {
            var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ 16
            h = (h ^ word) &* 0xFF51_AFD7_ED55_8CCD
            return h ^ (h >> 32)
        }
        let (a1, a2, b1): (UInt64, UInt64, UInt64) = (0x6b65_792d_616c_7068, 0x6120_2020_2020_2031, 0x6f74_6865_7220_6b65)
        let b2 = state(afterFirstWord: a1) ^ state(afterFirstWord: b1) ^ a2
        func bytes(_ words: UInt64...) -> [UInt8] { words.flatMap { w in (0..<8).map { UInt8(truncatingIfNeeded: w >> (8 * $0)) } } }
        let (victim, forged) = (bytes(a1, a2), bytes(b1, b2))
        let (hashA, hashB) = (victim.withUnsafeBytes(KeyColumn.hash), forged.withUnsafeBytes(KeyColumn.hash))
        try #require(victim != forged && hashA == hashB, "the crafted keys no longer collide; recompute them for the new hash")

        var owner = KeyColumn(), attacker = KeyColumn()
        victim.withUnsafeBytes { owner.append($0) }
        forged.withUnsafeBytes { attacker.append($0) }
        victim.withUnsafeBytes { attacker.append($0) }  // and one key that really matches
        for (left, right) in [(owner, attacker), (attacker, owner)] {
            let joined = try Table.innerJoin(
                Table(columns: [Column(name: "id", type: .id, storage: .keys(left)), .float("a", (0..<left.count).map(Float.init))]),
                Table(columns: [Column(name: "id", type: .id, storage: .keys(right)), .float("b", (0..<right.count).map(Float.init))]),
                on: "id")
            #expect(joined.rowCount == 1)
            let id = try joined.column(named: "id")
            guard case .keys(let keys) = id.storage else {
                Issue.record("the id column should stay a key column")
                return
            }
            #expect(keys.withKey(0) { Array($0) } == victim)
        }
    }
}
