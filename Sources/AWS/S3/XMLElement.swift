/// A minimal XML reader for S3's responses: elements, text, the five predefined entities and
/// numeric character references; attributes, comments, processing instructions and DOCTYPEs
/// are skipped. Limits: 64 levels of nesting; callers bound the input size.
public struct S3XMLElement: Sendable, Equatable {
    public var name: String
    public var children: [S3XMLElement]
    public var text: String

    /// The first child with that local name.
    public func child(_ name: String) -> S3XMLElement? { children.first { $0.name == name } }
    /// All children with that local name.
    public func all(_ name: String) -> [S3XMLElement] { children.filter { $0.name == name } }
    /// Text of the first child with that name.
    public subscript(_ name: String) -> String? { child(name)?.text }

    /// Parses a document; nil when it is not well-formed enough to read.
    public static func parse(_ bytes: [UInt8]) -> S3XMLElement? {
        var p = Parser(bytes: bytes)
        return p.document()
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0
        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func document() -> S3XMLElement? {
            while i < bytes.count {
                skipWhitespace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "<") else { return nil }
                if starts("<?") { guard skip(past: "?>") else { return nil }; continue }
                if starts("<!--") { guard skip(past: "-->") else { return nil }; continue }
                if starts("<!") { guard skip(past: ">") else { return nil }; continue }
                return element(depth: 0)
            }
            return nil
        }

        func starts(_ s: String) -> Bool {
            let u = Array(s.utf8)
            return i + u.count <= bytes.count && Array(bytes[i..<i + u.count]) == u
        }

        mutating func skip(past s: String) -> Bool {
            let u = Array(s.utf8)
            while i + u.count <= bytes.count {
                if Array(bytes[i..<i + u.count]) == u {
                    i += u.count
                    return true
                }
                i += 1
            }
            return false
        }

        mutating func skipWhitespace() {
            while i < bytes.count, [32, 9, 10, 13].contains(bytes[i]) { i += 1 }
        }

        mutating func name() -> String {
            let start = i
            while i < bytes.count, ![32, 9, 10, 13, UInt8(ascii: ">"), UInt8(ascii: "/")].contains(bytes[i]) { i += 1 }
            var n = String(decoding: bytes[start..<i], as: UTF8.self)
            if let colon = n.lastIndex(of: ":") { n = String(n[n.index(after: colon)...]) }
            return n
        }

        mutating func element(depth: Int) -> S3XMLElement? {
            guard depth < 64, i < bytes.count, bytes[i] == UInt8(ascii: "<") else { return nil }
            i += 1
            let n = name()
            guard !n.isEmpty else { return nil }
            // Skip attributes (quoted values may contain '>').
            var quote: UInt8? = nil
            while i < bytes.count {
                let b = bytes[i]
                if let q = quote {
                    if b == q { quote = nil }
                } else if b == UInt8(ascii: "\"") || b == UInt8(ascii: "'") {
                    quote = b
                } else if b == UInt8(ascii: ">") {
                    break
                }
                i += 1
            }
            guard i < bytes.count else { return nil }
            if bytes[i - 1] == UInt8(ascii: "/") {
                i += 1
                return S3XMLElement(name: n, children: [], text: "")
            }
            i += 1
            var children: [S3XMLElement] = []
            var text: [UInt8] = []
            while i < bytes.count {
                if bytes[i] == UInt8(ascii: "<") {
                    if starts("</") {
                        i += 2
                        _ = name()
                        skipWhitespace()
                        guard i < bytes.count, bytes[i] == UInt8(ascii: ">") else { return nil }
                        i += 1
                        guard let t = Self.decodeEntities(text) else { return nil }
                        return S3XMLElement(name: n, children: children, text: t)
                    }
                    if starts("<!--") { guard skip(past: "-->") else { return nil }; continue }
                    if starts("<![CDATA[") {
                        i += 9
                        let start = i
                        guard skip(past: "]]>") else { return nil }
                        text += bytes[start..<(i - 3)]
                        continue
                    }
                    if starts("<?") { guard skip(past: "?>") else { return nil }; continue }
                    guard let c = element(depth: depth + 1) else { return nil }
                    children.append(c)
                } else {
                    text.append(bytes[i])
                    i += 1
                }
            }
            return nil
        }

        static func decodeEntities(_ raw: [UInt8]) -> String? {
            var out: [UInt8] = []
            var j = 0
            while j < raw.count {
                if raw[j] == UInt8(ascii: "&") {
                    guard let semi = raw[j...].firstIndex(of: UInt8(ascii: ";")), semi - j <= 10 else { return nil }
                    let entity = String(decoding: raw[(j + 1)..<semi], as: UTF8.self)
                    switch entity {
                    case "amp": out.append(UInt8(ascii: "&"))
                    case "lt": out.append(UInt8(ascii: "<"))
                    case "gt": out.append(UInt8(ascii: ">"))
                    case "quot": out.append(UInt8(ascii: "\""))
                    case "apos": out.append(UInt8(ascii: "'"))
                    default:
                        guard entity.hasPrefix("#") else { return nil }
                        let digits = entity.dropFirst()
                        let value = digits.hasPrefix("x") ? UInt32(digits.dropFirst(), radix: 16) : UInt32(digits)
                        guard let v = value, let scalar = Unicode.Scalar(v) else { return nil }
                        out += Array(String(Character(scalar)).utf8)
                    }
                    j = semi + 1
                } else {
                    out.append(raw[j])
                    j += 1
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}

extension String {
    /// Escapes text for an XML element body.
    var xmlEscaped: String {
        var s = ""
        for c in self {
            switch c {
            case "&": s += "&amp;"
            case "<": s += "&lt;"
            case ">": s += "&gt;"
            case "\"": s += "&quot;"
            case "'": s += "&apos;"
            default: s.append(c)
            }
        }
        return s
    }
}
