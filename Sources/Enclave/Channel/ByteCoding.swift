/// Big-endian writer for channel payloads: fixed-width integers, and byte strings and UTF-8
/// strings prefixed with a 32-bit length.
struct PayloadWriter {
    private(set) var bytes: [UInt8] = []

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u32(_ value: UInt32) {
        bytes.append(contentsOf: [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)])
    }
    mutating func u64(_ value: UInt64) {
        u32(UInt32(value >> 32))
        u32(UInt32(value & 0xFFFF_FFFF))
    }
    mutating func f64(_ value: Double) { u64(value.bitPattern) }
    mutating func bytes(_ value: [UInt8]) {
        u32(UInt32(value.count))
        bytes.append(contentsOf: value)
    }
    mutating func string(_ value: String) { bytes(Array(value.utf8)) }
    mutating func raw(_ value: [UInt8]) { bytes.append(contentsOf: value) }
}

/// Reader matching `PayloadWriter`. Every read is bounds-checked; every field has a limit; the
/// payload must be consumed exactly.
struct PayloadReader {
    private let bytes: [UInt8]
    private var index = 0
    let context: String

    init(_ bytes: [UInt8], context: String) {
        self.bytes = bytes
        self.context = context
    }

    private func fail(_ what: String) -> ChannelError {
        ChannelError(.malformedPayload, "\(context): \(what)")
    }

    private mutating func take(_ count: Int, _ field: String) throws(ChannelError) -> ArraySlice<UInt8> {
        guard count >= 0, bytes.count - index >= count else { throw fail("\(field) is truncated") }
        defer { index += count }
        return bytes[index..<(index + count)]
    }

    mutating func u8(_ field: String) throws(ChannelError) -> UInt8 { try take(1, field).first! }

    mutating func u32(_ field: String) throws(ChannelError) -> UInt32 {
        try take(4, field).reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func u64(_ field: String) throws(ChannelError) -> UInt64 {
        try take(8, field).reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func f64(_ field: String) throws(ChannelError) -> Double { Double(bitPattern: try u64(field)) }

    mutating func bool(_ field: String) throws(ChannelError) -> Bool {
        switch try u8(field) {
        case 0: return false
        case 1: return true
        default: throw fail("\(field) is not a boolean (0 or 1)")
        }
    }

    /// A length-prefixed byte string of at most `max` (and, if given, at least `min`) bytes.
    mutating func bytes(_ field: String, max: Int, min: Int = 0) throws(ChannelError) -> [UInt8] {
        let length = Int(try u32("\(field) length"))
        guard length <= max else { throw fail("\(field) is \(length) bytes; the limit is \(max)") }
        guard length >= min else { throw fail("\(field) is \(length) bytes; at least \(min) are required") }
        return Array(try take(length, field))
    }

    /// A byte string of exactly `count` bytes (e.g. a SHA-256 digest).
    mutating func fixedBytes(_ field: String, count: Int) throws(ChannelError) -> [UInt8] {
        let value = try bytes(field, max: count)
        guard value.count == count else { throw fail("\(field) must be \(count) bytes, got \(value.count)") }
        return value
    }

    /// A length-prefixed UTF-8 string of at most `max` bytes, without NUL or other C0 controls
    /// other than tab and newline.
    mutating func string(_ field: String, max: Int, allowEmpty: Bool = false) throws(ChannelError) -> String {
        let raw = try bytes(field, max: max)
        guard allowEmpty || !raw.isEmpty else { throw fail("\(field) is empty") }
        guard let text = String(validating: raw, as: UTF8.self) else { throw fail("\(field) is not valid UTF-8") }
        guard !raw.contains(where: { $0 < 0x20 && $0 != 0x09 && $0 != 0x0A }) && !raw.contains(0x7F) else {
            throw fail("\(field) contains a control character")
        }
        return text
    }

    /// The rest of the payload, as-is.
    mutating func rest() -> [UInt8] {
        defer { index = bytes.count }
        return Array(bytes[index...])
    }

    func finish() throws(ChannelError) {
        guard index == bytes.count else { throw fail("\(bytes.count - index) trailing bytes") }
    }
}

extension Array where Element == UInt8 {
    /// `withUnsafeBytes` that keeps the body's typed error (the standard one rethrows `any Error`).
    public func withRawBytes<T, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> T) throws(E) -> T {
        let result: Result<T, E> = withUnsafeBytes { raw in
            do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}
