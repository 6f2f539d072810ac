/// A strict, bounded CBOR (RFC 8949) decoder for exactly one top-level data item.
///
/// Every input is outside input: the decoder enforces ``Limits`` (input size, nesting depth, item
/// count), rejects truncation, trailing bytes, reserved additional information, misplaced breaks,
/// invalid UTF-8 and duplicate map keys, and with ``Limits/deterministic`` also anything that is not
/// RFC 8949 §4.2.1 core deterministic encoding (for the messages this project writes itself).
/// Real Nitro documents use an indefinite-length payload map, so the default is not deterministic.
public struct CBORDecoder: Sendable {
    /// Hard limits; exceeding one is an error with its own ``CBORError/Code``.
    public struct Limits: Sendable, Hashable {
        /// Largest accepted input, in bytes.
        public var maxInputBytes: Int
        /// Deepest accepted nesting of arrays, maps and tags (the top-level item is depth 1).
        public var maxDepth: Int
        /// Most data items (including map keys and string chunks) in one input.
        public var maxItems: Int
        /// Require core deterministic encoding (shortest arguments, definite lengths, sorted keys).
        public var deterministic: Bool

        public init(
            maxInputBytes: Int = 1 << 20,
            maxDepth: Int = 32,
            maxItems: Int = 65_536,
            deterministic: Bool = false
        ) {
            self.maxInputBytes = maxInputBytes
            self.maxDepth = maxDepth
            self.maxItems = maxItems
            self.deterministic = deterministic
        }

        /// Defaults for general input: 1 MiB, depth 32, 65 536 items, non-deterministic.
        public static let `default` = Limits()
        /// For this project's own messages: same bounds, deterministic encoding required.
        public static let deterministic = Limits(deterministic: true)
    }

    public var limits: Limits

    public init(limits: Limits = .default) {
        self.limits = limits
    }

    /// Decodes exactly one data item that spans all of `bytes`.
    public func decode(_ bytes: [UInt8]) throws(CBORError) -> CBOR {
        guard bytes.count <= limits.maxInputBytes else {
            throw CBORError(
                .inputTooLarge,
                at: 0,
                "input is \(bytes.count) bytes, the limit is \(limits.maxInputBytes)"
            )
        }
        var reader = Reader(bytes: bytes, limits: limits)
        let item = try reader.readItem(depth: 1)
        guard reader.offset == bytes.count else {
            throw CBORError(
                .trailingBytes,
                at: reader.offset,
                "\(bytes.count - reader.offset) bytes follow the top-level item"
            )
        }
        return item
    }

    /// Convenience: decode with the given limits.
    public static func decode(_ bytes: [UInt8], limits: Limits = .default) throws(CBORError) -> CBOR {
        try CBORDecoder(limits: limits).decode(bytes)
    }
}

extension CBORDecoder {
    struct Reader {
        let bytes: [UInt8]
        let limits: Limits
        var offset = 0
        var items = 0

        init(bytes: [UInt8], limits: Limits) {
            self.bytes = bytes
            self.limits = limits
        }

        private var remaining: Int { bytes.count - offset }

        private mutating func byte() throws(CBORError) -> UInt8 {
            guard offset < bytes.count else { throw CBORError(.truncated, at: offset, "input ends inside an item") }
            defer { offset += 1 }
            return bytes[offset]
        }

        private mutating func countItem(at start: Int) throws(CBORError) {
            items += 1
            if items > limits.maxItems {
                throw CBORError(.itemLimitExceeded, at: start, "more than \(limits.maxItems) data items")
            }
        }

        /// Reads the argument of an initial byte (RFC 8949 §3: additional information 0...27).
        /// Returns nil for 31 (indefinite length); the caller decides whether that is allowed.
        private mutating func argument(_ info: UInt8, start: Int) throws(CBORError) -> UInt64? {
            switch info {
            case 0...23:
                return UInt64(info)
            case 24...27:
                let width = 1 << Int(info - 24)
                guard remaining >= width else {
                    throw CBORError(.truncated, at: offset, "input ends inside a \(width)-byte argument")
                }
                var value: UInt64 = 0
                for i in 0..<width { value = value << 8 | UInt64(bytes[offset + i]) }
                offset += width
                if limits.deterministic {
                    let minimal: Bool
                    switch width {
                    case 1: minimal = value >= 24
                    case 2: minimal = value > 0xff
                    case 4: minimal = value > 0xffff
                    default: minimal = value > 0xffff_ffff
                    }
                    guard minimal else {
                        throw CBORError(.nonMinimalEncoding, at: start, "argument \(value) is not in its shortest form")
                    }
                }
                return value
            case 28...30:
                throw CBORError(.reservedAdditionalInfo, at: start, "additional information \(info) is reserved")
            default:
                if limits.deterministic {
                    throw CBORError(.indefiniteLengthNotAllowed, at: start, "indefinite length in deterministic input")
                }
                return nil
            }
        }

