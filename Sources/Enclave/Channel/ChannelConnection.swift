#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A connected channel endpoint over a stream socket (Unix or vsock): sends and receives whole
/// `ChannelMessage`s with a deadline on every call.
///
/// One thread receives at a time; `send` may be called from any thread (sends are serialised).
/// `shutdown()` from any thread makes a blocked `receive` or `send` fail promptly with `.closed`.
/// The connection owns its descriptor and closes it on `close()` or deinit.
public final class ChannelConnection: @unchecked Sendable {
    public let limits: ChannelLimits
    private let fd: Int32
    private var decoder: ChannelMessageDecoder
    private let sendLock = NSLock()
    private let stateLock = NSLock()
    private var isShutDown = false
    private var isClosed = false
    private var readBuffer: [UInt8]
    /// Set once a frame was lost half-read (timeout, closed peer): every later receive fails.
    private var streamFailure: ChannelError?

    /// Takes ownership of a connected, non-blocking stream socket.
    public init(fileDescriptor: Int32, limits: ChannelLimits = .default) {
        self.fd = fileDescriptor
        self.limits = limits
        self.decoder = ChannelMessageDecoder(limits: limits)
        self.readBuffer = [UInt8](repeating: 0, count: 64 * 1024)
        _ = try? ChannelSocket.setNonBlocking(fileDescriptor)
        // Room for a few data chunks in flight, so neither side waits for the other after every
        // 200 KiB (the Linux default). A hint: the kernel caps it at net.core.wmem_max/rmem_max.
        var size = Int32(Self.socketBufferBytes)
        _ = setsockopt(fileDescriptor, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        _ = setsockopt(fileDescriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    }

    /// The socket buffer size asked for (each direction).
    static let socketBufferBytes = 2 * 1024 * 1024
    /// Frames with at least this much payload are received straight into their payload array.
    static let directPayloadBytes = 64 * 1024

    deinit { close() }

    private var shutDown: Bool {
        stateLock.lock()
        defer { stateLock.unlock() }
        return isShutDown
    }

    /// Sends one message, waiting at most `timeout` for the peer to take it.
    public func send(_ message: ChannelMessage, timeout: Duration) throws(ChannelError) {
        switch message {
        case .datasetChunk(let bytes), .outputChunk(let bytes):
            // Data frames go out from the caller's array without being copied into a frame.
            try bytes.withRawBytes { (raw) throws(ChannelError) in
                try sendData(message.type, raw, timeout: timeout)
            }
        default:
            let bytes = message.encoded()
            try bytes.withRawBytes { (raw) throws(ChannelError) in
                try write(raw, UnsafeRawBufferPointer(start: nil, count: 0), deadline: ContinuousClock.now + timeout)
            }
        }
    }

    /// Sends one data frame (`datasetChunk` or `outputChunk`) straight from `payload`: header and
    /// payload leave in one `sendmsg` (gather write), the payload is not copied. The payload must
    /// be 1 to `limits.maxChunkPayload` bytes.
    public func sendData(_ type: ChannelMessageType, _ payload: UnsafeRawBufferPointer, timeout: Duration)
        throws(ChannelError)
    {
        guard type == .datasetChunk || type == .outputChunk else {
            throw ChannelError(.unexpectedMessage, "\(type) is not a data frame")
        }
        guard !payload.isEmpty else { throw ChannelError(.malformedPayload, "\(type) message is empty") }
        guard payload.count <= limits.maxChunkPayload else {
            throw ChannelError(
                .frameTooLarge, "\(type) frame of \(payload.count) bytes; the limit is \(limits.maxChunkPayload)")
        }
        var header: [UInt8] = []
        header.reserveCapacity(ChannelFrame.headerLength)
        ChannelFrame.appendHeader(type: type, payloadLength: payload.count, to: &header)
        try header.withRawBytes { (raw) throws(ChannelError) in
            try write(raw, payload, deadline: ContinuousClock.now + timeout)
        }
    }

    /// Writes `first` then `second` completely (gather writes), waiting for room until `deadline`.
    private func write(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer, deadline: ContinuousClock.Instant)
        throws(ChannelError)
    {
        sendLock.lock()
        defer { sendLock.unlock() }
        let total = first.count + second.count
        var offset = 0
        while offset < total {
            guard !shutDown else { throw ChannelError(.closed, "the channel was shut down") }
            var vectors: [iovec] = []
            if offset < first.count {
                vectors.append(
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: first.baseAddress! + offset), iov_len: first.count - offset))
            }
            if second.count > 0 {
                let skip = max(0, offset - first.count)
                vectors.append(
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: second.baseAddress! + skip), iov_len: second.count - skip))
            }
            let written = vectors.withUnsafeMutableBufferPointer { buffer -> Int in
                var header = msghdr()
                header.msg_iov = buffer.baseAddress
                header.msg_iovlen = buffer.count
                return Glibc.sendmsg(fd, &header, Int32(MSG_NOSIGNAL))
            }
            if written > 0 {
                offset += written
                continue
            }
            let code = errno
            if written < 0 && (code == EAGAIN || code == EWOULDBLOCK || code == EINTR) {
                let revents = try ChannelSocket.wait(
                    fd, events: Int16(POLLOUT), deadline: deadline, slice: 200, what: "the peer to read")
                if revents & Int16(POLLHUP | POLLERR) != 0 && revents & Int16(POLLOUT) == 0 {
                    throw ChannelError(.closed, "the peer closed the channel")
                }
                continue
            }
            if code == EPIPE || code == ECONNRESET { throw ChannelError(.closed, "the peer closed the channel") }
            throw ChannelSocket.ioError("sendmsg", code)
        }
    }

    /// Receives the next message, waiting at most `timeout`. A peer `error` message is returned
    /// as a message, not thrown.
    public func receive(timeout: Duration) throws(ChannelError) -> ChannelMessage {
        if let streamFailure { throw streamFailure }
        let deadline = ContinuousClock.now + timeout
        while true {
            if let message = try decoder.next() { return message }
            guard !shutDown else { throw ChannelError(.closed, "the channel was shut down") }
            if let frame = try decoder.takeIncompleteFrame(minimumPayload: Self.directPayloadBytes) {
                do {
                    return try receiveRest(of: frame, deadline: deadline)
                } catch {
                    // Part of a frame is gone: the stream cannot be resumed.
                    streamFailure = error
                    throw error
                }
            }
            let count = readBuffer.withUnsafeMutableBytes { raw in Glibc.recv(fd, raw.baseAddress!, raw.count, 0) }
            if count > 0 {
                decoder.feed(readBuffer[0..<count])
                continue
            }
            if count == 0 {
                try decoder.finish()
                throw ChannelError(.closed, "the peer closed the channel")
            }
            if let error = Self.recvError(errno) { throw error }
            try ChannelSocket.wait(fd, events: Int16(POLLIN), deadline: deadline, slice: 200, what: "a message")
        }
    }

    /// After `recv` failed with `code`: nil when it may simply be retried (nothing to read yet, or
    /// interrupted), else the channel error.
    private static func recvError(_ code: Int32) -> ChannelError? {
        if code == EAGAIN || code == EWOULDBLOCK || code == EINTR { return nil }
        if code == ECONNRESET { return ChannelError(.closed, "the peer reset the channel") }
        return ChannelSocket.ioError("recv", code)
    }

    /// The next message if one is already complete or readable without waiting, else nil.
    public func receiveIfAvailable() throws(ChannelError) -> ChannelMessage? {
        if let streamFailure { throw streamFailure }
        while true {
            if let message = try decoder.next() { return message }
            guard !shutDown else { throw ChannelError(.closed, "the channel was shut down") }
            let count = readBuffer.withUnsafeMutableBytes { raw in Glibc.recv(fd, raw.baseAddress!, raw.count, 0) }
            if count > 0 {
                decoder.feed(readBuffer[0..<count])
                continue
            }
            if count == 0 {
                try decoder.finish()
                throw ChannelError(.closed, "the peer closed the channel")
            }
            if let error = Self.recvError(errno) { throw error }
            return nil
        }
    }

    /// Completes a large frame by reading the rest of its payload straight into the payload
    /// array (one copy, by the kernel), never past the frame's end.
    private func receiveRest(
        of frame: (type: ChannelMessageType, length: Int, prefix: [UInt8]), deadline: ContinuousClock.Instant
    ) throws(ChannelError) -> ChannelMessage {
        var failure: ChannelError?
        let payload = [UInt8](unsafeUninitializedCapacity: frame.length) { buffer, initialized in
            let base = UnsafeMutableRawPointer(buffer.baseAddress!)
            frame.prefix.withUnsafeBytes { if let source = $0.baseAddress { base.copyMemory(from: source, byteCount: $0.count) } }
            var have = frame.prefix.count
            do throws(ChannelError) {
                while have < frame.length {
                    guard !shutDown else { throw ChannelError(.closed, "the channel was shut down") }
                    let count = Glibc.recv(fd, base + have, frame.length - have, 0)
                    if count > 0 {
                        have += count
                        continue
                    }
                    if count == 0 {
                        throw ChannelError(.truncated, "the stream ended inside a frame (\(have) of \(frame.length) payload bytes)")
                    }
                    if let error = Self.recvError(errno) { throw error }
                    try ChannelSocket.wait(fd, events: Int16(POLLIN), deadline: deadline, slice: 200, what: "a message")
                }
            } catch {
                failure = error
            }
            initialized = failure == nil ? frame.length : 0
        }
        if let failure { throw failure }
        return try ChannelMessage(frame: ChannelFrame(type: frame.type, payload: payload), limits: limits)
    }

    /// Stops the connection in both directions; blocked calls fail with `.closed`.
    public func shutdown() {
        stateLock.lock()
        defer { stateLock.unlock() }
        guard !isClosed else { return }
        isShutDown = true
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Closes the descriptor (idempotent).
    public func close() {
        stateLock.lock()
        defer { stateLock.unlock() }
        guard !isClosed else { return }
        isClosed = true
        isShutDown = true
        _ = Glibc.close(fd)
    }
}
