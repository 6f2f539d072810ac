/// One CBOR data item (RFC 8949 §3), as decoded by ``CBORDecoder`` or to be written by ``CBOREncoder``.
///
/// Maps keep their pairs in input order (the Nitro payload's order is meaningful to nobody, but a
/// decoder must not reorder what it reports); duplicate keys are rejected by the decoder.
/// Integers are kept as the wire does: `.unsigned(n)` is n, `.negative(n)` is -1 - n.
public indirect enum CBOR: Sendable, Hashable {
    /// Major type 0: an unsigned integer 0 ... 2^64 - 1.
    case unsigned(UInt64)
    /// Major type 1: the integer -1 - n, so -1 ... -2^64.
    case negative(UInt64)
    /// Major type 2: a byte string.
    case bytes([UInt8])
    /// Major type 3: a UTF-8 text string.
    case text(String)
    /// Major type 4: an array.
    case array([CBOR])
    /// Major type 5: a map, pairs in their encoded order.
    case map([(key: CBOR, value: CBOR)])
    /// Major type 6: a tagged item.
    case tagged(UInt64, CBOR)
    /// Major type 7, simple values 20 and 21.
    case bool(Bool)
    /// Major type 7, simple value 22.
    case null
    /// Major type 7, simple value 23.
    case undefined
    /// Major type 7, any other simple value (0 ... 19, 32 ... 255).
    case simple(UInt8)
    /// Major type 7, half-, single- or double-precision float.
    case float(Double)

    /// An integer item for any `Int`.
    public static func int(_ value: Int) -> CBOR {
        value >= 0 ? .unsigned(UInt64(value)) : .negative(UInt64(-1 - value))
    }

    public static func == (lhs: CBOR, rhs: CBOR) -> Bool {
        switch (lhs, rhs) {
        case let (.unsigned(a), .unsigned(b)), let (.negative(a), .negative(b)): return a == b
        case let (.bytes(a), .bytes(b)): return a == b
        case let (.text(a), .text(b)): return a.utf8.elementsEqual(b.utf8)
        case let (.array(a), .array(b)): return a == b
        case let (.map(a), .map(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case let (.tagged(t1, v1), .tagged(t2, v2)): return t1 == t2 && v1 == v2
        case let (.bool(a), .bool(b)): return a == b
        case (.null, .null), (.undefined, .undefined): return true
        case let (.simple(a), .simple(b)): return a == b
        case let (.float(a), .float(b)): return a.bitPattern == b.bitPattern
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .unsigned(let v): hasher.combine(0); hasher.combine(v)
        case .negative(let v): hasher.combine(1); hasher.combine(v)
        case .bytes(let v): hasher.combine(2); hasher.combine(v)
        case .text(let v): hasher.combine(3); hasher.combine(Array(v.utf8))
        case .array(let v): hasher.combine(4); hasher.combine(v)
        case .map(let pairs):
            hasher.combine(5)
            for pair in pairs {
                hasher.combine(pair.key)
                hasher.combine(pair.value)
            }
        case .tagged(let t, let v): hasher.combine(6); hasher.combine(t); hasher.combine(v)
        case .bool(let v): hasher.combine(7); hasher.combine(v)
        case .null: hasher.combine(8)
        case .undefined: hasher.combine(9)
        case .simple(let v): hasher.combine(10); hasher.combine(v)
        case .float(let v): hasher.combine(11); hasher.combine(v.bitPattern)
        }
    }
}

extension CBOR {
    /// The value for `key` if this is a map holding it.
    public subscript(key: CBOR) -> CBOR? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first(where: { $0.key == key })?.value
    }

    /// The value for a text key if this is a map holding it.
    public subscript(text key: String) -> CBOR? { self[.text(key)] }

    /// The integer value if it fits in an `Int`.
    public var intValue: Int? {
        switch self {
        case .unsigned(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .negative(let v): return v <= UInt64(Int.max) ? -1 - Int(v) : nil
        default: return nil
        }
    }

    /// The bytes if this is a byte string.
    public var bytesValue: [UInt8]? {
        if case .bytes(let b) = self { return b }
        return nil
    }

    /// The string if this is a text string.
    public var textValue: String? {
        if case .text(let s) = self { return s }
        return nil
    }

    /// A short name of the item's type, for error messages.
    public var typeName: String {
        switch self {
        case .unsigned: return "unsigned integer"
        case .negative: return "negative integer"
        case .bytes: return "byte string"
        case .text: return "text string"
        case .array: return "array"
        case .map: return "map"
        case .tagged(let tag, _): return "tag \(tag)"
        case .bool: return "boolean"
        case .null: return "null"
        case .undefined: return "undefined"
        case .simple(let v): return "simple(\(v))"
        case .float: return "float"
        }
    }
}
