import AWS
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension FileObjectStore {
    /// How a put writes its data file.
    public struct WriteConfiguration: Sendable {
        /// Bytes gathered (without copying the stream's chunks) before one `writev(2)`; one
        /// block is being written while the next is gathered and hashed.
        public var blockSize: Int = 1 << 20
        /// Every this many bytes, ask the kernel to start writing the data back
        /// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, Linux), so the disk works while the stream
        /// is still arriving and the final `fsync` has only the tail left. 0 turns it off. A
        /// hint only: durability still comes from the `fsync` before the commit.
        public var writebackInterval: Int = 8 << 20

        /// For tests: runs on each put's data file as soon as it is created, before anything is
        /// written to it. A test puts `/dev/full` in its place (`dup2`), so that the put's real
        /// writes fail as on a full disk (`ENOSPC`) while the file itself is the store's own.
        var dataFileCreated: (@Sendable (_ descriptor: Int32) -> Void)?

        public init(blockSize: Int = 1 << 20, writebackInterval: Int = 8 << 20) {
            self.blockSize = max(1, blockSize)
            self.writebackInterval = max(0, writebackInterval)
        }
    }
}

/// Appends a stream's chunks to a file: gathers them (by reference) into blocks, writes each
/// block with `writev` on the I/O queue while the caller gathers and hashes the next one (one
/// write in flight), and starts writeback as configured. Holds at most two blocks plus one chunk.
///
/// After any error, `drain()` must be awaited before the file is closed.
final class PipelinedFileWriter: @unchecked Sendable {
    private let file: FileBox
    private let io: DispatchQueue
    private let configuration: FileObjectStore.WriteConfiguration
    private var gathered: [[UInt8]] = []
    private var gatheredBytes = 0
    private var inFlight: PendingWrite?
    /// Touched only by the write in flight (one at a time).
    private var written: Int64 = 0
    private var writebackFrom: Int64 = 0
    /// Writeback hints not yet issued; they use the descriptor, so they finish before it closes.
    private let writebacks = DispatchGroup()

    init(file: FileBox, io: DispatchQueue, configuration: FileObjectStore.WriteConfiguration) {
        self.file = file
        self.io = io
        self.configuration = configuration
    }

    /// Queues `chunk`; writes a block once enough is gathered.
    func append(_ chunk: [UInt8]) async throws {
        guard !chunk.isEmpty else { return }
        gathered.append(chunk)
        gatheredBytes += chunk.count
        if gatheredBytes >= configuration.blockSize { try await submit() }
    }

    /// Writes what is left and waits for every write.
    func finish() async throws {
        if !gathered.isEmpty { try await submit() }
        try await inFlight?.wait()
        inFlight = nil
        await waitForWritebacks()
    }

    /// Waits for the write in flight, ignoring its outcome (the error path).
    func drain() async {
        _ = try? await inFlight?.wait()
        inFlight = nil
        await waitForWritebacks()
    }

    private func waitForWritebacks() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            writebacks.notify(queue: io) { c.resume() }
        }
    }

    private func submit() async throws {
        try await inFlight?.wait()  // at most one block in flight
        let block = gathered
        gathered = []
        gatheredBytes = 0
        let pending = PendingWrite()
        inFlight = pending
        io.async { pending.complete(Result { try self.write(block) }) }
    }

    /// On the I/O queue.
    private func write(_ block: [[UInt8]]) throws {
        written += Int64(try file.writeAll(block))
        let interval = Int64(configuration.writebackInterval)
        if interval > 0 && written - writebackFrom >= interval {
            // Off the write path: sync_file_range may wait for the device queue.
            let (fd, from, length) = (file.fd, writebackFrom, written - writebackFrom)
            writebacks.enter()
            Writeback.queue.async {
                Writeback.start(fd: fd, offset: from, length: length)
                self.writebacks.leave()
            }
            writebackFrom = written
        }
    }
}

/// The outcome of one write on the I/O queue. Awaiting a write that has already finished does
/// not suspend, so a put whose writes keep up never switches threads to learn it.
final class PendingWrite: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Result<Void, any Error>?
    private var waiter: CheckedContinuation<Void, any Error>?

    func complete(_ outcome: Result<Void, any Error>) {
        lock.lock()
        result = outcome  // kept, so a later wait() (drain after a failure) returns at once
        let w = waiter
        waiter = nil
        lock.unlock()
        w?.resume(with: outcome)
    }

    /// One waiter at a time; may be called again after it returned.
    func wait() async throws {
        if let r = lock.withLock({ result }) { return try r.get() }
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            lock.lock()
            if let r = result {
                lock.unlock()
                c.resume(with: r)
            } else {
                waiter = c
                lock.unlock()
            }
        }
    }
}

