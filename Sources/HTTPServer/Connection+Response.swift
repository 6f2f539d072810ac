import Glibc

extension Connection {
    /// The handler returned: write the head (and a fixed body), or start the body stream.
    func responseReady(_ exchange: Exchange, _ response: Response) {
        guard !closed, self.exchange === exchange else { return }
        let head = exchange.head
        exchange.status = response.status.code
        exchange.route = response.route
        var keepAlive = exchange.keepAlive && !core.draining.load(ordering: .relaxed) && !drainingConnection
        var isStream = false
        var streamLength: Int?
        var fixed: [UInt8] = []
        switch response.body.kind {
        case .bytes(let b): fixed = b
        case .stream(let length, _):
            isStream = true
            streamLength = length
        }
        if !exchange.requestComplete && !isStream {
            // The handler is done without reading the whole body.
            keepAlive = keepAlive && canDiscardRest(exchange)
        }
        let bodyAllowed = head.method != .head && !response.status.forbidsBody
        var lines = "HTTP/1.1 \(response.status.code) \(response.status.reasonPhrase)\r\n"
        for (name, value) in response.headers where Self.isSendable(name: name, value: value) {
            if Self.framingHeaders.contains(name.lowercased()) { continue }
            lines += name + ": " + value + "\r\n"
        }
        if !response.status.forbidsBody {
            if let length = isStream ? streamLength : fixed.count {
                lines += "Content-Length: \(length)\r\n"
                exchange.fixedLength = length
            } else if head.version == .http1_1 {
                if bodyAllowed {
                    lines += "Transfer-Encoding: chunked\r\n"
                    exchange.chunked = true
                }
            } else if bodyAllowed {
                keepAlive = false  // HTTP/1.0 and no length: the body ends when the connection closes
            }
        }
        if !keepAlive {
            lines += "Connection: close\r\n"
        } else if head.version == .http1_0 {
            lines += "Connection: keep-alive\r\n"
        }
        exchange.keepAlive = keepAlive
        var bytes: [UInt8] = []
        if isStream && bodyAllowed && !exchange.requestComplete && head.expectsContinue && !exchange.continueSent {
            // A streamed response may still read the body (an echo does): let the client send it.
            exchange.continueSent = true
            bytes.append(contentsOf: Self.continueLine)
        }
        bytes.append(contentsOf: lines.utf8)
        bytes.append(contentsOf: Self.datePrefix)
        bytes.append(contentsOf: loop.dateCache.current)
        bytes.append(contentsOf: Self.crlfcrlf)
        if bodyAllowed && !isStream {
            bytes.append(contentsOf: fixed)  // head and body in one write
            exchange.bodyBytesWritten = fixed.count
        }
        append(bytes)
        exchange.responseHeadSent = true
        if isStream && bodyAllowed, case .stream(_, let produce) = response.body.kind {
            let sink = ConnectionBodySink(connection: self, exchange: exchange)
            let loop = self.loop
            Task { [self] in
                do {
                    try await produce(ResponseBodyWriter(sink: sink))
                    let trailers = sink.trailers.withLock { $0 }
                    loop.execute { self.streamFinished(exchange, trailers: trailers) }
                } catch {
                    loop.execute { self.streamFailed(exchange, error) }
                }
            }
            flush()
            return
        }
        responseComplete(exchange)
    }

    /// Whether the unread rest of a request body may be read and thrown away to keep the
    /// connection (rather than closing it).
    private func canDiscardRest(_ exchange: Exchange) -> Bool {
        if exchange.head.expectsContinue && !exchange.continueSent { return false }  // the client may not send it
        switch exchange.head.framing {
        case .contentLength(let n): return n - exchange.bytesIn <= core.limits.maxDiscardedBody
        case .chunked: return true  // bounded while discarding
        case .none: return true
        }
    }

    private func responseComplete(_ exchange: Exchange) {
        exchange.responseComplete = true
        if exchange.requestComplete {
            finishExchange()
        } else if exchange.keepAlive {
            exchange.discarding = true
            exchange.stream?.abandon()
            if readPausedByBody {
                readPausedByBody = false
            }
            processInput()
            flush()
        } else {
            exchange.stream?.abandon()
            finishExchange()
        }
    }

