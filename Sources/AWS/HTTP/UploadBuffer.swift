import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A fixed-capacity byte buffer in its own anonymous memory mapping, sent by `HTTPClient` in
/// place (`HTTPClientRequest.Body.buffer`): libcurl's read callback copies straight out of it,
/// so a multi-megabyte request body is never duplicated.
///
/// The owner must not change the bytes while a request that uses them is in flight. The
/// mapping goes back to the OS when the buffer is freed (no allocator fragmentation), and an
/// optional `UploadMemoryGauge` counts its capacity while it lives.
public final class UploadBuffer: @unchecked Sendable {
    /// Bytes the buffer can hold.
    public let capacity: Int
    /// Bytes written so far.
    public private(set) var count = 0
    private let base: UnsafeMutableRawPointer
    private let gauge: UploadMemoryGauge?

    /// Maps `capacity` bytes (pages become resident only when written).
    public init(capacity: Int, gauge: UploadMemoryGauge? = nil) throws {
        precondition(capacity > 0, "UploadBuffer capacity must be positive")
        let mapped = mmap(nil, capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let mapped, mapped != MAP_FAILED else {
            let code = errno
            throw HTTPClientError(.transport, "cannot map a \(capacity)-byte upload buffer: \(String(cString: strerror(code)))")
        }
        self.capacity = capacity
        self.base = mapped
        self.gauge = gauge
        gauge?.add(capacity)
    }

    deinit {
        munmap(base, capacity)
        gauge?.add(-capacity)
    }

    /// Room left.
    public var remaining: Int { capacity - count }

    /// Forgets the contents (the mapping stays, ready to be filled again).
    public func reset() { count = 0 }

    /// Appends as many of `bytes` as fit; returns how many were taken.
    @discardableResult
    public func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let n = min(bytes.count, remaining)
        if n > 0 { (base + count).copyMemory(from: bytes.baseAddress!, byteCount: n) }
        count += n
        return n
    }

    /// Appends as many of `bytes` as fit; returns how many were taken.
    @discardableResult
    public func append(_ bytes: ArraySlice<UInt8>) -> Int { bytes.withUnsafeBytes { append($0) } }

    /// The bytes written so far, valid only inside `body`.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// Copies bytes from `offset` into `destination`; returns how many (0 at the end).
    func read(at offset: Int, into destination: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(destination.count, count - offset)
        guard n > 0 else { return 0 }
        destination.baseAddress!.copyMemory(from: base + offset, byteCount: n)
        return n
    }
}

/// Counts the bytes of live `UploadBuffer`s that report to it, and the most ever live at once:
/// the observable bound on what an upload keeps in memory.
public final class UploadMemoryGauge: Sendable {
    private let state = LockedBox((current: 0, peak: 0))

    public init() {}

    /// Bytes held by live buffers now.
    public var currentBytes: Int { state.withLock { $0.current } }
    /// The most bytes ever held at once.
    public var peakBytes: Int { state.withLock { $0.peak } }

    func add(_ delta: Int) {
        state.withLock { s in
            s.current += delta
            s.peak = max(s.peak, s.current)
        }
    }
}
