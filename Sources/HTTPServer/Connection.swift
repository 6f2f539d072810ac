import CSystemIO
import Glibc

/// One client connection: a state machine driven by its event loop.
///
/// All mutable state is touched only on the loop thread (handler tasks hand results back with
/// `loop.execute`), hence `@unchecked Sendable`. Requests are handled one at a time: while a
/// request is in flight, later pipelined requests stay in the parser's buffer, so responses
/// leave in request order. States:
/// - waiting for a head (idle timeout, or header-read timeout once a byte arrived);
/// - exchange in flight: body bytes go to the handler's `RequestBodyStream` (reading pauses
///   when it is full), the response is written when the handler returns;
/// - closing: flush, half-close, discard input for a moment (so the client reads the last
///   response instead of a reset), close.
final class Connection: EventSource, @unchecked Sendable {
    /// One request and its response.
    final class Exchange {
        let head: HTTPRequestHead
        let path: String
        let stream: RequestBodyStream?
        let startedAt: UInt64
        let wallClock: Double
        var requestComplete = false
        var continueSent = false
        var responseHeadSent = false
        var responseComplete = false
        var keepAlive: Bool
        var chunked = false
        var fixedLength: Int?
        var bodyBytesWritten = 0
        var bytesIn = 0
        var status = 0
        var route: String?
        var discarding = false
        var discarded = 0
        var trailersPending: HTTPHeaders?

        init(head: HTTPRequestHead, stream: RequestBodyStream?, now: UInt64) {
            self.head = head
            self.path = Request.splitTarget(head.target).0
            self.stream = stream
            self.startedAt = now
            self.wallClock = AccessLogEntry.wallClock()
            self.keepAlive = head.keepAlive
        }
    }

    let fd: Int32
    let loop: EventLoop
    let core: ServerCore
    let transport: any Transport
    let peer: String
    private var parser: HTTPRequestParser
    private var out: [UInt8] = []
    private var outStart = 0
    private var interest: UInt32 = 0
    private(set) var closed = false
    private var closeAfterFlush = false
    private var lingering = false
    private var lingerDeadline: UInt64 = 0
    private var peerClosedInput = false
    var exchange: Exchange?
    var lastActivity: UInt64
    private var headStartedAt: UInt64?
    private var writeWaiters: [CheckedContinuation<Void, any Error>] = []
    var readPausedByBody = false
    private(set) var drainingConnection = false
    private var processing = false
    private var clientSubject: String?
    private var subjectRead = false

    private static let pipelineBufferLimit = 64 * 1024

    init(fd: Int32, peer: String, loop: EventLoop, core: ServerCore, transport: any Transport) {
        self.fd = fd
        self.peer = peer
        self.loop = loop
        self.core = core
        self.transport = transport
        self.parser = HTTPRequestParser(limits: core.limits.parser)
        self.lastActivity = loop.now
    }

    var outPending: Int { out.count - outStart }

    /// Called right after registration with EPOLLIN.
    func primeInterest() { interest = EPOLLIN.rawValue }

    // MARK: events

    func handle(events: UInt32) {
        if closed { return }
        if events & EPOLLOUT.rawValue != 0 {
            flush()
            if closed { return }
            if transport.needsWritable && !closeAfterFlush { onReadable() }
        }
        if events & EPOLLERR.rawValue != 0 || (events & EPOLLHUP.rawValue != 0 && !canRead) {
            close()  // reset, or both directions closed: nothing more can be read or written
            return
        }
        if events & (EPOLLIN.rawValue | EPOLLHUP.rawValue) != 0 {
            onReadable()
            if closed { return }
        }
        updateInterest()
    }

    private var canRead: Bool {
        if closed || peerClosedInput { return false }
        if lingering { return true }
        if closeAfterFlush || readPausedByBody { return false }
        // Between the end of this request and its response: buffer a little pipelined input at most.
        if let exchange, exchange.requestComplete { return parser.bufferedByteCount < Self.pipelineBufferLimit }
        if exchange == nil && outPending > core.limits.responseBuffer { return false }
        return true
    }

    func onReadableFromFinish() {
        loop.execute { [self] in
            onReadable()
            updateInterest()
        }
    }

    func waitForOutputRoom(_ continuation: CheckedContinuation<Void, any Error>) { writeWaiters.append(continuation) }

    private func onReadable() {
        var budget = 16
        while canRead && budget > 0 {
            budget -= 1
            let result = transport.read(into: loop.readBuffer)
            switch result {
            case .bytes(let n):
                lastActivity = loop.now
                if lingering { continue }
                if exchange == nil && headStartedAt == nil { headStartedAt = loop.now }
                parser.feed(UnsafeRawBufferPointer(rebasing: loop.readBuffer[0..<n]))
                processInput()
                if closed { return }
            case .wouldBlock:
                if transport.needsWritable { updateInterest() }
                return
            case .eof:
                peerClosedInput = true
                handleEOF()
                return
            case .failed:
                close()
                return
            }
        }
        if budget == 0 && transport.hasBufferedInput && canRead {
            loop.execute { [self] in
                onReadable()
                updateInterest()
            }
        }
    }

