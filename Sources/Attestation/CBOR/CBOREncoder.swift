/// Writes CBOR items with definite lengths and shortest arguments (RFC 8949 §4.2.1).
///
/// With `deterministic: true` map keys are also sorted by the bytewise order of their encodings,
/// which makes the output core deterministic: use it for this project's own messages. Without it
/// the map order given is kept (COSE headers and Nitro payloads are written in AWS's order).
public struct CBOREncoder: Sendable {
    /// Sort map keys (core deterministic encoding).
    public var deterministic: Bool

    public init(deterministic: Bool = false) {
        self.deterministic = deterministic
    }

    /// The encoding of `item`.
    public func encode(_ item: CBOR) -> [UInt8] {
        var out: [UInt8] = []
        append(item, to: &out)
        return out
    }

    /// Convenience: encode keeping the given map order.
    public static func encode(_ item: CBOR, deterministic: Bool = false) -> [UInt8] {
        CBOREncoder(deterministic: deterministic).encode(item)
    }

    /// Appends the encoding of `item` to `out`.
    public func append(_ item: CBOR, to out: inout [UInt8]) {
        switch item {
        case .unsigned(let v): Self.appendHead(major: 0, v, to: &out)
        case .negative(let v): Self.appendHead(major: 1, v, to: &out)
        case .bytes(let b):
            Self.appendHead(major: 2, UInt64(b.count), to: &out)
            out += b
        case .text(let s):
            Self.appendHead(major: 3, UInt64(s.utf8.count), to: &out)
            out += s.utf8
        case .array(let elements):
            Self.appendHead(major: 4, UInt64(elements.count), to: &out)
            for element in elements { append(element, to: &out) }
        case .map(let pairs):
            Self.appendHead(major: 5, UInt64(pairs.count), to: &out)
            if deterministic {
                let encoded = pairs.map { (key: encode($0.key), value: $0.value) }
                for pair in encoded.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
                    out += pair.key
                    append(pair.value, to: &out)
                }
            } else {
                for pair in pairs {
                    append(pair.key, to: &out)
                    append(pair.value, to: &out)
                }
            }
        case .tagged(let tag, let inner):
            Self.appendHead(major: 6, tag, to: &out)
            append(inner, to: &out)
        case .bool(let b): out.append(b ? 0xf5 : 0xf4)
        case .null: out.append(0xf6)
        case .undefined: out.append(0xf7)
        case .simple(let v):
            if v < 24 {
                out.append(0xe0 | v)
            } else {
                out += [0xf8, v]
            }
        case .float(let d):
            switch Self.floatWidth(d) {
            case 2:
                out.append(0xf9)
                Self.appendBigEndian(UInt64(Self.doubleToHalf(d)), width: 2, to: &out)
            case 4:
                out.append(0xfa)
                Self.appendBigEndian(UInt64(Float(d).bitPattern), width: 4, to: &out)
            default:
                out.append(0xfb)
                Self.appendBigEndian(d.bitPattern, width: 8, to: &out)
            }
        }
    }

    /// The initial byte(s) of an item: major type and its argument in the shortest form.
    static func appendHead(major: UInt8, _ value: UInt64, to out: inout [UInt8]) {
        let m = major << 5
        switch value {
        case 0..<24: out.append(m | UInt8(value))
        case 24...0xff: out += [m | 24, UInt8(value)]
        case 0x100...0xffff:
            out.append(m | 25)
            appendBigEndian(value, width: 2, to: &out)
        case 0x1_0000...0xffff_ffff:
            out.append(m | 26)
            appendBigEndian(value, width: 4, to: &out)
        default:
            out.append(m | 27)
            appendBigEndian(value, width: 8, to: &out)
        }
    }

    static func appendBigEndian(_ value: UInt64, width: Int, to out: inout [UInt8]) {
        for i in stride(from: width - 1, through: 0, by: -1) { out.append(UInt8(truncatingIfNeeded: value >> (8 * i))) }
    }

    /// The shortest float width (2, 4 or 8 bytes) that holds `value` exactly.
    static func floatWidth(_ value: Double) -> Int {
        if value.isNaN { return 2 }
        if CBORDecoder.Reader.halfToDouble(doubleToHalf(value)) == value { return 2 }
        if Double(Float(value)) == value { return 4 }
        return 8
    }

    /// Converts to IEEE 754 half precision, exact only when `floatWidth` says 2.
    static func doubleToHalf(_ value: Double) -> UInt16 {
        if value.isNaN { return 0x7e00 }
        let sign: UInt16 = value.sign == .minus ? 0x8000 : 0
        let magnitude = value.magnitude
        if magnitude == .infinity { return sign | 0x7c00 }
        if magnitude == 0 { return sign }
        if magnitude < 0x1p-14 {  // subnormal half: multiples of 2^-24
            let scaled = magnitude * 0x1p24
            guard scaled < 1024, scaled == scaled.rounded(.towardZero) else { return sign | 0x7c01 }
            return sign | UInt16(scaled)
        }
        let exponent = Int(magnitude.exponent)
        guard exponent <= 15 else { return sign | 0x7c01 }
        let mantissa = (magnitude / Double(sign: .plus, exponent: exponent, significand: 1) - 1) * 1024
        guard mantissa == mantissa.rounded(.towardZero) else { return sign | 0x7c01 }
        return sign | UInt16(exponent + 15) << 10 | UInt16(mantissa)
    }
}
