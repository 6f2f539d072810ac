/// Cuts a byte stream into `ChannelFrame`s. Pure: no I/O, fed by whoever reads the socket.
///
/// The header is validated (magic, version, type, reserved byte, length against the type's
/// limit) as soon as its eight bytes are present, before any payload is buffered. After the
/// first error the decoder stays failed: a stream that lost framing cannot be resynchronised.
public struct FrameDecoder: Sendable {
    public let limits: ChannelLimits
    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var failure: ChannelError?

    public init(limits: ChannelLimits = .default) {
        self.limits = limits
    }

    /// Bytes received but not yet returned as a frame.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// Adds received bytes.
    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if readIndex > 0 && readIndex * 2 >= buffer.count {
            buffer.removeFirst(readIndex)
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Adds received bytes from a raw buffer.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        feed(bytes.bindMemory(to: UInt8.self))
    }

    /// The next complete frame, or nil if more bytes are needed.
    public mutating func nextFrame() throws(ChannelError) -> ChannelFrame? {
        if let failure { throw failure }
        do {
            guard let (type, length) = try peekHeader() else { return nil }
            let start = readIndex + ChannelFrame.headerLength
            guard buffer.count - start >= length else { return nil }
            let payload = Array(buffer[start..<(start + length)])
            readIndex = start + length
            if readIndex == buffer.count {
                buffer.removeAll(keepingCapacity: buffer.capacity <= 2 * limits.maxChunkPayload)
                readIndex = 0
            }
            return ChannelFrame(type: type, payload: payload)
        } catch {
            failure = error
            throw error
        }
    }

    /// A large frame whose header is validated but whose payload has not all arrived: hands over
    /// the header and the payload bytes buffered so far (removing them), so the caller can read
    /// the rest of the payload straight into place instead of through this buffer. Returns nil
    /// when the buffer holds a complete frame, no full header, or a payload shorter than
    /// `minimumPayload`. The caller must then supply exactly `length - prefix.count` more bytes.
    public mutating func takeIncompleteFrame(minimumPayload: Int) throws(ChannelError)
        -> (type: ChannelMessageType, length: Int, prefix: [UInt8])?
    {
        if let failure { throw failure }
        let header: (ChannelMessageType, Int)?
        do {
            header = try peekHeader()
        } catch {
            failure = error
            throw error
        }
        guard let (type, length) = header, length >= minimumPayload else { return nil }
        let start = readIndex + ChannelFrame.headerLength
        guard buffer.count - start < length else { return nil }
        let prefix = Array(buffer[start...])
        buffer.removeAll(keepingCapacity: true)
        readIndex = 0
        return (type, length, prefix)
    }

    /// Declares the end of the stream: fails if it ended inside a frame.
    public mutating func finish() throws(ChannelError) {
        if let failure { throw failure }
        if bufferedByteCount > 0 {
            let error = ChannelError(.truncated, "the stream ended inside a frame (\(bufferedByteCount) bytes pending)")
            failure = error
            throw error
        }
    }

    private func peekHeader() throws(ChannelError) -> (ChannelMessageType, Int)? {
        let available = buffer.count - readIndex
        // Validate the bytes that are already here, so garbage is refused without waiting for more.
        if available >= 1, buffer[readIndex] != ChannelFrame.magic {
            throw ChannelError(.badMagic, "frame does not start with the channel magic byte")
        }
        if available >= 2, buffer[readIndex + 1] != ChannelFrame.version {
            throw ChannelError(
                .unsupportedVersion,
                "channel protocol version \(buffer[readIndex + 1]) is not supported (this build speaks \(ChannelFrame.version))")
        }
        var type: ChannelMessageType?
        if available >= 3 {
            guard let known = ChannelMessageType(rawValue: buffer[readIndex + 2]) else {
                throw ChannelError(.unknownType, "unknown frame type 0x\(String(buffer[readIndex + 2], radix: 16))")
            }
            type = known
        }
        if available >= 4, buffer[readIndex + 3] != 0 {
            throw ChannelError(.reservedBits, "reserved header byte is not zero")
        }
        guard available >= ChannelFrame.headerLength, let type else { return nil }
        var length = 0
        for i in 4..<8 { length = length << 8 | Int(buffer[readIndex + i]) }
        let limit = limits.maxPayloadBytes(for: type)
        guard length <= limit else {
            throw ChannelError(.frameTooLarge, "\(type) frame declares \(length) bytes; the limit is \(limit)")
        }
        return (type, length)
    }
}
