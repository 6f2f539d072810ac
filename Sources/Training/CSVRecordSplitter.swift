#if canImport(Glibc)
import Glibc
#endif

/// Splits CSV records into field ranges (RFC 4180: fields separated by commas, optional double
/// quotes with `""` escapes, LF, CR or CRLF line ends). The reader uses it for the header, and to
/// name a bad record's first fault exactly as a record-at-a-time reader would; `CSVBlockParser`
/// parses the data records in one fused pass.
enum CSVRecordSplitter {
    /// One field: `start..<end` of the buffer, and whether it was quoted (it may hold `""`).
    struct Field {
        var start: Int
        var end: Int
        var quoted: Bool
    }

    /// Why a record is malformed: the text after "row N ".
    struct Malformed: Error {
        let detail: String
    }

    /// Splits the record starting at `start` into `fields`; returns the index after it, or nil when
    /// the record is incomplete and more input may follow (`final` false).
    static func split(
        _ buf: UnsafeBufferPointer<UInt8>, from start: Int, final: Bool, limits: CSVLimits, into fields: inout [Field]
    ) throws(Malformed) -> Int? {
        fields.removeAll(keepingCapacity: true)
        var i = start
        let n = buf.count
        while true {
            if fields.count >= limits.maxColumns { throw Malformed(detail: "has more than \(limits.maxColumns) fields") }
            if i < n, buf[i] == UInt8(ascii: "\"") {
                // Quoted field: runs to the closing quote; "" is an escaped quote.
                var j = i + 1
                var closed = false
                while j < n {
                    if buf[j] == UInt8(ascii: "\"") {
                        if j + 1 < n, buf[j + 1] == UInt8(ascii: "\"") {
                            j += 2
                            continue
                        }
                        if j + 1 == n, !final { return nil }  // might be the first half of ""
                        closed = true
                        break
                    }
                    j += 1
                }
                if !closed {
                    if final { throw Malformed(detail: "has an unterminated quoted field") }
                    return nil
                }
                if j - i - 1 > limits.maxFieldBytes {
                    throw Malformed(detail: "has a field longer than \(limits.maxFieldBytes) bytes")
                }
                fields.append(Field(start: i + 1, end: j, quoted: true))
                i = j + 1
                if i == n { return final ? n : nil }
                switch buf[i] {
                case UInt8(ascii: ","): i += 1; continue
                case UInt8(ascii: "\n"): return i + 1
                case UInt8(ascii: "\r"):
                    if i + 1 < n { return buf[i + 1] == UInt8(ascii: "\n") ? i + 2 : i + 1 }
                    return final ? n : nil
                default:
                    throw Malformed(detail: "has text after a closing quote")
                }
            }
            // Unquoted field.
            var j = i
            while j < n {
                let byte = buf[j]
                if byte == UInt8(ascii: ",") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") { break }
                if byte == UInt8(ascii: "\"") { throw Malformed(detail: "has a quote inside an unquoted field") }
                j += 1
            }
            if j - i > limits.maxFieldBytes {
                throw Malformed(detail: "has a field longer than \(limits.maxFieldBytes) bytes")
            }
            if j == n {
                guard final else { return nil }
                fields.append(Field(start: i, end: j, quoted: false))
                return n
            }
            fields.append(Field(start: i, end: j, quoted: false))
            switch buf[j] {
            case UInt8(ascii: ","): i = j + 1
            case UInt8(ascii: "\n"): return j + 1
            default:  // \r
                if j + 1 < n { return buf[j + 1] == UInt8(ascii: "\n") ? j + 2 : j + 1 }
                return final ? n : nil
            }
        }
    }

    /// Whether a record split into `fields` is a blank line (skipped, not counted as a row).
    static func isBlank(_ fields: [Field]) -> Bool {
        fields.count == 1 && !fields[0].quoted && fields[0].end == fields[0].start
    }

    /// A field's bytes with `""` unescaped.
    static func bytes(_ buf: UnsafeBufferPointer<UInt8>, _ field: Field) -> [UInt8] {
        guard field.quoted else { return Array(buf[field.start..<field.end]) }
        var out: [UInt8] = []
        var p = field.start
        while p < field.end {
            out.append(buf[p])
            p += buf[p] == UInt8(ascii: "\"") ? 2 : 1
        }
        return out
    }

    /// Where to cut `buf`, which starts at a record boundary, so that the part before holds only
    /// whole records: just after the last line end outside quotes (0 when there is none). When a
    /// record is malformed (a quote inside an unquoted field, text after a closing quote) the
    /// answer is the whole buffer: records are read in order, so the reader stops at that record
    /// before it reaches the unfinished end. A cut between the CR and LF of a CRLF leaves a blank
    /// line, which readers skip.
    static func lastRecordEnd(_ buf: UnsafeBufferPointer<UInt8>) -> Int {
        guard let base = buf.baseAddress, !buf.isEmpty else { return 0 }
        if memchr(base, Int32(UInt8(ascii: "\"")), buf.count) == nil {
            var i = buf.count - 1
            while i >= 0 {
                if buf[i] == UInt8(ascii: "\n") || buf[i] == UInt8(ascii: "\r") { return i + 1 }
                i -= 1
            }
            return 0
        }
        enum State { case fieldStart, unquoted, quoted, quoteInQuoted }
        var state = State.fieldStart
        var last = 0
        for i in 0..<buf.count {
            let byte = buf[i]
            let isLineEnd = byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
            switch state {
            case .quoted:
                if byte == UInt8(ascii: "\"") { state = .quoteInQuoted }
            case .fieldStart, .unquoted, .quoteInQuoted:
                if byte == UInt8(ascii: "\"") {
                    switch state {
                    case .fieldStart, .quoteInQuoted: state = .quoted  // an opening or an escaped quote
                    default: return buf.count
                    }
                } else if byte == UInt8(ascii: ",") {
                    state = .fieldStart
                } else if isLineEnd {
                    state = .fieldStart
                    last = i + 1
                } else if state == .quoteInQuoted {
                    return buf.count
                } else {
                    state = .unquoted
                }
            }
        }
        return last
    }
}
