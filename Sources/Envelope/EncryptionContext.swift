/// The encryption context: UTF-8 key/value pairs authenticated with the message (and passed to
/// KMS, which binds them too). Keys are unique by their UTF-8 bytes.
///
/// Readers keep the pairs in the order the header had them (AWS writers do not always sort);
/// serialization for a new header or for keyring AAD always sorts by the keys' UTF-8 bytes.
/// Lookups compare UTF-8 bytes, not Unicode canonical equivalence, so two keys that look the
/// same but differ in normalization are different keys — exactly as every other SDK treats them.
public struct EncryptionContext: Sendable, Equatable, CustomStringConvertible {
    /// One key/value pair.
    public struct Pair: Sendable, Equatable {
        public let key: String
        public let value: String
        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
        public static func == (lhs: Pair, rhs: Pair) -> Bool {
            lhs.key.utf8.elementsEqual(rhs.key.utf8) && lhs.value.utf8.elementsEqual(rhs.value.utf8)
        }
    }

    /// The key under which signed suites carry the footer verification key (base64 compressed point).
    public static let publicKeyKey = "aws-crypto-public-key"
    /// Keys starting with this prefix are reserved for the SDK.
    public static let reservedPrefix = "aws-crypto-"

    /// The pairs, in header order for parsed contexts, in insertion order otherwise.
    public private(set) var pairs: [Pair]

    public init() { pairs = [] }

    /// A context from distinct keys. Throws `duplicateEncryptionContextKey` when two keys have the same bytes.
    public init(_ pairs: [(String, String)]) throws {
        self.pairs = []
        for (key, value) in pairs { try add(key, value) }
    }

    /// A context from a dictionary (keys of a Swift dictionary may still collide by UTF-8 bytes
    /// only if they are canonically equivalent, which a dictionary forbids, so this cannot fail).
    public init(_ dictionary: [String: String]) {
        self.pairs = dictionary.map { Pair(key: $0.key, value: $0.value) }
    }

    public var isEmpty: Bool { pairs.isEmpty }
    public var count: Int { pairs.count }

    /// The value for `key`, compared by UTF-8 bytes.
    public subscript(key: String) -> String? {
        pairs.first { $0.key.utf8.elementsEqual(key.utf8) }?.value
    }

    /// Adds a pair; throws `duplicateEncryptionContextKey` if the key is already present.
    public mutating func add(_ key: String, _ value: String) throws {
        if self[key] != nil {
            throw EnvelopeError(.duplicateEncryptionContextKey, "encryption context key \"\(key)\" appears twice")
        }
        pairs.append(Pair(key: key, value: value))
    }

    /// The pairs sorted by the keys' UTF-8 bytes (the serialization order).
    public var sortedPairs: [Pair] {
        pairs.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
    }

    /// A dictionary view (for KMS requests and JSON).
    public var dictionary: [String: String] {
        var result: [String: String] = [:]
        for pair in pairs { result[pair.key] = pair.value }
        return result
    }

    /// Same pairs regardless of order.
    public static func == (lhs: EncryptionContext, rhs: EncryptionContext) -> Bool {
        lhs.count == rhs.count && lhs.sortedPairs == rhs.sortedPairs
    }

    /// Whether every pair of `expected` is present here with the same value.
    public func contains(_ expected: EncryptionContext) -> Bool {
        expected.pairs.allSatisfy { pair in self[pair.key].map { $0.utf8.elementsEqual(pair.value.utf8) } ?? false }
    }

    public var description: String {
        "{" + sortedPairs.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + "}"
    }

    /// The key/value pairs serialization of the spec (count ‖ sorted entries), empty for an
    /// empty context. This is the AAD of raw AES keyrings and the body of the header's AAD field.
    /// Throws `malformedEncryptionContext` when a field or the whole does not fit its UInt16 length.
    public func serialized() throws -> [UInt8] {
        if pairs.isEmpty { return [] }
        guard pairs.count <= Int(UInt16.max) else {
            throw EnvelopeError(.malformedEncryptionContext, "encryption context has more than 65535 pairs")
        }
        var out: [UInt8] = []
        out.appendUInt16(UInt16(pairs.count))
        for pair in sortedPairs {
            for field in [pair.key, pair.value] {
                let bytes = Array(field.utf8)
                guard bytes.count <= Int(UInt16.max) else {
                    throw EnvelopeError(.malformedEncryptionContext, "an encryption context entry is longer than 65535 bytes")
                }
                out.appendUInt16(UInt16(bytes.count))
                out.append(contentsOf: bytes)
            }
        }
        guard out.count <= Int(UInt16.max) else {
            throw EnvelopeError(.malformedEncryptionContext, "serialized encryption context is longer than 65535 bytes")
        }
        return out
    }

    /// Parses the key/value pairs serialization (the header's AAD field without its length).
    /// Accepts any key order; rejects duplicates, invalid UTF-8, a zero count and length mismatches.
    public static func parse(_ bytes: ArraySlice<UInt8>) throws -> EncryptionContext {
        var context = EncryptionContext()
        if bytes.isEmpty { return context }
        var cursor = ByteCursor(bytes)
        func need<T>(_ value: T?, _ what: String) throws -> T {
            guard let value else {
                throw EnvelopeError(.malformedEncryptionContext, "encryption context ends inside \(what)")
            }
            return value
        }
        let count = try need(cursor.readUInt16(), "the pair count")
        guard count > 0 else {
            throw EnvelopeError(.malformedEncryptionContext, "encryption context has a pair count of 0 but is not empty")
        }
        for index in 0..<Int(count) {
            let keyLength = try need(cursor.readUInt16(), "the key length of pair \(index + 1)")
            let keyBytes = try need(cursor.read(Int(keyLength)), "the key of pair \(index + 1)")
            let valueLength = try need(cursor.readUInt16(), "the value length of pair \(index + 1)")
            let valueBytes = try need(cursor.read(Int(valueLength)), "the value of pair \(index + 1)")
            guard let key = String(validating: keyBytes, as: UTF8.self),
                let value = String(validating: valueBytes, as: UTF8.self)
            else {
                throw EnvelopeError(.invalidUTF8, "encryption context pair \(index + 1) is not valid UTF-8")
            }
            try context.add(key, value)
        }
        guard cursor.isAtEnd else {
            throw EnvelopeError(
                .malformedEncryptionContext,
                "encryption context has \(cursor.remaining) bytes after its \(count) pairs")
        }
        return context
    }
}
