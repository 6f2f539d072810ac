import CSystemIO
import Glibc

/// Something registered with an event loop: a listener or a connection. Loop-thread only.
protocol EventSource: AnyObject {
    func handle(events: UInt32)
    /// Called about every 250 ms with the loop's clock, to enforce timeouts.
    func tick(now: UInt64)
}

/// One epoll event loop on its own thread.
///
/// Everything registered here (connections, the listener) is touched only on this thread.
/// Other threads hand work over with `execute`, which queues a closure and wakes the loop
/// through an eventfd. Handler code never runs here: it runs on the Swift concurrency pool.
final class EventLoop: @unchecked Sendable {
    let index: Int
    private let epfd: Int32
    private let wakeFD: Int32
    private let queue = Locked<[@Sendable () -> Void]>([])
    private var sources: [Int32: any EventSource] = [:]
    private var thread: pthread_t?
    private var running = true
    private(set) var now: UInt64 = MonotonicClock.now()
    private var lastTick: UInt64 = 0
    /// The loop's reusable read buffer (connections process a read synchronously).
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    let dateCache = DateCache()

    init(index: Int) throws {
        self.index = index
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw SocketError("epoll_create1") }
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard wakeFD >= 0 else { throw SocketError("eventfd") }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.fd = wakeFD
        epoll_ctl(epfd, EPOLL_CTL_ADD, wakeFD, &event)
    }

    deinit {
        close(epfd)
        close(wakeFD)
        readBuffer.deallocate()
    }

    /// Runs `work` on the loop thread soon. Safe from any thread.
    func execute(_ work: @escaping @Sendable () -> Void) {
        let wasEmpty = queue.withLock { q -> Bool in
            q.append(work)
            return q.count == 1
        }
        if wasEmpty { wake() }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    // MARK: loop-thread API

    func register(_ fd: Int32, _ source: any EventSource, events: UInt32) {
        sources[fd] = source
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event)
    }

    func modify(_ fd: Int32, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.fd = fd
        epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &event)
    }

    func deregister(_ fd: Int32) {
        sources[fd] = nil
        epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil)
    }

    var registeredSources: [any EventSource] { Array(sources.values) }

    /// Starts the loop thread.
    func start() {
        let box = Unmanaged.passRetained(self)
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        var tid = pthread_t()
        pthread_create(&tid, &attr, { arg in
            let loop = Unmanaged<EventLoop>.fromOpaque(arg!).takeRetainedValue()
            loop.run()
            return nil
        }, box.toOpaque())
        pthread_attr_destroy(&attr)
        thread = tid
    }

    /// Stops the loop after the current iteration and waits for its thread.
    func stopAndJoin() {
        execute { [self] in running = false }
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    private func run() {
        let capacity = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        while running {
            let n = epoll_wait(epfd, events, Int32(capacity), 250)
            now = MonotonicClock.now()
            if n < 0 && errno != EINTR { break }
            for i in 0..<max(0, Int(n)) {
                let event = events[i]
                let fd = event.data.fd
                if fd == wakeFD {
                    var value: UInt64 = 0
                    _ = Glibc.read(wakeFD, &value, 8)
                    continue
                }
                sources[fd]?.handle(events: event.events)
            }
            runQueued()
            if now &- lastTick >= 250_000_000 {
                lastTick = now
                for source in sources.values { source.tick(now: now) }
            }
        }
        runQueued()
    }

    private func runQueued() {
        while true {
            let work = queue.withLock { q -> [@Sendable () -> Void] in
                let w = q
                q.removeAll(keepingCapacity: true)
                return w
            }
            if work.isEmpty { return }
            for item in work { item() }
        }
    }
}

/// The `Date` header value (IMF-fixdate), recomputed at most once a second.
final class DateCache {
    private var second: time_t = 0
    private var value: [UInt8] = []

    var current: [UInt8] {
        var t = time(nil)
        if t != second {
            second = t
            var tmValue = tm()
            gmtime_r(&t, &tmValue)
            var buffer = [CChar](repeating: 0, count: 64)
            let n = strftime(&buffer, 64, "%a, %d %b %Y %H:%M:%S GMT", &tmValue)
            value = buffer[0..<n].map { UInt8(bitPattern: $0) }
        }
        return value
    }
}