    /// A streamed body's producer wrote a chunk (called on the loop).
    func streamWrite(_ exchange: Exchange, _ bytes: [UInt8], _ continuation: CheckedContinuation<Void, any Error>) {
        guard !closed, self.exchange === exchange, !exchange.responseComplete else {
            continuation.resume(throwing: ConnectionClosedError())
            return
        }
        if let length = exchange.fixedLength, exchange.bodyBytesWritten + bytes.count > length {
            continuation.resume(throwing: ResponseLengthError(declared: length))
            return
        }
        if exchange.chunked {
            append(Array((String(bytes.count, radix: 16) + "\r\n").utf8))
            append(bytes)
            append(Self.crlf)
        } else {
            append(bytes)
        }
        exchange.bodyBytesWritten += bytes.count
        flush()
        if closed {
            continuation.resume(throwing: ConnectionClosedError())
        } else if outPending <= core.limits.responseBuffer {
            continuation.resume()
        } else {
            waitForOutputRoom(continuation)
        }
    }

    func streamFinished(_ exchange: Exchange, trailers: HTTPHeaders) {
        guard !closed, self.exchange === exchange else { return }
        if exchange.chunked {
            var end = "0\r\n"
            for (name, value) in trailers where Self.isSendable(name: name, value: value) {
                end += name + ": " + value + "\r\n"
            }
            end += "\r\n"
            append(Array(end.utf8))
        } else if let length = exchange.fixedLength, exchange.bodyBytesWritten != length {
            // Fewer bytes than declared: closing tells the client the body is truncated.
            core.logger.error("streamed response shorter than its Content-Length", metadata: ["path": "\(exchange.path)"])
            exchange.keepAlive = false
        }
        flush()
        if closed { return }
        responseComplete(exchange)
    }

    func streamFailed(_ exchange: Exchange, _ error: any Error) {
        guard !closed, self.exchange === exchange else { return }
        if !(error is ConnectionClosedError) {
            core.logger.error(
                "streamed response failed", metadata: ["path": "\(exchange.path)", "error": "\(String(reflecting: error))"])
        }
        // No clean end (no last chunk): the client must see a truncated body, not a complete one.
        exchange.keepAlive = false
        logAccess(exchange, aborted: true)
        exchange.stream?.abandon()
        self.exchange = nil
        startClosing()
    }

    /// Both the request and its response are complete.
    func finishExchange() {
        guard let exchange else { return }
        logAccess(exchange, aborted: false)
        self.exchange = nil
        lastActivity = loop.now
        readPausedByBody = false
        if !exchange.keepAlive || drainingConnection {
            startClosing()
            return
        }
        processInput()
        if transport.hasBufferedInput { onReadableFromFinish() }
        flush()
    }

    func logAccess(_ exchange: Exchange, aborted: Bool) {
        guard let log = core.accessLog else { return }
        log(
            AccessLogEntry(
                time: exchange.wallClock, method: exchange.head.method.rawValue, path: exchange.path,
                route: exchange.route, status: exchange.status, bytesIn: exchange.bytesIn,
                bytesOut: exchange.bodyBytesWritten,
                durationMilliseconds: Double(MonotonicClock.now() &- exchange.startedAt) / 1e6, peer: peer,
                version: exchange.head.version.description, aborted: aborted))
    }

    static let continueLine = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
    static let framingHeaders: Set<String> = ["content-length", "transfer-encoding", "connection", "date"]
    static let datePrefix = Array("Date: ".utf8)
    static let crlf = Array("\r\n".utf8)
    static let crlfcrlf = Array("\r\n\r\n".utf8)

    /// Field names must be tokens and values free of CR, LF and NUL (no header injection).
    static func isSendable(name: String, value: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy(HTTPGrammar.isTokenChar)
            && value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }
}

/// A streamed response declared a Content-Length and tried to write more.
public struct ResponseLengthError: Error, Sendable, CustomStringConvertible {
    public let declared: Int
    public var description: String { "a streamed response wrote more than its declared length \(declared)" }
}

/// The connection side of a `ResponseBodyWriter`.
final class ConnectionBodySink: ResponseBodySink {
    let connection: Connection
    let exchange: Connection.Exchange
    let trailers = Locked<HTTPHeaders>(HTTPHeaders())

    init(connection: Connection, exchange: Connection.Exchange) {
        self.connection = connection
        self.exchange = exchange
    }

    func write(_ bytes: [UInt8]) async throws {
        let connection = self.connection, exchange = self.exchange
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            connection.loop.execute { connection.streamWrite(exchange, bytes, continuation) }
        }
    }

    func setTrailers(_ trailers: HTTPHeaders) { self.trailers.withLock { $0 = trailers } }
}

extension Connection.Exchange: @unchecked Sendable {}  // touched only on its connection's loop