/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`, looked up at run time (Glibc's Swift module does
/// not export it); a no-op where it is missing.
enum Writeback {
    private typealias SyncFileRange = @convention(c) (Int32, Int64, Int64, UInt32) -> Int32
    private static let syncFileRange: SyncFileRange? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sync_file_range") else { return nil }
        return unsafeBitCast(symbol, to: SyncFileRange.self)
    }()
    /// One serial queue for every store's hints: they are cheap to issue late, never urgent.
    static let queue = DispatchQueue(label: "FileObjectStore.writeback")
    /// SYNC_FILE_RANGE_WRITE from <fcntl.h>.
    private static let write: UInt32 = 2

    static var isAvailable: Bool { syncFileRange != nil }

    /// Starts writeback of the range without waiting for it; errors are ignored (a hint).
    static func start(fd: Int32, offset: Int64, length: Int64) {
        _ = syncFileRange?(fd, offset, length, write)
    }
}

/// A file descriptor closed exactly once.
final class FileBox: @unchecked Sendable {
    private let lock = NSLock()
    private var open_: Bool = true
    let fd: Int32
    /// The file's path, for error messages (nil: "object data").
    let path: String?
    init(fd: Int32, path: String? = nil) {
        self.fd = fd
        self.path = path
    }

    /// A reader that stops early (the key release reads a dataset's header and leaves the rest)
    /// never reaches the end that closes the file: it closes when nothing holds it any more (three
    /// descriptors a job stayed open, in a review).
    deinit { close() }

    func close() {
        lock.lock()
        defer { lock.unlock() }
        if open_ {
            open_ = false
            Glibc.close(fd)
        }
    }

    func writeAll(_ bytes: [UInt8]) throws {
        _ = try writeAll([bytes])
    }

    /// Writes every chunk in order with `writev` (at most IOV_MAX at a time, resuming after
    /// short writes); returns the bytes written.
    @discardableResult
    func writeAll(_ chunks: [[UInt8]]) throws -> Int {
        var total = 0
        var index = 0
        var offsetInChunk = 0
        let maxVectors = 1024  // IOV_MAX on Linux
        while index < chunks.count {
            var vectors: [iovec] = []
            vectors.reserveCapacity(min(maxVectors, chunks.count - index))
            // The chunks are immutable arrays kept alive by `chunks`; their storage is stable.
            var i = index
            while i < chunks.count && vectors.count < maxVectors {
                let skip = i == index ? offsetInChunk : 0
                chunks[i].withUnsafeBytes { buf in
                    if buf.count > skip {
                        vectors.append(
                            iovec(iov_base: UnsafeMutableRawPointer(mutating: buf.baseAddress! + skip), iov_len: buf.count - skip))
                    }
                }
                i += 1
            }
            if vectors.isEmpty {
                index = i
                offsetInChunk = 0
                continue
            }
            let n = withExtendedLifetime(chunks) { writev(fd, vectors, Int32(vectors.count)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileObjectStore.posixError(errno, "write \(path ?? "object data")")
            }
            total += n
            // Advance past what was written.
            var left = n
            while left > 0 {
                let available = chunks[index].count - offsetInChunk
                if left >= available {
                    left -= available
                    index += 1
                    offsetInChunk = 0
                } else {
                    offsetInChunk += left
                    left = 0
                }
            }
            while index < chunks.count && chunks[index].count == offsetInChunk {
                index += 1
                offsetInChunk = 0
            }
        }
        return total
    }

    /// Up to `count` bytes from `offset` (fewer only at the end of the file).
    func read(count: Int, at offset: Int64) throws -> [UInt8] {
        var failure: ObjectStoreError?
        let out = [UInt8](unsafeUninitializedCapacity: count) { buf, initialized in
            var got = 0
            while got < count {
                let n = pread(fd, buf.baseAddress! + got, count - got, off_t(offset) + off_t(got))
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = FileObjectStore.posixError(errno, "read \(path ?? "object data")")
                    break
                }
                if n == 0 { break }
                got += n
            }
            initialized = got
        }
        if let failure { throw failure }
        return out
    }
}
