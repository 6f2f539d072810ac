import Foundation

/// A bounded queue of byte chunks between a blocking thread (libcurl's callbacks) and async
/// code. Producers wait while `limit` bytes are buffered, which gives backpressure: a slow
/// reader slows the transfer instead of growing memory.
///
/// Either side may be the blocking one: downloads push from the curl thread
/// (`sendBlocking`) and pull async (`next`); uploads push async (`send`) and pull from the
/// curl thread (`receiveBlocking`); the job runner pushes each output from its thread into an
/// object-store put's body.
public final class ByteChannel: @unchecked Sendable {
    private let condition = NSCondition()
    private var chunks: [[UInt8]] = []
    private var head = 0
    private var buffered = 0
    private let limit: Int
    private var finished = false
    private var failure: (any Error)?
    private var cancelled = false
    private var dataWaiter: CheckedContinuation<Void, Never>?
    private var spaceWaiter: CheckedContinuation<Void, Never>?

    public init(limit: Int) { self.limit = limit }

    /// True once the consumer gave up; producers should stop.
    public var isCancelled: Bool {
        condition.lock()
        defer { condition.unlock() }
        return cancelled
    }

    // MARK: Producer

    /// Blocks while the buffer is full. Returns false when the consumer cancelled.
    public func sendBlocking(_ chunk: [UInt8]) -> Bool {
        condition.lock()
        while buffered >= limit && !cancelled { condition.wait() }
        if cancelled {
            condition.unlock()
            return false
        }
        append(chunk)
        let waiter = takeDataWaiter()
        condition.unlock()
        waiter?.resume()
        return true
    }

    /// Waits (async) while the buffer is full. Returns false when the consumer cancelled.
    public func send(_ chunk: [UInt8]) async -> Bool {
        while true {
            let state: Bool? = condition.withLock {
                if cancelled { return false }
                if buffered < limit {
                    append(chunk)
                    return true
                }
                return nil
            }
            if let state {
                if state { wakeConsumer() }
                return state
            }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                condition.lock()
                if buffered < limit || cancelled {
                    condition.unlock()
                    c.resume()
                } else {
                    spaceWaiter = c
                    condition.unlock()
                }
            }
        }
    }

    /// Ends the stream, with an error if the producer failed.
    public func finish(_ error: (any Error)? = nil) {
        condition.lock()
        if !finished {
            finished = true
            failure = error
        }
        let waiter = takeDataWaiter()
        condition.broadcast()
        condition.unlock()
        waiter?.resume()
    }

    // MARK: Consumer

    /// The next chunk, or nil at the end; rethrows the producer's error.
    public func next() async throws -> [UInt8]? {
        while true {
            let result: Result<[UInt8]?, any Error>? = condition.withLock {
                if let chunk = pop() { return .success(chunk) }
                if finished { return failure.map { .failure($0) } ?? .success(nil) }
                if cancelled { return .success(nil) }
                return nil
            }
            if let result {
                wakeProducer()
                return try result.get()
            }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                condition.lock()
                if head < chunks.count || finished || cancelled {
                    condition.unlock()
                    c.resume()
                } else {
                    dataWaiter = c
                    condition.unlock()
                }
            }
        }
    }

    /// Blocks for the next chunk; nil at the end. Throws the producer's error.
    public func receiveBlocking() throws -> [UInt8]? {
        condition.lock()
        while head >= chunks.count && !finished && !cancelled { condition.wait() }
        let chunk = pop()
        let err = chunk == nil ? failure : nil
        let space = spaceWaiter
        spaceWaiter = nil
        condition.broadcast()
        condition.unlock()
        space?.resume()
        if let err { throw err }
        return chunk
    }

    /// The consumer stops reading: producers are released and further sends fail.
    public func cancel() {
        condition.lock()
        cancelled = true
        chunks.removeAll()
        head = 0
        buffered = 0
        let d = takeDataWaiter(), s = spaceWaiter
        spaceWaiter = nil
        condition.broadcast()
        condition.unlock()
        d?.resume()
        s?.resume()
    }

    // MARK: Under the lock

    private func append(_ chunk: [UInt8]) {
        chunks.append(chunk)
        buffered += chunk.count
        condition.broadcast()
    }

    private func pop() -> [UInt8]? {
        guard head < chunks.count else { return nil }
        let chunk = chunks[head]
        chunks[head] = []
        head += 1
        buffered -= chunk.count
        if head > 64 && head * 2 > chunks.count {
            chunks.removeFirst(head)
            head = 0
        }
        condition.broadcast()
        return chunk
    }

    private func takeDataWaiter() -> CheckedContinuation<Void, Never>? {
        defer { dataWaiter = nil }
        return dataWaiter
    }

    private func wakeConsumer() {
        let w = condition.withLock { takeDataWaiter() }
        w?.resume()
    }

    private func wakeProducer() {
        let w: CheckedContinuation<Void, Never>? = condition.withLock {
            defer { spaceWaiter = nil }
            return spaceWaiter
        }
        w?.resume()
    }
}
