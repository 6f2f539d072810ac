import CSystemIO
import Glibc
import Logging
import Synchronization

/// An HTTP/1.1 server on raw sockets: one epoll event loop per core sharing one listening
/// socket, handlers run as Swift tasks off the loops.
///
/// `start()` binds and returns (read `port` when you asked for port 0); `shutdown()` stops
/// accepting, lets in-flight requests finish within the grace period, then closes the rest.
public final class HTTPServer: Sendable {
    public let configuration: HTTPServerConfiguration
    let core: ServerCore
    private let state = Mutex<RunState>(RunState())

    struct RunState: ~Copyable {
        var loops: [EventLoop] = []
        var listenFD: Int32 = -1
        var port = 0
        var stopped = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    /// - Parameters:
    ///   - responder: answers every request (e.g. `router.respond(to:)`).
    ///   - accessLog: receives one entry per request, on a loop thread: it must not block.
    public init(
        configuration: HTTPServerConfiguration, logger: Logger = Logger(label: "cleanroom.http"),
        accessLog: (@Sendable (AccessLogEntry) -> Void)? = nil, responder: @escaping Responder
    ) throws {
        self.configuration = configuration
        let tls = try configuration.tls.map { try TLSContext($0) }
        core = ServerCore(
            responder: responder, limits: configuration.limits, accessLog: accessLog, tls: tls, logger: logger)
    }

    /// A server answering with `router`.
    public convenience init(
        configuration: HTTPServerConfiguration, router: Router, logger: Logger = Logger(label: "cleanroom.http"),
        accessLog: (@Sendable (AccessLogEntry) -> Void)? = nil
    ) throws {
        try self.init(configuration: configuration, logger: logger, accessLog: accessLog) { request in
            await router.respond(to: request)
        }
    }

    /// The bound port (after `start()`).
    public var port: Int { state.withLock { $0.port } }

    /// Open client connections right now.
    public var connectionCount: Int { core.openConnections.load(ordering: .relaxed) }

    /// Binds the listening socket and starts the event loops.
    public func start() throws {
        signal(SIGPIPE, SIG_IGN)
        let fd = try Socket.listen(host: configuration.host, port: configuration.port)
        let port = Socket.localPort(fd)
        var loops: [EventLoop] = []
        for i in 0..<max(1, configuration.eventLoops) {
            let loop = try EventLoop(index: i)
            loops.append(loop)
        }
        for loop in loops {
            let listener = Listener(fd: fd, loop: loop, core: core)
            loop.execute { loop.register(fd, listener, events: EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue) }
            loop.start()
        }
        state.withLock {
            $0.loops = loops
            $0.listenFD = fd
            $0.port = port
        }
    }

    /// Waits until `shutdown()` has finished.
    public func waitUntilStopped() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { s -> Bool in
                if s.stopped { return true }
                s.waiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Graceful shutdown: stop accepting, close idle connections, let in-flight requests finish
    /// (their responses carry `Connection: close`) for up to `gracePeriod`, then close the rest.
    public func shutdown(gracePeriod: Duration? = nil) async {
        let (loops, fd) = state.withLock { ($0.loops, $0.listenFD) }
        guard !loops.isEmpty else { return }
        core.draining.store(true, ordering: .relaxed)
        // 1. Stop accepting on every loop, then close the listening socket.
        await onEveryLoop(loops) { loop in loop.deregister(fd) }
        if fd >= 0 { close(fd) }
        // 2. Drain.
        await onEveryLoop(loops) { loop in
            for case let connection as Connection in loop.registeredSources { connection.beginDrain() }
        }
        let deadline = MonotonicClock.now() + (gracePeriod ?? configuration.limits.shutdownGracePeriod).nanoseconds
        while core.openConnections.load(ordering: .relaxed) > 0 && MonotonicClock.now() < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        // 3. Close whatever is left and stop the loops.
        await onEveryLoop(loops) { loop in
            for case let connection as Connection in loop.registeredSources { connection.close() }
        }
        for loop in loops { loop.stopAndJoin() }
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.stopped = true
            s.loops = []
            s.listenFD = -1
            let w = s.waiters
            s.waiters = []
            return w
        }
        for waiter in waiters { waiter.resume() }
    }

    private func onEveryLoop(_ loops: [EventLoop], _ work: @escaping @Sendable (EventLoop) -> Void) async {
        for loop in loops {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                loop.execute {
                    work(loop)
                    continuation.resume()
                }
            }
        }
    }
}

/// Accepts connections on one loop (every loop shares the listening socket, EPOLLEXCLUSIVE).
final class Listener: EventSource, @unchecked Sendable {  // loop-thread only after registration
    let fd: Int32
    unowned let loop: EventLoop
    let core: ServerCore

    private static let busyResponse: [UInt8] = {
        let body = #"{"error":{"code":"too_many_connections","message":"server is at capacity"}}"#
        return Array(
            ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
                + "Connection: close\r\n\r\n" + body).utf8)
    }()

    init(fd: Int32, loop: EventLoop, core: ServerCore) {
        self.fd = fd
        self.loop = loop
        self.core = core
    }

    func handle(events: UInt32) {
        for _ in 0..<64 {
            guard let (clientFD, peer) = Socket.accept(fd) else { return }
            let open = core.openConnections.add(1, ordering: .relaxed).newValue
            if open > core.limits.maxConnections || core.draining.load(ordering: .relaxed) {
                core.openConnections.subtract(1, ordering: .relaxed)
                Self.busyResponse.withUnsafeBytes { _ = Socket.write(clientFD, $0) }
                close(clientFD)
                continue
            }
            let transport: any Transport
            if let tls = core.tls {
                guard let t = TLSTransport(context: tls, fd: clientFD) else {
                    core.openConnections.subtract(1, ordering: .relaxed)
                    close(clientFD)
                    continue
                }
                transport = t
            } else {
                transport = PlainTransport(fd: clientFD)
            }
            let connection = Connection(fd: clientFD, peer: peer, loop: loop, core: core, transport: transport)
            loop.register(clientFD, connection, events: EPOLLIN.rawValue)
            connection.primeInterest()
        }
    }

    func tick(now: UInt64) {}
}
