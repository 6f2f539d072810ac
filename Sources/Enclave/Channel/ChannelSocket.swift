#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a channel connects or listens: a Unix socket path (local mode) or a vsock CID and port
/// (Nitro mode: the parent instance is CID 3).
public enum ChannelAddress: Sendable, Equatable, CustomStringConvertible {
    case unix(path: String)
    case vsock(cid: UInt32, port: UInt32)

    /// The CID of the parent instance as seen from inside a Nitro Enclave.
    public static let parentCID: UInt32 = 3
    /// `VMADDR_CID_ANY`: listen on every CID.
    public static let anyCID: UInt32 = 0xFFFF_FFFF

    /// Parses `unix:/path` or `vsock:CID:PORT`.
    public init?(_ text: String) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty, path.utf8.count < 108 else { return nil }
            self = .unix(path: path)
        } else if text.hasPrefix("vsock:") {
            let parts = text.dropFirst(6).split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let cid = UInt32(parts[0]), let port = UInt32(parts[1]) else { return nil }
            self = .vsock(cid: cid, port: port)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .vsock(let cid, let port): "vsock:\(cid):\(port)"
        }
    }
}

/// Thin POSIX socket calls for the channel, each capturing `errno` where it happens.
/// All descriptors are close-on-exec and non-blocking; waits use `poll` with a deadline.
public enum ChannelSocket {
    static let afVSOCK: Int32 = 40

    /// A connected pair of Unix stream sockets.
    public static func pair() throws(ChannelError) -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw ioError("socketpair")
        }
        try setNonBlocking(fds[0])
        try setNonBlocking(fds[1])
        return (fds[0], fds[1])
    }

    /// A listening socket at `address` (backlog 1: one enclave per job).
    public static func listen(_ address: ChannelAddress) throws(ChannelError) -> Int32 {
        let fd = try makeSocket(for: address)
        do throws(ChannelError) {
            try withSockaddr(address) { (pointer, length) throws(ChannelError) in
                guard bind(fd, pointer, length) == 0 else { throw ioError("bind \(address)") }
            }
            guard Glibc.listen(fd, 1) == 0 else { throw ioError("listen \(address)") }
            return fd
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Accepts one connection on `listener`, waiting at most until `deadline`; `stillWaiting`
    /// is asked between polls (e.g. "is the enclave process still alive?").
    public static func accept(
        _ listener: Int32, deadline: ContinuousClock.Instant, stillWaiting: () -> Bool = { true }
    ) throws(ChannelError) -> Int32 {
        try setNonBlocking(listener)
        while true {
            let fd = Glibc.accept(listener, nil, nil)
            if fd >= 0 {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                try setNonBlocking(fd)
                return fd
            }
            let code = errno
            guard code == EAGAIN || code == EWOULDBLOCK || code == EINTR else { throw ioError("accept", code) }
            guard stillWaiting() else { throw ChannelError(.closed, "the peer went away before connecting") }
            _ = try wait(listener, events: Int16(POLLIN), deadline: deadline, slice: 100, what: "a connection")
        }
    }

    /// Connects to `address`, retrying refused or missing endpoints until `deadline`.
    public static func connect(_ address: ChannelAddress, deadline: ContinuousClock.Instant) throws(ChannelError) -> Int32 {
        while true {
            let fd = try makeSocket(for: address)
            var failure: Int32 = 0
            try withSockaddr(address) { (pointer, length) throws(ChannelError) in
                if Glibc.connect(fd, pointer, length) != 0 { failure = errno }
            }
            if failure == 0 {
                try setNonBlocking(fd)
                return fd
            }
            Glibc.close(fd)
            let retryable = failure == ECONNREFUSED || failure == ENOENT || failure == EINTR || failure == ECONNRESET
                || failure == ETIMEDOUT || failure == ENODEV
            guard retryable else { throw ioError("connect \(address)", failure) }
            guard ContinuousClock.now < deadline else {
                throw ChannelError(.timeout, "could not connect to \(address) in time (\(errnoText(failure)))")
            }
            usleep(50_000)
        }
    }

    /// Waits until `fd` is ready for `events` or `deadline` passes; polls in slices of at most
    /// `slice` milliseconds so callers can re-check conditions. Returns the `revents`.
    @discardableResult
    static func wait(
        _ fd: Int32, events: Int16, deadline: ContinuousClock.Instant, slice: Int = 1000, what: String
    ) throws(ChannelError) -> Int16 {
        let remaining = deadline - ContinuousClock.now
        guard remaining > .zero else { throw ChannelError(.timeout, "timed out waiting for \(what)") }
        let (seconds, attoseconds) = remaining.components
        let milliseconds = min(Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000) + 1, slice)
        var pfd = pollfd(fd: fd, events: events, revents: 0)
        let result = poll(&pfd, 1, Int32(milliseconds))
        if result < 0 {
            let code = errno
            if code == EINTR { return 0 }
            throw ioError("poll", code)
        }
        return pfd.revents
    }

    static func setNonBlocking(_ fd: Int32) throws(ChannelError) {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else { throw ioError("fcntl") }
    }

    private static func makeSocket(for address: ChannelAddress) throws(ChannelError) -> Int32 {
        let family: Int32
        switch address {
        case .unix: family = AF_UNIX
        case .vsock: family = afVSOCK
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ioError("socket \(address)") }
        return fd
    }

    private static func withSockaddr(
        _ address: ChannelAddress, _ body: (UnsafePointer<sockaddr>, socklen_t) throws(ChannelError) -> Void
    ) throws(ChannelError) {
        switch address {
        case .unix(let path):
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
                throw ChannelError(.io, "Unix socket path is too long")
            }
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            var result: Result<Void, ChannelError> = .success(())
            withUnsafePointer(to: &addr) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    do throws(ChannelError) {
                        try body(sa, socklen_t(MemoryLayout<sockaddr_un>.size))
                    } catch { result = .failure(error) }
                }
            }
            try result.get()
        case .vsock(let cid, let port):
            // struct sockaddr_vm { sa_family_t family; u16 reserved1; u32 port; u32 cid; u8 zero[4]; }
            var raw = [UInt8](repeating: 0, count: 16)
            withUnsafeBytes(of: UInt16(afVSOCK)) { raw.replaceSubrange(0..<2, with: $0) }
            withUnsafeBytes(of: port) { raw.replaceSubrange(4..<8, with: $0) }
            withUnsafeBytes(of: cid) { raw.replaceSubrange(8..<12, with: $0) }
            var result: Result<Void, ChannelError> = .success(())
            raw.withUnsafeBytes { buffer in
                let sa = buffer.baseAddress!.assumingMemoryBound(to: sockaddr.self)
                do throws(ChannelError) {
                    try body(sa, socklen_t(16))
                } catch { result = .failure(error) }
            }
            try result.get()
        }
    }

    static func errnoText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    static func ioError(_ call: String, _ code: Int32 = errno) -> ChannelError {
        ChannelError(.io, "\(call) failed: \(errnoText(code)) (errno \(code))")
    }
}
