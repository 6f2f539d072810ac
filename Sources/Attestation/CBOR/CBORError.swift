/// Why a CBOR input was rejected: a stable ``Code`` for programs, the byte offset where the decoder
/// stopped, and a message for people. Input bytes are never quoted in the message.
public struct CBORError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable identifier of the failure; compare codes, not messages.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The input ended inside an item.
        public static let truncated = Code(rawValue: "cbor.truncated")
        /// Bytes follow the single top-level item.
        public static let trailingBytes = Code(rawValue: "cbor.trailing_bytes")
        /// The input is longer than ``CBORDecoder/Limits/maxInputBytes``.
        public static let inputTooLarge = Code(rawValue: "cbor.input_too_large")
        /// Arrays, maps and tags nest deeper than ``CBORDecoder/Limits/maxDepth``.
        public static let depthLimitExceeded = Code(rawValue: "cbor.depth_limit")
        /// More data items than ``CBORDecoder/Limits/maxItems``.
        public static let itemLimitExceeded = Code(rawValue: "cbor.item_limit")
        /// A string, array or map declares more than the input (or ``CBORDecoder/Limits``) can hold.
        public static let lengthTooLarge = Code(rawValue: "cbor.length_too_large")
        /// Additional information 28, 29 or 30 (reserved, RFC 8949 §3).
        public static let reservedAdditionalInfo = Code(rawValue: "cbor.reserved_additional_info")
        /// Indefinite length (31) on a major type that has none: integers, tags, simple values.
        public static let invalidIndefiniteLength = Code(rawValue: "cbor.invalid_indefinite_length")
        /// A "break" (0xff) outside an indefinite-length item.
        public static let unexpectedBreak = Code(rawValue: "cbor.unexpected_break")
        /// A chunk of an indefinite-length string that is not a definite string of the same type.
        public static let invalidStringChunk = Code(rawValue: "cbor.invalid_string_chunk")
        /// A text string that is not valid UTF-8.
        public static let invalidUTF8 = Code(rawValue: "cbor.invalid_utf8")
        /// Simple value encoded in two bytes with a value below 32 (RFC 8949 §3.3).
        public static let invalidSimpleValue = Code(rawValue: "cbor.invalid_simple_value")
        /// An indefinite-length map ended after a key, before its value.
        public static let oddMapLength = Code(rawValue: "cbor.odd_map_length")
        /// The same key twice in one map.
        public static let duplicateMapKey = Code(rawValue: "cbor.duplicate_map_key")
        /// Deterministic mode only: an argument not in its shortest form.
        public static let nonMinimalEncoding = Code(rawValue: "cbor.non_minimal")
        /// Deterministic mode only: an indefinite-length item.
        public static let indefiniteLengthNotAllowed = Code(rawValue: "cbor.indefinite_not_allowed")
        /// Deterministic mode only: map keys not in bytewise lexicographic order of their encodings.
        public static let unsortedMapKeys = Code(rawValue: "cbor.unsorted_map_keys")
    }

    /// What went wrong.
    public let code: Code
    /// Offset in the input where the decoder detected the problem.
    public let offset: Int
    /// A human-readable explanation (never contains input bytes).
    public let message: String

    public init(_ code: Code, at offset: Int, _ message: String) {
        self.code = code
        self.offset = offset
        self.message = message
    }

    public var description: String { "\(code) at byte \(offset): \(message)" }
}
