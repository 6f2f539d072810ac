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

    /// Takes ownership of a connected, non-blocking stream socket.
    public init(fileDescriptor: Int32, limits: ChannelLimits = .default) {
        self.fd = fileDescriptor
        self.limits = limits
        self.decoder = ChannelMessageDecoder(limits: limits)
        self.readBuffer = [UInt8](repeating: 0, count: 64 * 1024)
        _ = try? ChannelSocket.setNonBlocking(fileDescriptor)
    }

    deinit { close() }

    private var shutDown: Bool {
        stateLock.lock()
        defer { stateLock.unlock() }
        return isShutDown
    }

    /// Sends one message, waiting at most `timeout` for the peer to take it.
    public func send(_ message: ChannelMessage, timeout: Duration) throws(ChannelError) {
        let bytes = message.encoded()
        let deadline = ContinuousClock.now + timeout
        sendLock.lock()
        defer { sendLock.unlock() }
        var offset = 0
        while offset < bytes.count {
            guard !shutDown else { throw ChannelError(.closed, "the channel was shut down") }
            let written = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
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
            throw ChannelSocket.ioError("send", code)
        }
    }

    /// Receives the next message, waiting at most `timeout`. A peer `error` message is returned
    /// as a message, not thrown.
    public func receive(timeout: Duration) throws(ChannelError) -> ChannelMessage {
        let deadline = ContinuousClock.now + timeout
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
            let code = errno
            guard code == EAGAIN || code == EWOULDBLOCK || code == EINTR else {
                if code == ECONNRESET { throw ChannelError(.closed, "the peer reset the channel") }
                throw ChannelSocket.ioError("recv", code)
            }
            try ChannelSocket.wait(fd, events: Int16(POLLIN), deadline: deadline, slice: 200, what: "a message")
        }
    }

    /// The next message if one is already complete or readable without waiting, else nil.
    public func receiveIfAvailable() throws(ChannelError) -> ChannelMessage? {
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
            let code = errno
            if code == EAGAIN || code == EWOULDBLOCK || code == EINTR { return nil }
            if code == ECONNRESET { throw ChannelError(.closed, "the peer reset the channel") }
            throw ChannelSocket.ioError("recv", code)
        }
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
