import AWS
import Foundation
import Testing
import TestSupport

@testable import LocalServices

#if canImport(Glibc)
    import Glibc
#endif

/// What a put does when the disk is full. The store's own data file is created as usual; then,
/// while `FullDisk` says so, `/dev/full` is put in its place (`dup2`), so the put's real `writev`
/// fails with the kernel's ENOSPC, as on a full file system, and its real failure path runs
/// (cleanup included: the file in `tmp/` is the store's own).
struct FileObjectStoreFullDiskTests {
    func withStore(_ body: (FileObjectStore, URL, FullDisk) async throws -> Void) async throws {
        let dir = try TestEnvironment.temporaryDirectory("fos-full")
        defer { try? FileManager.default.removeItem(at: dir) }
        let disk = FullDisk()
        var writes = FileObjectStore.WriteConfiguration()
        writes.dataFileCreated = { disk.apply(to: $0) }
        try await body(try FileObjectStore(root: dir, writes: writes), dir, disk)
    }

    func temporaryFiles(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("tmp").path)
    }

    @Test func aPutOnAFullDiskFailsAsInsufficientStorageWithItsErrnoAndLeavesNothing() async throws {
        try await withStore { store, dir, disk async throws in
            let old = try await store.put(key: "k", body: ByteStream(bytes: Array("old".utf8)))
            disk.mode = .full
            let data = FileObjectStoreTests.pattern(3 << 20 + 11)
            for key in ["k", "new"] {
                do {
                    _ = try await store.put(key: key, body: ByteStream(bytes: data, chunkSize: 100_003))
                    Issue.record("a put on a full disk succeeded")
                } catch let error as ObjectStoreError {
                    #expect(error.code == .insufficientStorage)
                    #expect(error.errno == ENOSPC)
                    // The message names the file that could not be written, for the operator's log.
                    #expect(error.message.contains(dir.appendingPathComponent("tmp").path), "\(error)")
                    #expect(error.message.contains("No space left on device"), "\(error)")
                }
            }
            #expect(try await store.head(key: "k") == old)
            #expect(try await store.versions(key: "k").count == 1)
            #expect(try await store.list(prefix: "").map(\.key) == ["k"])
            #expect(try temporaryFiles(dir).isEmpty)
            // Space freed: the same put succeeds.
            disk.mode = .off
            let retried = try await store.put(key: "k", body: ByteStream(bytes: data, chunkSize: 100_003))
            #expect(try await store.get(key: "k").body.collect(limit: data.count + 1) == data)
            #expect(try await store.head(key: "k").versionId == retried.versionId)
        }
    }

    @Test func anotherWriteFailureStaysAnIOErrorWithItsErrno() async throws {
        try await withStore { store, dir, disk async throws in
            disk.mode = .unwritable
            await #expect {
                _ = try await store.put(key: "k", body: ByteStream(bytes: [1, 2, 3]))
            } throws: { error in
                let e = error as? ObjectStoreError
                return e?.code == .io && e?.errno == EBADF
            }
            #expect(try await store.list(prefix: "").isEmpty)
            #expect(try temporaryFiles(dir).isEmpty)
        }
    }

    @Test func fullFileSystemsAndFullQuotasAreInsufficientStorageOtherErrnosIO() {
        #expect(FileObjectStore.posixError(ENOSPC, "write x").code == .insufficientStorage)
        #expect(FileObjectStore.posixError(EDQUOT, "write x").code == .insufficientStorage)
        for other in [EIO, EACCES, EBADF, EROFS] {
            #expect(FileObjectStore.posixError(other, "write x").code == .io)
        }
        #expect(FileObjectStore.posixError(EDQUOT, "write x").errno == EDQUOT)
    }
}
