/// A stream of byte chunks read one at a time, in constant memory: the body type of uploads
/// and downloads (object stores, the HTTP client).
///
/// Single consumer: iterate it once. Dropping an iterator before the end does not stop the
/// producer; call `cancel()` for that.
public struct ByteStream: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    private let nextChunk: @Sendable () async throws -> [UInt8]?
    private let onCancel: @Sendable () -> Void

    /// A stream produced by a closure that returns the next chunk, or nil at the end.
    public init(next: @escaping @Sendable () async throws -> [UInt8]?, onCancel: @escaping @Sendable () -> Void = {}) {
        self.nextChunk = next
        self.onCancel = onCancel
    }

    /// A stream over bytes already in memory, cut into chunks of `chunkSize`.
    public init(bytes: [UInt8], chunkSize: Int = 1 << 16) {
        let box = LockedBox(0)
        self.init(next: {
            box.withLock { offset in
                guard offset < bytes.count else { return nil }
                let end = Swift.min(offset + chunkSize, bytes.count)
                defer { offset = end }
                return Array(bytes[offset..<end])
            }
        })
    }

    /// A stream over any other async sequence of chunks.
    public init<S: AsyncSequence & Sendable>(_ sequence: S) where S.Element == [UInt8], S.AsyncIterator: Sendable {
        let box = LockedBox<S.AsyncIterator?>(nil)
        self.init(next: {
            var it = box.withLock { $0 } ?? sequence.makeAsyncIterator()
            let chunk = try await it.next()
            box.withLock { $0 = it }
            return chunk
        })
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let nextChunk: @Sendable () async throws -> [UInt8]?
        public mutating func next() async throws -> [UInt8]? {
            while let chunk = try await nextChunk() {
                if !chunk.isEmpty { return chunk }
            }
            return nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(nextChunk: nextChunk) }

    /// Tells the producer to stop; later reads may end early.
    public func cancel() { onCancel() }

    /// Reads everything into memory, refusing more than `limit` bytes.
    public func collect(limit: Int) async throws -> [UInt8] {
        var out: [UInt8] = []
        for try await chunk in self {
            guard out.count + chunk.count <= limit else {
                cancel()
                throw HTTPClientError(.bodyTooLarge, "body exceeds \(limit) bytes")
            }
            out += chunk
        }
        return out
    }
}
