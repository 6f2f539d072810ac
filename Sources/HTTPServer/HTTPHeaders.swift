/// An ordered list of header fields as received or to be sent.
///
/// Names compare case-insensitively (RFC 9110 §5.1); order and duplicates are kept, never
/// folded into a dictionary, so that framing checks (duplicate Content-Length, several Host
/// fields) see exactly what the peer sent.
public struct HTTPHeaders: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var fields: [(name: String, value: String)]

    public init() { fields = [] }
    public init(_ fields: [(String, String)]) { self.fields = fields.map { (name: $0.0, value: $0.1) } }
    public init(dictionaryLiteral elements: (String, String)...) { self.init(elements) }

    public var count: Int { fields.count }
    public var isEmpty: Bool { fields.isEmpty }

    /// The first value of the field `name`, or nil.
    public subscript(name: String) -> String? {
        for field in fields where Self.equalsIgnoringCase(field.name, name) { return field.value }
        return nil
    }

    /// Every value of the field `name`, in order.
    public func values(_ name: String) -> [String] {
        fields.filter { Self.equalsIgnoringCase($0.name, name) }.map(\.value)
    }

    /// True when `name` is present.
    public func contains(_ name: String) -> Bool { self[name] != nil }

    /// Appends a field (keeps any existing one with the same name).
    public mutating func add(_ name: String, _ value: String) { fields.append((name: name, value: value)) }

    /// Replaces every field called `name` with one field.
    public mutating func set(_ name: String, _ value: String) {
        remove(name)
        fields.append((name: name, value: value))
    }

    /// Removes every field called `name`.
    public mutating func remove(_ name: String) { fields.removeAll { Self.equalsIgnoringCase($0.name, name) } }

    /// The comma-separated list elements of every `name` field, trimmed and lowercased
    /// (RFC 9110 §5.6.1), empty elements dropped.
    public func listElements(_ name: String) -> [String] {
        var out: [String] = []
        for value in values(name) {
            for part in value.split(separator: ",", omittingEmptySubsequences: false) {
                let trimmed = part.trimmingOWS().lowercased()
                if !trimmed.isEmpty { out.append(trimmed) }
            }
        }
        return out
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }

    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        lhs.fields.count == rhs.fields.count
            && zip(lhs.fields, rhs.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    static func equalsIgnoringCase(_ a: String, _ b: String) -> Bool {
        let a = a.utf8, b = b.utf8
        guard a.count == b.count else { return false }
        for (x, y) in zip(a, b) where x != y {
            if (x | 0x20) != (y | 0x20) || !((x | 0x20) >= 0x61 && (x | 0x20) <= 0x7A) { return false }
        }
        return true
    }
}

extension StringProtocol {
    /// Removes optional whitespace (SP and HTAB) at both ends.
    func trimmingOWS() -> String {
        var scalars = Substring(self).unicodeScalars[...]
        while let f = scalars.first, f == " " || f == "\t" { scalars.removeFirst() }
        while let l = scalars.last, l == " " || l == "\t" { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}
