/// A parsed JSON document: the value model that policies, the schema validator and the
/// canonical (RFC 8785) serializer share.
///
/// Numbers are IEEE-754 doubles, as RFC 8785 and I-JSON (RFC 7493) require; object members
/// keep their input order (canonical form sorts them) and duplicate names are rejected by the parser.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)):
            // Member order does not matter for equality.
            guard a.count == b.count else { return false }
            let bDict = Dictionary(b, uniquingKeysWith: { first, _ in first })
            return a.allSatisfy { key, value in bDict[key] == value }
        default: return false
        }
    }

    /// The JSON Schema type name of this value ("integer" is reported as "number"; see `isInteger`).
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    /// A member of an object, or nil.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first(where: { $0.0 == key })?.1
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var numberValue: Double? {
        if case .number(let n) = self { return n }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: [(String, JSONValue)]? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// True for numbers with no fractional part (JSON Schema's "integer").
    public var isInteger: Bool {
        if case .number(let n) = self { return n.isFinite && n.rounded(.towardZero) == n }
        return false
    }

    /// Returns a copy of this object with `key` set to `value` (appended if new, replaced in place otherwise).
    public func setting(_ key: String, to value: JSONValue) -> JSONValue {
        guard case .object(var members) = self else { return self }
        if let index = members.firstIndex(where: { $0.0 == key }) {
            members[index].1 = value
        } else {
            members.append((key, value))
        }
        return .object(members)
    }
}
