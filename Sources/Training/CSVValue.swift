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

    /// 10^0 ... 10^22, every one exact in a double (a literal, so the optimizer initializes it
    /// statically: no lazy-initialization check per cell).
    private static let powersOfTen: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22,
    ]

    /// A decimal number scanned from the start of some bytes as far as it goes.
    struct DecimalScan {
        var negative = false
        /// The first 19 significant digits.
        var mantissa: UInt64 = 0
        var digits = 0
        var exponent = 0
        var sawDigit = false
        /// An `e` without exponent digits.
        var badExponent = false
        /// Bytes scanned: the index of the first byte that cannot continue the number.
        var length = 0
    }

    /// Scans an optional sign, digits, a fraction and an exponent from the start of `field`.
    @inline(__always) static func scanDecimal(_ field: UnsafeBufferPointer<UInt8>) -> DecimalScan {
        let n = field.count
        var scan = DecimalScan()
        var i = 0
        if n > 0, field[0] == UInt8(ascii: "-") || field[0] == UInt8(ascii: "+") {
            scan.negative = field[0] == UInt8(ascii: "-")
            i = 1
        }
        while i < n, field[i] &- 48 < 10 {
            scan.sawDigit = true
            if scan.mantissa != 0 || field[i] != 48 { scan.digits += 1 }
            if scan.digits <= 19 {
                scan.mantissa = scan.mantissa &* 10 &+ UInt64(field[i] &- 48)
            } else {
                scan.exponent += 1
            }
            i += 1
        }
        if i < n, field[i] == UInt8(ascii: ".") {
            i += 1
            while i < n, field[i] &- 48 < 10 {
                scan.sawDigit = true
                if scan.mantissa != 0 || field[i] != 48 { scan.digits += 1 }
                if scan.digits <= 19 {
                    scan.mantissa = scan.mantissa &* 10 &+ UInt64(field[i] &- 48)
                    scan.exponent -= 1
                }
                i += 1
            }
        }
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
            scan.badExponent = !sawExpDigit
            scan.exponent += expNegative ? -e : e
        }
        scan.length = i
        return scan
    }

    /// The exactly rounded value of a scan, when Clinger's fast path applies (at most 15
    /// significant digits and a power of ten that is exact in a double).
    @inline(__always) static func fastValue(_ scan: DecimalScan) -> Double? {
        guard scan.digits <= 15, scan.exponent >= -22, scan.exponent <= 22 else { return nil }
        var value = Double(scan.mantissa)
        value = scan.exponent < 0 ? value / powersOfTen[-scan.exponent] : value * powersOfTen[scan.exponent]
        return scan.negative ? -value : value
    }

    /// Parses a decimal number with correct rounding (Clinger's fast path, else the standard
    /// library), the same double that numpy reads from the same text.
    @inline(__always) static func parseDouble(_ field: UnsafeBufferPointer<UInt8>) -> Double? {
        let n = field.count
        guard n > 0, n <= 64 else { return n == 0 ? nil : slowParse(field) }
        let scan = scanDecimal(field)
        guard scan.sawDigit else { return slowParse(field) }
        if scan.badExponent { return nil }
        guard scan.length == n else { return slowParse(field) }
        return fastValue(scan) ?? slowParse(field)
    }

    /// The number at the start of `bytes` and its length, when it is one `parseDouble` reads on its
    /// fast path; the caller checks that a delimiter follows (then it is the same value
    /// `parseDouble` gives the field), and otherwise finds the field's end and calls `parseDouble`.
    @inline(__always) static func parseDoublePrefix(_ bytes: UnsafeBufferPointer<UInt8>) -> (Double, Int)? {
        // The common shape first: [-]digits[.digits], at most 15 digits in all. Leading zeros
        // count here, so the mantissa is exact and the value is the one `scanDecimal` would give.
        let n = bytes.count
        var i = 0
        let negative = n > 0 && bytes[0] == UInt8(ascii: "-")
        if negative { i = 1 }
        let first = i
        var mantissa: UInt64 = 0
        while i < n, bytes[i] &- 48 < 10 {
            mantissa = mantissa &* 10 &+ UInt64(bytes[i] &- 48)
            i += 1
        }
        var fraction = 0
        var digits = i - first
        if i < n, bytes[i] == UInt8(ascii: ".") {
            i += 1
            let fractionStart = i
            while i < n, bytes[i] &- 48 < 10 {
                mantissa = mantissa &* 10 &+ UInt64(bytes[i] &- 48)
                i += 1
            }
            fraction = i - fractionStart
            digits += fraction
        }
        if digits > 0, digits <= 15, i == n || (bytes[i] | 0x20) != UInt8(ascii: "e") {
            let value = Double(mantissa) / powersOfTen[fraction]
            return (negative ? -value : value, i)
        }
        let scan = scanDecimal(bytes)
        guard scan.sawDigit, !scan.badExponent, scan.length <= 64, let value = fastValue(scan) else { return nil }
        return (value, scan.length)
    }

    /// The integer at the start of `bytes` (an optional sign and at most 19 digits) and its
    /// length; the caller checks that a delimiter follows, as for `parseDoublePrefix`.
    @inline(__always) static func parseIntPrefix(_ bytes: UnsafeBufferPointer<UInt8>) -> (Int64, Int)? {
        let n = bytes.count
        var i = 0
        var negative = false
        if n > 0, bytes[0] == UInt8(ascii: "-") || bytes[0] == UInt8(ascii: "+") {
            negative = bytes[0] == UInt8(ascii: "-")
            i = 1
        }
        let first = i
        var value: Int64 = 0
        while i < n, bytes[i] &- 48 < 10, i - first < 18 {
            value = value &* 10 &+ Int64(bytes[i] &- 48)
            i += 1
        }
        // 18 digits always fit; longer numbers take the checked path.
        guard i > first, i - first < 18 || i == n || bytes[i] &- 48 >= 10 else { return nil }
        return (negative ? -value : value, i)
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
