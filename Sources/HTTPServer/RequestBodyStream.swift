/// The hand-off between a connection (producer, on its event-loop thread) and a handler
/// (consumer, on the concurrency pool) for one request body.
///
/// Backpressure: `push` returns false once `highWater` bytes wait unread; the connection then
/// stops reading the socket. When the consumer has drained below `lowWater` the stream calls
/// `onDemand`, and the connection resumes. `onFirstRead` fires once, on the handler's first
/// read: that is when the connection sends `100 Continue`.
final class RequestBodyStream: Sendable {
    struct State: ~Copyable {
        var chunks: [[UInt8]] = []
        var head = 0
        var bufferedBytes = 0
        var finished = false
        var failure: (any Error)?
        var waiter: CheckedContinuation<[UInt8]?, any Error>?
        var producerPaused = false
        var firstReadSeen = false
        var abandoned = false
        var trailers = HTTPHeaders()

        /// Removes the oldest chunk, releasing its slot (a consumed chunk must not stay referenced
        /// while the producer keeps the queue non-empty).
        mutating func take() -> [UInt8] {
            let chunk = chunks[head]
            chunks[head] = []
            head += 1
            if head == chunks.count {
                chunks.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 32 && head * 2 >= chunks.count {
                chunks.removeFirst(head)
                head = 0
            }
            return chunk
        }
    }

    let highWater: Int
    let lowWater: Int
    private let state = Locked(State())
    /// Called (from the consumer's task) when the paused producer should read again.
    let onDemand: @Sendable () -> Void
    /// Called once, on the consumer's first read.
    let onFirstRead: @Sendable () -> Void

    init(
        highWater: Int = 256 * 1024, onDemand: @escaping @Sendable () -> Void,
        onFirstRead: @escaping @Sendable () -> Void
    ) {
        self.highWater = highWater
        self.lowWater = highWater / 4
        self.onDemand = onDemand
        self.onFirstRead = onFirstRead
    }

    /// Producer: appends a chunk. Returns false when the producer should pause reading.
    func push(_ chunk: [UInt8]) -> Bool {
        let (waiter, keepReading): (CheckedContinuation<[UInt8]?, any Error>?, Bool) = state.withLock { s in
            if s.abandoned || s.finished { return (nil, true) }
            if let w = s.waiter {
                s.waiter = nil
                return (w, true)
            }
            s.chunks.append(chunk)
            s.bufferedBytes += chunk.count
            if s.bufferedBytes >= highWater {
                s.producerPaused = true
                return (nil, false)
            }
            return (nil, true)
        }
        waiter?.resume(returning: chunk)
        return keepReading
    }

    /// Producer: the body ended (with optional trailers).
    func finish(trailers: HTTPHeaders = HTTPHeaders()) {
        let waiter = state.withLock { s -> CheckedContinuation<[UInt8]?, any Error>? in
            s.finished = true
            s.trailers = trailers
            if s.head == s.chunks.count, let w = s.waiter {
                s.waiter = nil
                return w
            }
            return nil
        }
        waiter?.resume(returning: nil)
    }

    /// Producer: the body cannot complete (connection closed, timeout, framing error).
    func fail(_ error: any Error) {
        let waiter = state.withLock { s -> CheckedContinuation<[UInt8]?, any Error>? in
            if s.finished { return nil }
            s.failure = error
            let w = s.waiter
            s.waiter = nil
            return w
        }
        waiter?.resume(throwing: error)
    }

    /// Producer side: the handler finished; drop whatever is buffered.
    func abandon() {
        state.withLock { s in
            s.abandoned = true
            s.chunks = []
            s.head = 0
            s.bufferedBytes = 0
        }
    }

    var trailers: HTTPHeaders { state.withLock { $0.trailers } }

    /// Consumer: the next chunk, nil at the end.
    func next() async throws -> [UInt8]? {
        enum Step {
            case chunk([UInt8], resume: Bool, first: Bool)
            case end(first: Bool)
            case failure(any Error)
            case wait(first: Bool)
        }
        let step: Step = state.withLock { s in
            let first = !s.firstReadSeen
            s.firstReadSeen = true
            if s.head < s.chunks.count {
                let chunk = s.take()
                s.bufferedBytes -= chunk.count
                var resume = false
                if s.producerPaused && s.bufferedBytes <= lowWater {
                    s.producerPaused = false
                    resume = true
                }
                return .chunk(chunk, resume: resume, first: first)
            }
            if let failure = s.failure { return .failure(failure) }
            if s.finished { return .end(first: first) }
            return .wait(first: first)
        }
        switch step {
        case .chunk(let chunk, let resume, let first):
            if first { onFirstRead() }
            if resume { onDemand() }
            return chunk
        case .end(let first):
            if first { onFirstRead() }
            return nil
        case .failure(let error):
            throw error
        case .wait(let first):
            return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8]?, any Error>) in
                let immediate: Result<[UInt8]?, any Error>? = state.withLock { s in
                    if s.head < s.chunks.count {
                        let chunk = s.take()
                        s.bufferedBytes -= chunk.count
                        return .success(chunk)
                    }
                    if let failure = s.failure { return .failure(failure) }
                    if s.finished { return .success(nil) }
                    s.waiter = continuation
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
                if first { onFirstRead() }
                // The producer may be paused with nothing buffered only if it paused and the
                // consumer drained without waking it; make sure it reads.
                onDemandIfPaused()
            }
        }
    }

    private func onDemandIfPaused() {
        let resume = state.withLock { s -> Bool in
            if s.producerPaused && s.bufferedBytes <= lowWater {
                s.producerPaused = false
                return true
            }
            return false
        }
        if resume { onDemand() }
    }
}
