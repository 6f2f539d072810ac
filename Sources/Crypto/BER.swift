/// A minimal BER/DER reader and DER writer for the structures this module parses itself (CMS).
/// Internal: limits on size and depth, indefinite lengths allowed (BER), high tag numbers refused.
struct BERElement {
    enum TagClass: UInt8 {
        case universal = 0, application = 1, contextSpecific = 2, `private` = 3
    }

    let tagClass: TagClass
    let tagNumber: UInt8
    let isConstructed: Bool
    /// Contents of a primitive element.
    let content: ArraySlice<UInt8>
    /// Children of a constructed element.
    let children: [BERElement]

    static let maximumInputLength = 16 << 20
    static let maximumDepth = 24
    static let maximumChildren = 4096

    /// Parses exactly one element spanning all of `bytes`.
    static func parse(_ bytes: [UInt8]) throws -> BERElement {
        guard bytes.count <= maximumInputLength else { throw CryptoError(.invalidCMS, "BER input larger than 16 MiB") }
        var reader = Reader(bytes: bytes[...])
        let element = try reader.readElement(depth: 0)
        guard reader.bytes.isEmpty else { throw CryptoError(.invalidCMS, "trailing bytes after the BER structure") }
        return element
    }

    struct Reader {
        var bytes: ArraySlice<UInt8>

        mutating func byte() throws -> UInt8 {
            guard let b = bytes.popFirst() else { throw CryptoError(.invalidCMS, "truncated BER") }
            return b
        }

        mutating func readElement(depth: Int) throws -> BERElement {
            guard depth < BERElement.maximumDepth else { throw CryptoError(.invalidCMS, "BER nested too deeply") }
            let identifier = try byte()
            guard identifier & 0x1f != 0x1f else { throw CryptoError(.invalidCMS, "BER high tag numbers are not supported") }
            let tagClass = TagClass(rawValue: identifier >> 6)!
            let constructed = identifier & 0x20 != 0
            let number = identifier & 0x1f
            let first = try byte()
            if first == 0x80 {
                // Indefinite length: constructed only, children until end-of-contents (00 00).
                guard constructed else { throw CryptoError(.invalidCMS, "indefinite length on a primitive BER element") }
                var children: [BERElement] = []
                while true {
                    guard bytes.count >= 2 else { throw CryptoError(.invalidCMS, "truncated BER: missing end-of-contents") }
                    if bytes[bytes.startIndex] == 0 && bytes[bytes.startIndex + 1] == 0 {
                        bytes.removeFirst(2)
                        break
                    }
                    children.append(try readElement(depth: depth + 1))
                    guard children.count <= BERElement.maximumChildren else {
                        throw CryptoError(.invalidCMS, "too many BER elements")
                    }
                }
                return BERElement(tagClass: tagClass, tagNumber: number, isConstructed: true, content: [], children: children)
            }
            var length = 0
            if first < 0x80 {
                length = Int(first)
            } else {
                let count = Int(first & 0x7f)
                guard count <= 4, count > 0 else { throw CryptoError(.invalidCMS, "BER length too long") }
                for _ in 0..<count { length = length << 8 | Int(try byte()) }
            }
            guard length <= bytes.count else { throw CryptoError(.invalidCMS, "truncated BER: length \(length) exceeds the input") }
            let body = bytes.prefix(length)
            bytes = bytes.dropFirst(length)
            if identifier == 0 {
                throw CryptoError(.invalidCMS, "unexpected end-of-contents in BER")
            }
            guard constructed else {
                return BERElement(tagClass: tagClass, tagNumber: number, isConstructed: false, content: body, children: [])
            }
            var inner = Reader(bytes: body)
            var children: [BERElement] = []
            while !inner.bytes.isEmpty {
                children.append(try inner.readElement(depth: depth + 1))
                guard children.count <= BERElement.maximumChildren else { throw CryptoError(.invalidCMS, "too many BER elements") }
            }
            return BERElement(tagClass: tagClass, tagNumber: number, isConstructed: true, content: [], children: children)
        }
    }

    // MARK: typed accessors (each throws .invalidCMS with `what` in the message)

    func isUniversal(_ number: UInt8) -> Bool { tagClass == .universal && tagNumber == number }
    func isContext(_ number: UInt8) -> Bool { tagClass == .contextSpecific && tagNumber == number }

    func sequence(_ what: String) throws -> [BERElement] {
        guard isUniversal(16), isConstructed else { throw CryptoError(.invalidCMS, "\(what): expected a SEQUENCE") }
        return children
    }

    func set(_ what: String) throws -> [BERElement] {
        guard isUniversal(17), isConstructed else { throw CryptoError(.invalidCMS, "\(what): expected a SET") }
        return children
    }

    func objectIdentifier(_ what: String) throws -> [UInt8] {
        guard isUniversal(6), !isConstructed, !content.isEmpty else {
            throw CryptoError(.invalidCMS, "\(what): expected an OBJECT IDENTIFIER")
        }
        return Array(content)
    }

    func smallInteger(_ what: String) throws -> Int {
        guard isUniversal(2), !isConstructed, (1...4).contains(content.count), content.first! & 0x80 == 0 else {
            throw CryptoError(.invalidCMS, "\(what): expected a small non-negative INTEGER")
        }
        return content.reduce(0) { $0 << 8 | Int($1) }
    }

    /// The bytes of an OCTET STRING (or an implicitly tagged one), joining constructed segments.
    func octets(_ what: String, implicitContextTag: UInt8? = nil) throws -> [UInt8] {
        if let tag = implicitContextTag {
            guard isContext(tag) else { throw CryptoError(.invalidCMS, "\(what): expected [\(tag)]") }
        } else {
            guard isUniversal(4) else { throw CryptoError(.invalidCMS, "\(what): expected an OCTET STRING") }
        }
        guard isConstructed else { return Array(content) }
        var out: [UInt8] = []
        for child in children {
            out += try child.octets(what)
        }
        return out
    }
}

/// DER encoding helpers.
enum DER {
    static func element(_ identifier: UInt8, _ content: [UInt8]) -> [UInt8] {
        [identifier] + DERLength.encode(content.count) + content
    }
    static func sequence(_ parts: [UInt8]...) -> [UInt8] { element(0x30, parts.flatMap { $0 }) }
    static func set(_ parts: [UInt8]...) -> [UInt8] { element(0x31, parts.flatMap { $0 }) }
    static func integer(_ value: Int) -> [UInt8] {
        precondition(value >= 0 && value < 128)
        return element(0x02, [UInt8(value)])
    }
    static func octetString(_ bytes: [UInt8]) -> [UInt8] { element(0x04, bytes) }
    static func oid(_ encoded: [UInt8]) -> [UInt8] { element(0x06, encoded) }
    static func contextConstructed(_ number: UInt8, _ content: [UInt8]) -> [UInt8] { element(0xa0 | number, content) }
    static func contextPrimitive(_ number: UInt8, _ content: [UInt8]) -> [UInt8] { element(0x80 | number, content) }
}
