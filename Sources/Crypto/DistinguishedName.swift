/// An X.509 Name: an ordered list of attributes as they appear in the DER (most general first,
/// e.g. C, O, OU, CN). `description` is the RFC 4514 string (most specific first), e.g.
/// `CN=aws.nitro-enclaves,OU=AWS,O=Amazon,C=US`.
public struct DistinguishedName: Sendable, Hashable, CustomStringConvertible {
    /// One attribute: its short type name (`CN`, `O`, `OU`, `C`, `L`, `ST`, or a dotted OID) and value.
    public struct Attribute: Sendable, Hashable {
        public let type: String
        public let value: String
        public init(type: String, value: String) {
            self.type = type
            self.value = value
        }
    }

    /// The attributes in DER order.
    public let attributes: [Attribute]

    public init(_ attributes: [Attribute]) { self.attributes = attributes }

    /// A name from `(type, value)` pairs in DER order, e.g. `[("C", "US"), ("O", "Example"), ("CN", "root")]`.
    public init(_ pairs: KeyValuePairs<String, String>) {
        attributes = pairs.map { Attribute(type: $0.key, value: $0.value) }
    }

    /// The value of the first attribute of `type` (e.g. `"CN"`).
    public func first(_ type: String) -> String? { attributes.first { $0.type == type }?.value }

    /// The common name, if any.
    public var commonName: String? { first("CN") }

    public var description: String {
        attributes.reversed().map { "\($0.type)=\(Self.escape($0.value))" }.joined(separator: ",")
    }

    /// RFC 4514 §2.4 escaping.
    static func escape(_ value: String) -> String {
        var out = ""
        let chars = Array(value)
        for (index, c) in chars.enumerated() {
            let special: Set<Character> = [",", "+", "\"", "\\", "<", ">", ";", "="]
            if special.contains(c) || (index == 0 && (c == " " || c == "#"))
                || (index == chars.count - 1 && c == " ")
            {
                out.append("\\")
            }
            out.append(c)
        }
        return out
    }
}
