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

    @inline(__always) static func isMissing(_ field: UnsafeBufferPointer<UInt8>) -> Bool {
        if field.isEmpty { return true }
        // Every token starts with N or n.
        if field.count > 4 || field[0] | 0x20 != UInt8(ascii: "n") { return false }
        for token in missingTokens where token.count == field.count && token.elementsEqual(field) { return true }
        return false
    }

    /// An optional sign and decimal digits that fit in 64 bits (what `Int64(String)` accepts).
    @inline(__always) static func parseInt(_ field: UnsafeBufferPointer<UInt8>) -> Int64? {
        let n = field.count
        guard n > 0, n <= 20 else { return nil }
        var i = 0
        var negative = false
        if field[0] == UInt8(ascii: "-") || field[0] == UInt8(ascii: "+") {
            negative = field[0] == UInt8(ascii: "-")
            i = 1
            guard n > 1 else { return nil }
        }
        // Accumulate negatively: Int64.min has no positive counterpart.
        var value: Int64 = 0
        while i < n {
            let digit = field[i] &- 48
            guard digit < 10 else { return nil }
            let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = shifted.subtractingReportingOverflow(Int64(digit))
            guard !o1, !o2 else { return nil }
            value = next
            i += 1
        }
        if negative { return value }
        return value == Int64.min ? nil : -value
    }

    private static let powersOfTen: [Double] = (0...22).map { Double("1e\($0)")! }

    /// Parses a decimal number with correct rounding (Clinger's fast path, else the standard
    /// library), the same double that numpy reads from the same text.
    @inline(__always) static func parseDouble(_ field: UnsafeBufferPointer<UInt8>) -> Double? {
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