        private func length(_ value: UInt64, start: Int) throws(CBORError) -> Int {
            guard value <= UInt64(limits.maxInputBytes) else {
                throw CBORError(.lengthTooLarge, at: start, "declared length \(value) exceeds the input limit")
            }
            return Int(value)
        }

        mutating func readItem(depth: Int) throws(CBORError) -> CBOR {
            let start = offset
            let initial = try byte()
            if initial == 0xff {
                throw CBORError(.unexpectedBreak, at: start, "break outside an indefinite-length item")
            }
            try countItem(at: start)
            let major = initial >> 5
            let info = initial & 0x1f
            switch major {
            case 0, 1:
                guard let value = try argument(info, start: start) else {
                    throw CBORError(.invalidIndefiniteLength, at: start, "an integer has no indefinite length")
                }
                return major == 0 ? .unsigned(value) : .negative(value)
            case 2, 3:
                let content: [UInt8]
                if let declared = try argument(info, start: start) {
                    content = try readStringBytes(try length(declared, start: start), isText: major == 3, start: start)
                } else {
                    content = try readChunkedString(major: major, start: start)
                }
                if major == 2 { return .bytes(content) }
                // Chunks were validated one by one; the whole is valid UTF-8 if each chunk is.
                return .text(String(decoding: content, as: UTF8.self))
            case 4:
                try checkDepth(depth, start: start)
                var elements: [CBOR] = []
                if let declared = try argument(info, start: start) {
                    let count = try length(declared, start: start)
                    guard count <= remaining else {
                        throw CBORError(
                            .truncated,
                            at: start,
                            "array of \(count) items cannot fit in \(remaining) bytes"
                        )
                    }
                    elements.reserveCapacity(count)
                    for _ in 0..<count { elements.append(try readItem(depth: depth + 1)) }
                } else {
                    while try !atBreak() { elements.append(try readItem(depth: depth + 1)) }
                }
                return .array(elements)
            case 5:
                try checkDepth(depth, start: start)
                return try readMap(info: info, depth: depth, start: start)
            case 6:
                try checkDepth(depth, start: start)
                guard let tag = try argument(info, start: start) else {
                    throw CBORError(.invalidIndefiniteLength, at: start, "a tag has no indefinite length")
                }
                return .tagged(tag, try readItem(depth: depth + 1))
            default:
                return try readSimple(info: info, start: start)
            }
        }

        private func checkDepth(_ depth: Int, start: Int) throws(CBORError) {
            guard depth <= limits.maxDepth else {
                throw CBORError(.depthLimitExceeded, at: start, "nesting deeper than \(limits.maxDepth)")
            }
        }

        /// True (and consumes it) if the next byte is a break; throws if the input has ended.
        private mutating func atBreak() throws(CBORError) -> Bool {
            guard offset < bytes.count else {
                throw CBORError(.truncated, at: offset, "input ends inside an indefinite-length item")
            }
            if bytes[offset] == 0xff {
                offset += 1
                return true
            }
            return false
        }

        private mutating func readStringBytes(_ count: Int, isText: Bool, start: Int) throws(CBORError) -> [UInt8] {
            guard count <= remaining else {
                throw CBORError(.truncated, at: start, "string of \(count) bytes but only \(remaining) remain")
            }
            let content = Array(bytes[offset..<offset + count])
            if isText, !Self.isValidUTF8(content) {
                throw CBORError(.invalidUTF8, at: start, "text string is not valid UTF-8")
            }
            offset += count
            return content
        }

        /// RFC 8949 §3.2.3: an indefinite-length string is a series of definite-length strings of
        /// the same major type, ended by a break.
        private mutating func readChunkedString(major: UInt8, start: Int) throws(CBORError) -> [UInt8] {
            var content: [UInt8] = []
            while try !atBreak() {
                let chunkStart = offset
                let initial = try byte()
                try countItem(at: chunkStart)
                guard initial >> 5 == major, initial & 0x1f != 31 else {
                    throw CBORError(
                        .invalidStringChunk,
                        at: chunkStart,
                        "an indefinite-length string chunk must be a definite string of the same type"
                    )
                }
                guard let declared = try argument(initial & 0x1f, start: chunkStart) else {
                    throw CBORError(.invalidStringChunk, at: chunkStart, "nested indefinite-length string chunk")
                }
                content += try readStringBytes(
                    try length(declared, start: chunkStart),
                    isText: major == 3,
                    start: chunkStart
                )
            }
            return content
        }

