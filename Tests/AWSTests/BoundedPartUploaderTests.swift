import Foundation
import Testing

@testable import AWS

/// The multipart memory bound, checked without a network: part uploads are held open by the
/// test, so the uploader can only read ahead as far as its buffers allow.
struct BoundedPartUploaderTests {
    /// Uploads that block until the test releases them, recording what each part carried.
    final class HeldUploads: @unchecked Sendable {
        private let lock = NSLock()
        private var waiting: [Int: CheckedContinuation<Void, Never>] = [:]
        private var released: Set<Int> = []
        private(set) var parts: [Int: [UInt8]] = [:]

        func upload(_ n: Int, _ buffer: UploadBuffer) async -> String {
            let bytes = buffer.withUnsafeBytes { Array($0) }
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                lock.lock()
                parts[n] = bytes
                if released.contains(n) {
                    lock.unlock()
                    c.resume()
                } else {
                    waiting[n] = c
                    lock.unlock()
                }
            }
            return "etag-\(n)"
        }

        var held: [Int] { lock.withLock { waiting.keys.sorted() } }

        func release(_ n: Int) {
            let c: CheckedContinuation<Void, Never>? = lock.withLock {
                released.insert(n)
                return waiting.removeValue(forKey: n)
            }
            c?.resume()
        }

        func recorded() -> [Int: [UInt8]] { lock.withLock { parts } }
    }

    /// A stream of `total` bytes (byte i = i mod 251) in `chunk`-byte chunks, counting bytes handed out.
    static func counted(total: Int, chunk: Int, pulled: LockedBox<Int>) -> ByteStream {
        ByteStream(next: {
            pulled.withLock { offset -> [UInt8]? in
                guard offset < total else { return nil }
                let n = min(chunk, total - offset)
                defer { offset += n }
                return (offset..<offset + n).map { UInt8($0 % 251) }
            }
        })
    }

    static func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        for _ in 0..<2000 {
            if condition() { return }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        Issue.record("timed out waiting until \(what)")
        throw CancellationError()
    }

    @Test func readingStopsWhileEveryPartBufferIsInFlightAndBuffersNeverExceedTheBound() async throws {
        let partSize = 64 << 10, chunk = 24 << 10, buffers = 3, partCount = 10
        let total = partSize * partCount - 1000  // a short last part
        let pulled = LockedBox(0)
        let gauge = UploadMemoryGauge()
        let held = HeldUploads()
        let uploader = BoundedPartUploader(partSize: partSize, maxBuffers: buffers, gauge: gauge)

        let run = Task {
            var reader = PartReader(stream: Self.counted(total: total, chunk: chunk, pulled: pulled))
            let first = try UploadBuffer(capacity: partSize, gauge: gauge)
            try await reader.fill(first)
            return try await uploader.run(first: first, reader: &reader) { n, buffer in
                await held.upload(n, buffer)
            }
        }

        var releasedParts = 0
        while releasedParts < partCount {
            // All buffers in flight (fewer only for the last parts): the reader must be stuck.
            let expectedHeld = min(buffers, partCount - releasedParts)
            try await Self.waitUntil("\(expectedHeld) parts are held") { held.held.count == expectedHeld }
            try await Task.sleep(nanoseconds: 20_000_000)  // give a broken uploader time to read on
            #expect(held.held.count == expectedHeld)
            // Read so far: the held parts plus at most one chunk of read-ahead.
            let read = pulled.withLock { $0 }
            #expect(read <= (releasedParts + buffers) * partSize + chunk)
            #expect(gauge.currentBytes <= buffers * partSize)
            held.release(held.held[0])
            releasedParts += 1
        }
        let result = try await run.value
        #expect(gauge.peakBytes == buffers * partSize)
        #expect(result.total == Int64(total))
        #expect(result.etags == Dictionary(uniqueKeysWithValues: (1...partCount).map { ($0, "etag-\($0)") }))
        // Recycled buffers still carried the right bytes, in order.
        let parts = held.recorded()
        let joined = (1...partCount).flatMap { parts[$0]! }
        #expect(joined == (0..<total).map { UInt8($0 % 251) })
        #expect(parts[partCount]!.count == partSize - 1000)
    }

    @Test func oneBufferUploadsOnePartAtATime() async throws {
        let partSize = 16 << 10
        let pulled = LockedBox(0)
        let gauge = UploadMemoryGauge()
        let inFlight = LockedBox((now: 0, most: 0))
        let uploader = BoundedPartUploader(partSize: partSize, maxBuffers: 1, gauge: gauge)
        var reader = PartReader(stream: Self.counted(total: 5 * partSize, chunk: 5000, pulled: pulled))
        let first = try UploadBuffer(capacity: partSize, gauge: gauge)
        try await reader.fill(first)
        let result = try await uploader.run(first: first, reader: &reader) { n, _ in
            inFlight.withLock {
                $0.now += 1
                $0.most = max($0.most, $0.now)
            }
            try await Task.sleep(nanoseconds: 1_000_000)
            inFlight.withLock { $0.now -= 1 }
            return "e\(n)"
        }
        #expect(result.etags.count == 5)
        #expect(inFlight.withLock { $0.most } == 1)
        #expect(gauge.peakBytes == partSize)
        // 5000-byte chunks straddle every part boundary: each byte is still hashed exactly once.
        #expect(hex(reader.sha256()) == PayloadHasher.hexDigest((0..<5 * partSize).map { UInt8($0 % 251) }))
    }

    /// The whole-stream digest of a stream that ends inside the first part, within a chunk, and
    /// exactly at a part's end (where the end is learnt by reading ahead).
    @Test func theReaderHashesTheWholeStreamOnce() async throws {
        let partSize = 16 << 10
        for total in [0, 1, 5000, partSize, partSize + 1, 3 * partSize] {
            var reader = PartReader(stream: Self.counted(total: total, chunk: 3000, pulled: LockedBox(0)))
            let buffer = try UploadBuffer(capacity: partSize, gauge: UploadMemoryGauge())
            while true {
                try await reader.fill(buffer)
                if buffer.count == 0 { break }
                if try await reader.peekEnd() { break }
            }
            #expect(hex(reader.sha256()) == PayloadHasher.hexDigest((0..<total).map { UInt8($0 % 251) }), "total \(total)")
        }
    }

    @Test func aFailedPartFailsTheUploadAndStopsReading() async throws {
        struct Boom: Error {}
        let partSize = 16 << 10
        let pulled = LockedBox(0)
        let uploader = BoundedPartUploader(partSize: partSize, maxBuffers: 2, gauge: nil)
        var reader = PartReader(stream: Self.counted(total: 100 * partSize, chunk: 4096, pulled: pulled))
        let first = try UploadBuffer(capacity: partSize)
        try await reader.fill(first)
        await #expect(throws: Boom.self) {
            _ = try await uploader.run(first: first, reader: &reader) { n, _ in
                if n == 3 { throw Boom() }
                return "e\(n)"
            }
        }
        #expect(pulled.withLock { $0 } < 10 * partSize)
    }
}