    private func handleEOF() {
        if lingering || exchange == nil {
            close()
            return
        }
        if let exchange, !exchange.requestComplete {
            exchange.stream?.fail(HTTPError.badRequest("the client closed the connection mid-body", code: "incomplete_body"))
        }
        exchange?.keepAlive = false
    }

    func tick(now: UInt64) {
        if closed { return }
        if lingering {
            if now >= lingerDeadline { close() }
            return
        }
        let limits = core.limits
        if let exchange {
            let waitingOnClient =
                (!exchange.requestComplete && !readPausedByBody && !peerClosedInput && !exchange.discarding)
                || outPending > 0
            if waitingOnClient && now &- lastActivity > limits.ioTimeout.nanoseconds {
                if !exchange.responseHeadSent && !exchange.requestComplete {
                    exchange.stream?.fail(HTTPError(.requestTimeout, code: "body_timeout", message: "the request body stalled"))
                }
                close()
            }
            return
        }
        if let started = headStartedAt, parser.bufferedByteCount > 0 || parser.isReadingHead {
            if now &- started > limits.headerReadTimeout.nanoseconds {
                headStartedAt = nil
                sendErrorAndClose(
                    HTTPParseError(.requestTimeout, "header_timeout", "the request head was not received in time"))
            }
            return
        }
        if outPending == 0 && (drainingConnection || now &- lastActivity > limits.idleTimeout.nanoseconds) {
            close()
        }
    }

    /// Shutdown has begun: close if idle, else close after the current exchange.
    func beginDrain() {
        drainingConnection = true
        if exchange == nil && !parser.isReadingHead && outPending == 0 { close() }
    }

    // MARK: input

    func processInput() {
        if processing { return }
        processing = true
        defer { processing = false }
        while !closed && !closeAfterFlush {
            if let exchange {
                if exchange.requestComplete { return }
                let event: HTTPRequestParser.Event?
                do {
                    event = try parser.next()
                } catch {
                    bodyFramingFailed(exchange, error)
                    return
                }
                guard let event else { return }
                switch event {
                case .body(let chunk):
                    exchange.bytesIn += chunk.count
                    if exchange.discarding {
                        exchange.discarded += chunk.count
                        if exchange.discarded > core.limits.maxDiscardedBody {
                            exchange.keepAlive = false
                            finishExchange()
                            return
                        }
                    } else if let stream = exchange.stream, !stream.push(chunk) {
                        readPausedByBody = true
                    }
                case .end(let trailers):
                    exchange.requestComplete = true
                    readPausedByBody = false
                    exchange.stream?.finish(trailers: trailers)
                    if exchange.responseComplete { finishExchange() }
                case .head:
                    return
                }
            } else {
                if outPending > core.limits.responseBuffer { return }  // client is not reading responses
                let event: HTTPRequestParser.Event?
                do {
                    event = try parser.next()
                } catch {
                    sendErrorAndClose(error)
                    return
                }
                guard let event else {
                    if parser.isReadingHead && headStartedAt == nil { headStartedAt = loop.now }
                    if !parser.isReadingHead { headStartedAt = nil }
                    return
                }
                guard case .head(let head) = event else { return }
                startExchange(head)
            }
        }
    }

    private func startExchange(_ head: HTTPRequestHead) {
        headStartedAt = nil
        let hasBody = head.framing != .none
        var stream: RequestBodyStream?
        let loop = self.loop
        if hasBody {
            stream = RequestBodyStream(
                highWater: core.limits.requestBodyBuffer,
                onDemand: { [self] in loop.execute { self.resumeReadingForBody() } },
                onFirstRead: { [self] in loop.execute { self.handlerWantsBody() } })
        }
        let exchange = Exchange(head: head, stream: stream, now: MonotonicClock.now())
        self.exchange = exchange
        if !subjectRead {
            subjectRead = true
            clientSubject = transport.clientCertificateSubject
        }
        let info = ConnectionInfo(peer: peer, isTLS: transport.isTLS, clientCertificateSubject: clientSubject)
        var expected: Int?
        if case .contentLength(let n) = head.framing { expected = n }
        let body = stream.map { RequestBody(stream: $0, expectedLength: expected) } ?? .empty
        let request = Request(head: head, connection: info, body: body)
        let responder = core.responder
        Task { [self] in
            let response = await responder(request)
            loop.execute { self.responseReady(exchange, response) }
        }
    }