        private mutating func readMap(info: UInt8, depth: Int, start: Int) throws(CBORError) -> CBOR {
            var pairs: [(key: CBOR, value: CBOR)] = []
            var seen = Set<CBOR>()
            var previousKey: ArraySlice<UInt8>? = nil
            func readPair(_ reader: inout Reader) throws(CBORError) {
                let keyStart = reader.offset
                let key = try reader.readItem(depth: depth + 1)
                let keyBytes = reader.bytes[keyStart..<reader.offset]
                if reader.limits.deterministic {
                    if let previous = previousKey, !previous.lexicographicallyPrecedes(keyBytes) {
                        throw CBORError(
                            .unsortedMapKeys,
                            at: keyStart,
                            "map keys are not in bytewise lexicographic order"
                        )
                    }
                    previousKey = keyBytes
                }
                guard seen.insert(key).inserted else {
                    throw CBORError(.duplicateMapKey, at: keyStart, "duplicate map key (\(key.typeName))")
                }
                if reader.offset < reader.bytes.count, reader.bytes[reader.offset] == 0xff, info == 31 {
                    throw CBORError(.oddMapLength, at: reader.offset, "indefinite-length map ends after a key")
                }
                pairs.append((key, try reader.readItem(depth: depth + 1)))
            }
            if let declared = try argument(info, start: start) {
                let count = try length(declared, start: start)
                guard count <= remaining / 2 else {
                    throw CBORError(.truncated, at: start, "map of \(count) pairs cannot fit in \(remaining) bytes")
                }
                pairs.reserveCapacity(count)
                for _ in 0..<count { try readPair(&self) }
            } else {
                while try !atBreak() { try readPair(&self) }
            }
            return .map(pairs)
        }

        private mutating func readSimple(info: UInt8, start: Int) throws(CBORError) -> CBOR {
            switch info {
            case 0...19: return .simple(info)
            case 20: return .bool(false)
            case 21: return .bool(true)
            case 22: return .null
            case 23: return .undefined
            case 24:
                let value = try byte()
                guard value >= 32 else {
                    throw CBORError(.invalidSimpleValue, at: start, "two-byte simple value \(value) is below 32")
                }
                return .simple(value)
            case 25, 26, 27:
                let width = 1 << Int(info - 24)
                guard remaining >= width else {
                    throw CBORError(.truncated, at: offset, "input ends inside a \(width)-byte float")
                }
                var raw: UInt64 = 0
                for i in 0..<width { raw = raw << 8 | UInt64(bytes[offset + i]) }
                offset += width
                let value: Double
                switch width {
                case 2: value = Self.halfToDouble(UInt16(raw))
                case 4: value = Double(Float(bitPattern: UInt32(raw)))
                default: value = Double(bitPattern: raw)
                }
                if limits.deterministic, CBOREncoder.floatWidth(value) < width {
                    throw CBORError(.nonMinimalEncoding, at: start, "float is not in its shortest exact form")
                }
                // RFC 8949 §4.2.2: the one deterministic NaN is the half-precision quiet NaN 0xf97e00.
                if limits.deterministic, value.isNaN, raw != 0x7e00 {
                    throw CBORError(.nonMinimalEncoding, at: start, "a NaN other than 0xf97e00")
                }
                return .float(value)
            case 28...30:
                throw CBORError(.reservedAdditionalInfo, at: start, "additional information \(info) is reserved")
            default:
                // 0xff is handled by the caller; nothing else reaches here.
                throw CBORError(.unexpectedBreak, at: start, "break outside an indefinite-length item")
            }
        }

        static func halfToDouble(_ half: UInt16) -> Double {
            let exponent = Int(half >> 10) & 0x1f
            let mantissa = Double(half & 0x3ff)
            let magnitude: Double
            if exponent == 0 {
                magnitude = mantissa * 0x1p-24
            } else if exponent == 31 {
                magnitude = mantissa == 0 ? .infinity : .nan
            } else {
                magnitude = (1 + mantissa / 1024) * Double(sign: .plus, exponent: exponent - 15, significand: 1)
            }
            return half & 0x8000 != 0 ? -magnitude : magnitude
        }

        static func isValidUTF8(_ bytes: [UInt8]) -> Bool {
            var iterator = bytes.makeIterator()
            var decoder = UTF8()
            while true {
                switch decoder.decode(&iterator) {
                case .scalarValue: continue
                case .emptyInput: return true
                case .error: return false
                }
            }
        }
    }
}
