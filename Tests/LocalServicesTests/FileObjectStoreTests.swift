import AWS
import Crypto
import Foundation
import Testing
import TestSupport

@testable import LocalServices

struct FileObjectStoreTests {
    struct Boom: Error {}

    static func pattern(_ n: Int, seed: UInt8 = 7) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        var x = UInt32(seed) &* 2_654_435_761
        for i in 0..<n {
            x = x &* 1_103_515_245 &+ 12345
            out[i] = UInt8(truncatingIfNeeded: x >> 16)
        }
        return out
    }

    func withStore(_ body: (FileObjectStore, URL) async throws -> Void) async throws {
        let dir = try TestEnvironment.temporaryDirectory("fos")
        defer { try? FileManager.default.removeItem(at: dir) }
        try await body(try FileObjectStore(root: dir), dir)
    }

    @Test func streamedPutThenGetReturnsTheSameBytesAndDigest() async throws {
        try await withStore { store, _ in
            let data = Self.pattern(5 << 20 + 123)
            let info = try await store.put(key: "datasets/a b/ü.csv", body: ByteStream(bytes: data, chunkSize: 70_001))
            #expect(info.size == Int64(data.count))
            #expect(info.etag == PayloadHasher.hexDigest(data))
            #expect(info.sha256 == PayloadHasher.hexDigest(data))
            #expect(try await store.head(key: "datasets/a b/ü.csv").sha256 == info.sha256)
            let got = try await store.get(key: "datasets/a b/ü.csv")
            #expect(try await got.body.collect(limit: 10 << 20) == data)
            #expect(got.info.versionId == info.versionId)
        }
    }

    /// Descriptors of this process open on files under `folder`, but for the open store's `lock`.
    static func descriptors(under folder: URL) -> [String] {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        let root = folder.resolvingSymlinksInPath().path
        return fds.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)") }
            .filter { $0.hasPrefix(root) && $0 != root + "/lock" }
    }

    /// A reader that stops after the first chunk (as the key release does, reading a message
    /// header) leaves no descriptor open once it lets go (each such read leaked one, in a review).
    @Test func aDownloadLeftUnfinishedClosesItsFile() async throws {
        try await withStore { store, dir in
            _ = try await store.put(key: "datasets/big", body: ByteStream(bytes: Self.pattern(3 << 20)))
            for _ in 0..<5 {
                let download = try await store.get(key: "datasets/big", range: ByteRange(offset: 0, length: 2 << 20))
                for try await chunk in download.body where !chunk.isEmpty { break }
            }
            #expect(Self.descriptors(under: dir).isEmpty, "\(Self.descriptors(under: dir))")
        }
    }

    @Test func rangedGetServesExactlyTheRange() async throws {
        try await withStore { store, _ in
            let data = Self.pattern(1_000_000)
            _ = try await store.put(key: "k", body: ByteStream(bytes: data))
            let part = try await store.get(key: "k", range: ByteRange(offset: 300_000, length: 400_001))
            #expect(try await part.body.collect(limit: 1 << 20) == Array(data[300_000..<700_001]))
            let tail = try await store.get(key: "k", range: ByteRange(offset: 999_990))
            #expect(try await tail.body.collect(limit: 100) == Array(data[999_990...]))
            await #expect(throws: ObjectStoreError(.invalidRange, "range bytes=1000000- is outside object k of 1000000 bytes")) {
                _ = try await store.get(key: "k", range: ByteRange(offset: 1_000_000))
            }
        }
    }

    @Test func everyPutIsANewVersionAndOldVersionsStayReadable() async throws {
        try await withStore { store, _ in
            let v1 = try await store.put(key: "k", body: ByteStream(bytes: Array("one".utf8)))
            let v2 = try await store.put(key: "k", body: ByteStream(bytes: Array("two".utf8)))
            #expect(v1.versionId != v2.versionId)
            #expect(try await store.head(key: "k").versionId == v2.versionId)
            let old = try await store.get(key: "k", versionId: v1.versionId, range: nil)
            #expect(try await old.body.collect(limit: 10) == Array("one".utf8))
            #expect(try await store.versions(key: "k").map(\.versionId) == [v1.versionId, v2.versionId])
            try await store.delete(key: "k", versionId: v2.versionId)
            #expect(try await store.head(key: "k").versionId == v1.versionId)
            try await store.delete(key: "k")
            await #expect(throws: ObjectStoreError.self) { _ = try await store.head(key: "k") }
        }
    }

    @Test func aFailedPutLeavesNothingVisibleAndNoTemporaryFile() async throws {
        try await withStore { store, dir in
            let old = try await store.put(key: "k", body: ByteStream(bytes: Array("old".utf8)))
            let sent = LockedBox(0)
            let failing = ByteStream(next: {
                let n = sent.withLock { v -> Int in
                    v += 1
                    return v
                }
                if n > 3 { throw Boom() }
                return [UInt8](repeating: 1, count: 1 << 18)
            })
            await #expect(throws: Boom.self) { _ = try await store.put(key: "k", body: failing) }
            await #expect(throws: Boom.self) { _ = try await store.put(key: "new", body: failing) }
            #expect(try await store.head(key: "k") == old)
            #expect(try await store.list(prefix: "").map(\.key) == ["k"])
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("tmp").path).isEmpty)
        }
    }

    /// `verifyContent` sees the digest of exactly what was written, and its refusal stores nothing
    /// (how a job output whose digest is not the enclave's is kept out).
    @Test func contentRefusedByItsDigestIsNotStored() async throws {
        try await withStore { store, dir in
            let data = Self.pattern(3 << 20 + 5)
            let seen = LockedBox<[UInt8]?>(nil)
            let accepted = try await store.put(
                key: "ok", body: ByteStream(bytes: data, chunkSize: 65_537),
                options: ObjectPutOptions(verifyContent: { digest in seen.withLock { $0 = digest } }))
            #expect(seen.withLock { $0.map(Hex.encode) } == PayloadHasher.hexDigest(data))
            #expect(accepted.sha256 == PayloadHasher.hexDigest(data))
            let old = try await store.put(key: "k", body: ByteStream(bytes: Array("old".utf8)))
            await #expect(throws: Boom.self) {
                _ = try await store.put(
                    key: "k", body: ByteStream(bytes: data), options: ObjectPutOptions(verifyContent: { _ in throw Boom() }))
            }
            #expect(try await store.head(key: "k") == old)
            #expect(try await store.versions(key: "k").count == 1)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("tmp").path).isEmpty)
        }
    }

    @Test func readersNeverSeeAPartialObjectWhileAPutIsInFlight() async throws {
        try await withStore { store, _ in
            let data = Self.pattern(8 << 20)
            async let writer: ObjectInfo = store.put(key: "big", body: ByteStream(bytes: data, chunkSize: 1 << 16))
            for _ in 0..<200 {
                if let info = try? await store.head(key: "big") {
                    // Visible means whole: the size the metadata records and every byte of the content.
                    #expect(info.size == Int64(data.count))
                    #expect(try await store.get(key: "big").body.collect(limit: data.count + 1) == data)
                    break
                }
                #expect(try await store.list(prefix: "b").allSatisfy { $0.size == Int64(data.count) })
            }
            _ = try await writer
            #expect(try await store.head(key: "big").size == Int64(data.count))
        }
    }

    @Test func listFiltersByPrefixAndSortsByKey() async throws {
        try await withStore { store, _ in
            for key in ["b/2", "a/1", "b/1", "c"] { _ = try await store.put(key: key, body: ByteStream(bytes: [1])) }
            #expect(try await store.list(prefix: "b/").map(\.key) == ["b/1", "b/2"])
            #expect(try await store.list(prefix: "").map(\.key) == ["a/1", "b/1", "b/2", "c"])
        }
    }

    @Test func badKeysAndUnknownObjectsGetPreciseErrors() async throws {
        try await withStore { store, _ in
            await #expect(throws: ObjectStoreError(.invalidKey, "object key must be 1…1024 bytes, got 0")) {
                _ = try await store.put(key: "", body: ByteStream(bytes: []))
            }
            await #expect(throws: ObjectStoreError(.invalidKey, "object key contains a control character")) {
                _ = try await store.head(key: "a\u{0}b")
            }
            await #expect(throws: ObjectStoreError(.notFound, "no object missing")) { _ = try await store.get(key: "missing") }
            await #expect(throws: ObjectStoreError(.notFound, "no version zz of object missing")) {
                _ = try await store.head(key: "missing", versionId: "zz")
            }
        }
    }

    @Test func objectsAreWrittenWithOwnerOnlyPermissions() async throws {
        try await withStore { store, dir in
            let info = try await store.put(key: "k", body: ByteStream(bytes: [1, 2, 3]))
            let dataFile = try FileManager.default.subpathsOfDirectory(atPath: dir.appendingPathComponent("objects").path)
                .first { $0.hasSuffix("\(info.versionId!).data") }!
            let attrs = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("objects/\(dataFile)").path)
            #expect((attrs[.posixPermissions] as? Int) == 0o600)
        }
    }
}
