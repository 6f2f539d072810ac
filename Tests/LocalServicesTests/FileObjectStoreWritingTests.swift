import AWS
import Foundation
import Testing
import TestSupport

@testable import LocalServices

/// The put write path: blocks gathered from the stream's chunks, written with `writev` while the
/// next block is hashed, writeback started early. The bytes on disk must be exactly the stream.
struct FileObjectStoreWritingTests {
    struct Boom: Error {}

    func withStore(_ writes: FileObjectStore.WriteConfiguration, _ body: (FileObjectStore, URL) async throws -> Void)
        async throws
    {
        let dir = try TestEnvironment.temporaryDirectory("fosw")
        defer { try? FileManager.default.removeItem(at: dir) }
        try await body(try FileObjectStore(root: dir, writes: writes), dir)
    }

    /// Chunks of varying sizes, including empty ones, cut from `data`.
    static func unevenChunks(_ data: [UInt8], sizes: [Int]) -> ByteStream {
        let state = LockedBox((offset: 0, turn: 0))
        return ByteStream(next: {
            state.withLock { s -> [UInt8]? in
                guard s.offset < data.count else { return nil }
                let n = min(sizes[s.turn % sizes.count], data.count - s.offset)
                s.turn += 1
                defer { s.offset += n }
                return Array(data[s.offset..<s.offset + n])
            }
        })
    }

    @Test func moreChunksPerBlockThanWritevTakesAreWrittenInOrder() async throws {
        // 1000-byte chunks into 4 MiB blocks: each block is more than IOV_MAX (1024) vectors.
        try await withStore(.init(blockSize: 4 << 20, writebackInterval: 256 << 10)) { store, _ in
            let data = FileObjectStoreTests.pattern(3 << 20 + 17, seed: 3)
            let info = try await store.put(key: "small-chunks", body: Self.unevenChunks(data, sizes: [1000, 0, 999, 1]))
            #expect(info.size == Int64(data.count))
            #expect(info.etag == PayloadHasher.hexDigest(data))
            #expect(try await store.get(key: "small-chunks").body.collect(limit: 8 << 20) == data)
        }
    }

    @Test func blocksSmallerThanChunksAndWritebackEveryBlockKeepTheBytesExact() async throws {
        try await withStore(.init(blockSize: 4096, writebackInterval: 4096)) { store, _ in
            let data = FileObjectStoreTests.pattern(2 << 20 + 5, seed: 9)
            let info = try await store.put(key: "big-chunks", body: Self.unevenChunks(data, sizes: [300_001, 7, 65_536]))
            #expect(info.etag == PayloadHasher.hexDigest(data))
            #expect(try await store.get(key: "big-chunks").body.collect(limit: 8 << 20) == data)
        }
    }

    @Test func aStreamFailingWhileBlocksAreBeingWrittenLeavesNothing() async throws {
        try await withStore(.init(blockSize: 16 << 10, writebackInterval: 32 << 10)) { store, dir in
            let sent = LockedBox(0)
            let failing = ByteStream(next: {
                let n = sent.withLock { v -> Int in
                    v += 1
                    return v
                }
                if n > 200 { throw Boom() }
                return [UInt8](repeating: UInt8(n % 256), count: 8 << 10)
            })
            await #expect(throws: Boom.self) { _ = try await store.put(key: "k", body: failing) }
            await #expect(throws: ObjectStoreError(.notFound, "no object k")) { _ = try await store.head(key: "k") }
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("tmp").path)
            #expect(leftovers.isEmpty)
        }
    }

    @Test func writevResumesAcrossChunkBoundariesAndSkipsEmptyChunks() throws {
        let dir = try TestEnvironment.temporaryDirectory("fosw-writev")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("out").path
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        try #require(fd >= 0)
        let file = FileBox(fd: fd)
        let chunks: [[UInt8]] = (0..<3000).map { i in i % 7 == 0 ? [] : [UInt8](repeating: UInt8(i % 251), count: i % 13) }
        let n = try file.writeAll(chunks)
        file.close()
        let expected = chunks.flatMap { $0 }
        #expect(n == expected.count)
        let onDisk = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(Array(onDisk) == expected)
    }

    @Test func writebackHintIsAvailableOnLinux() {
        #if os(Linux)
            #expect(Writeback.isAvailable)
        #endif
    }
}

/// The writer's failure path: a write error reaches the caller, and draining afterwards returns.
struct PipelinedFileWriterFailureTests {
    @Test(.timeLimit(.minutes(1))) func aFailedWriteIsReportedAndDrainReturnsAfterIt() async throws {
        let dir = try TestEnvironment.temporaryDirectory("fosw-fail")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("ro").path
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        for attempt in 0..<20 {
            let fd = open(path, O_RDONLY)  // every write fails with EBADF
            try #require(fd >= 0)
            let file = FileBox(fd: fd)
            let writer = PipelinedFileWriter(
                file: file, io: DispatchQueue(label: "test.io"), configuration: .init(blockSize: 1024, writebackInterval: 1024))
            var failure: (any Error)?
            do {
                for _ in 0..<10 { try await writer.append([UInt8](repeating: UInt8(attempt), count: 1024)) }
                try await writer.finish()
            } catch {
                failure = error
            }
            await writer.drain()  // must not hang whichever way the failure was observed
            file.close()
            let error = try #require(failure as? ObjectStoreError)
            #expect(error.code == .io)
            #expect(error.message.hasPrefix("write object data:"))
        }
    }
}