    private func handlerWantsBody() {
        guard let exchange, !closed else { return }
        if exchange.head.expectsContinue && !exchange.continueSent && !exchange.responseHeadSent
            && !exchange.requestComplete
        {
            exchange.continueSent = true
            append(Self.continueLine)
            flush()
            updateInterest()
        }
    }

    private func resumeReadingForBody() {
        guard !closed, readPausedByBody else { return }
        readPausedByBody = false
        onReadable()
        updateInterest()
    }

    private func bodyFramingFailed(_ exchange: Exchange, _ error: HTTPParseError) {
        exchange.keepAlive = false
        exchange.stream?.fail(HTTPError(error.status, code: error.code, message: error.message))
        if exchange.responseComplete || exchange.discarding {
            finishExchange()
        } else if !exchange.responseHeadSent && exchange.stream == nil {
            sendErrorAndClose(error)
        }
        // Otherwise the handler sees the error from its body read and answers.
    }

    /// Answers a request the parser refused (or a timeout) and closes.
    private func sendErrorAndClose(_ error: HTTPParseError) {
        let response = error.response
        var head = "HTTP/1.1 \(error.status.code) \(error.status.reasonPhrase)\r\n"
        var bodyBytes: [UInt8] = []
        if case .bytes(let b) = response.body.kind { bodyBytes = b }
        head += "Content-Type: application/json\r\nContent-Length: \(bodyBytes.count)\r\nConnection: close\r\n"
        head += "Date: " + String(decoding: loop.dateCache.current, as: UTF8.self) + "\r\n\r\n"
        append(Array(head.utf8))
        append(bodyBytes)
        core.accessLog?(
            AccessLogEntry(
                time: AccessLogEntry.wallClock(), method: "-", path: "-", status: error.status.code, bytesIn: 0,
                bytesOut: bodyBytes.count, durationMilliseconds: 0, peer: peer, version: "-", aborted: false))
        startClosing()
    }

    // MARK: output

    func append(_ bytes: [UInt8]) {
        if outStart == out.count {
            out.removeAll(keepingCapacity: true)
            outStart = 0
        } else if outStart > 256 * 1024 && outStart > out.count / 2 {
            out.removeSubrange(0..<outStart)
            outStart = 0
        }
        out.append(contentsOf: bytes)
    }

    func flush() {
        while outPending > 0 && !closed {
            let result = out.withUnsafeBytes { buffer in
                transport.write(UnsafeRawBufferPointer(rebasing: buffer[outStart..<buffer.count]))
            }
            switch result {
            case .bytes(let n):
                outStart += n
                lastActivity = loop.now
            case .wouldBlock:
                updateInterest()
                return
            case .eof, .failed:
                close()
                return
            }
        }
        if outPending == 0 {
            out.removeAll(keepingCapacity: out.capacity <= 1 << 20)
            outStart = 0
        }
        if outPending <= core.limits.responseBuffer / 2 && !writeWaiters.isEmpty {
            let waiters = writeWaiters
            writeWaiters = []
            for waiter in waiters { waiter.resume() }
        }
        if outPending == 0 {
            if closeAfterFlush {
                linger()
            } else if exchange == nil {
                processInput()  // a pipelined request may have been waiting for output room
            }
        }
        updateInterest()
    }

    func updateInterest() {
        if closed { return }
        var wanted: UInt32 = 0
        if canRead { wanted |= EPOLLIN.rawValue }
        if outPending > 0 || transport.needsWritable { wanted |= EPOLLOUT.rawValue }
        if wanted != interest {
            interest = wanted
            loop.modify(fd, events: wanted)
        }
    }

    // MARK: closing

    /// Close once everything queued is written.
    func startClosing() {
        closeAfterFlush = true
        if outPending == 0 { linger() } else { flush() }
    }

    /// Half-close and discard input briefly, so the peer reads our last response rather than a
    /// TCP reset caused by unread data.
    private func linger() {
        if closed || lingering { return }
        transport.shutdown()
        if transport.isTLS || peerClosedInput {
            close()
            return
        }
        Glibc.shutdown(fd, Int32(SHUT_WR))
        lingering = true
        lingerDeadline = loop.now + 2_000_000_000
        updateInterest()
    }

    func close() {
        if closed { return }
        closed = true
        loop.deregister(fd)
        Glibc.close(fd)
        core.openConnections.subtract(1, ordering: .relaxed)
        let error = ConnectionClosedError()
        for waiter in writeWaiters { waiter.resume(throwing: error) }
        writeWaiters = []
        if let exchange {
            exchange.stream?.fail(error)
            if !exchange.responseComplete { logAccess(exchange, aborted: true) }
            self.exchange = nil
        }
    }
}
