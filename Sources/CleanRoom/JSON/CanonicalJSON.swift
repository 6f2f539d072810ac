/// RFC 8785 JSON Canonicalization Scheme (JCS): the byte form whose SHA-256 is a policy's digest.
///
/// Object members are sorted by their names' UTF-16 code units, strings use the minimal
/// escaping of RFC 8785 §3.2.2.2, numbers use the ECMAScript `Number.prototype.toString`
/// form (§3.2.2.3), and there is no whitespace.
public enum CanonicalJSON {
    /// The canonical UTF-8 bytes of `value`.
    public static func serialize(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(value, into: &out)
        return out
    }

    /// The canonical form as a Swift string.
    public static func string(_ value: JSONValue) -> String {
        String(decoding: serialize(value), as: UTF8.self)
    }

    private static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let n): out.append(contentsOf: formatNumber(n).utf8)
        case .string(let s): writeString(s, into: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (i, element) in elements.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(element, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            let sorted = members.sorted { a, b in a.0.utf16.lexicographicallyPrecedes(b.0.utf16) }
            for (i, member) in sorted.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                writeString(member.0, into: &out)
                out.append(UInt8(ascii: ":"))
                write(member.1, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case 0x08: out.append(contentsOf: "\\b".utf8)
            case 0x09: out.append(contentsOf: "\\t".utf8)
            case 0x0A: out.append(contentsOf: "\\n".utf8)
            case 0x0C: out.append(contentsOf: "\\f".utf8)
            case 0x0D: out.append(contentsOf: "\\r".utf8)
            case 0x00..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            default: out.append(byte)  // UTF-8 passes through unescaped, including '/' and DEL
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// ECMAScript `Number::toString(x)` (ECMA-262 §6.1.6.1.20) for a finite double.
    ///
    /// Swift's `description` already yields the shortest digit string that round-trips (and the
    /// closest one among equals), which is exactly the `k` digits ECMAScript asks for; only the
    /// layout (where the point goes, when an exponent is used) differs, so we rebuild it.
    public static func formatNumber(_ x: Double) -> String {
        precondition(x.isFinite, "JSON numbers are finite")
        if x == 0 { return "0" }  // also -0
        let negative = x < 0
        let text = abs(x).description  // e.g. "123.45", "1e-07", "1.2345e+22", "5e-324"
        var mantissa = Substring(text)
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = text[..<e]
            exponent = Int(text[text.index(after: e)...])!  // Int accepts "+22" and "-07"
        }
        // Split the mantissa into its significant digits and the position of the decimal point.
        var digits = ""
        var pointPosition = 0
        if let dot = mantissa.firstIndex(of: ".") {
            let integerPart = mantissa[..<dot], fraction = mantissa[mantissa.index(after: dot)...]
            digits = String(integerPart) + String(fraction)
            pointPosition = integerPart.count
        } else {
            digits = String(mantissa)
            pointPosition = mantissa.count
        }
        // Normalise: strip leading zeros (moving the point) and trailing zeros.
        while digits.count > 1, digits.first == "0" {
            digits.removeFirst()
            pointPosition -= 1
        }
        while digits.count > 1, digits.last == "0" { digits.removeLast() }
        // ECMAScript's n: the value is 0.d1d2…dk × 10^n.
        let k = digits.count
        let n = pointPosition + exponent
        var result = negative ? "-" : ""
        if k <= n && n <= 21 {
            result += digits + String(repeating: "0", count: n - k)
        } else if 0 < n && n <= 21 {
            let cut = digits.index(digits.startIndex, offsetBy: n)
            result += digits[..<cut] + "." + digits[cut...]
        } else if -6 < n && n <= 0 {
            result += "0." + String(repeating: "0", count: -n) + digits
        } else {
            let e = n - 1
            let sign = e < 0 ? "-" : "+"
            result += String(digits.first!)
            if k > 1 { result += "." + digits.dropFirst() }
            result += "e" + sign + String(abs(e))
        }
        return result
    }
}
