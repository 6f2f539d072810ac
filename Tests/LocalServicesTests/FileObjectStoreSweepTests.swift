import AWS
import Crypto
import Foundation
import Testing
import TestSupport

@testable import LocalServices

#if canImport(Glibc)
    import Glibc
#endif

/// Opening a store removes what crashes left (real files, laid out as an interrupted put or delete
/// leaves them), never a committed version, and never the files of a put another open store has in
/// flight.
struct FileObjectStoreSweepTests {
    func folder(_ root: URL, _ key: String) -> URL {
        root.appendingPathComponent("objects/\(PayloadHasher.hexDigest(Array(key.utf8)))")
    }

    func names(_ dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    }

    /// What a crash between a put's metadata rename and its data rename leaves: the new version's
    /// `.meta` in the object's folder, its data (and perhaps a metadata temporary) in `tmp/`.
    func leaveInterruptedPut(_ root: URL, key: String, after committed: String) throws -> String {
        let version = FileObjectStore.newVersionId()
        let dir = folder(root, key)
        try FileManager.default.copyItem(
            at: dir.appendingPathComponent("\(committed).meta"), to: dir.appendingPathComponent("\(version).meta"))
        try Data(repeating: 7, count: 4096).write(to: root.appendingPathComponent("tmp/\(version).data"))
        try Data("{".utf8).write(to: root.appendingPathComponent("tmp/\(UUID().uuidString)"))
        return version
    }

    @Test func openingRemovesMetadataACrashLeftWithoutItsDataAndKeepsEveryCommittedVersion() async throws {
        let root = try TestEnvironment.temporaryDirectory("fos-sweep")
        defer { try? FileManager.default.removeItem(at: root) }
        let (v1, v2): (String, String)
        do {
            let store = try FileObjectStore(root: root)
            #expect(store.openSweep == FileObjectStore.OpenSweep())
            v1 = try #require(try await store.put(key: "k", body: ByteStream(bytes: Array("one".utf8))).versionId)
            v2 = try #require(try await store.put(key: "k", body: ByteStream(bytes: Array("two".utf8))).versionId)
            _ = try await store.put(key: "j", body: ByteStream(bytes: [1]))
        }
        let orphan = try leaveInterruptedPut(root, key: "k", after: v2)
        let store = try FileObjectStore(root: root)
        let hash = folder(root, "k").lastPathComponent
        #expect(store.openSweep.orphanedMetadata == ["objects/\(hash)/\(orphan).meta"])
        #expect(store.openSweep.temporaryFiles.count == 2)
        #expect(store.openSweep.dataWithoutMetadata.isEmpty && store.openSweep.emptyObjects.isEmpty)
        #expect(try names(folder(root, "k")) == ["\(v1).data", "\(v1).meta", "\(v2).data", "\(v2).meta", "key"])
        #expect(try names(root.appendingPathComponent("tmp")).isEmpty)
        #expect(try await store.versions(key: "k").map(\.versionId) == [v1, v2])
        #expect(try await store.get(key: "k").body.collect(limit: 10) == Array("two".utf8))
        #expect(try await store.list(prefix: "").map(\.key) == ["j", "k"])
    }

    /// A second store opened on the same root while the first has a put in flight (several
    /// `FileObjectStore`s, in one process or two, on one folder) sweeps nothing: the put's data file
    /// stays and the put commits. (Before, every open emptied `tmp/`, and that put failed.)
    @Test func openingWhileAnotherStoreIsMidPutLeavesThatPutsFilesAndItCommits() async throws {
        let root = try TestEnvironment.temporaryDirectory("fos-sweep-busy")
        defer { try? FileManager.default.removeItem(at: root) }
        let first = try FileObjectStore(root: root)
        let gate = LockedBox(false)
        let sent = LockedBox(0)
        let body = ByteStream(next: {
            let n = sent.withLock { v -> Int in
                v += 1
                return v
            }
            if n == 1 { return [UInt8](repeating: 1, count: 1000) }
            while !gate.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
            return n == 2 ? [UInt8](repeating: 2, count: 1000) : nil
        })
        async let put = first.put(key: "k", body: body)
        let tmp = root.appendingPathComponent("tmp")
        while try names(tmp).isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        // An orphan as a crash of some earlier process would leave: not swept either, while `first` is open.
        let dir = folder(root, "k")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let stale = dir.appendingPathComponent("\(FileObjectStore.newVersionId()).meta")
        try Data("{}".utf8).write(to: stale)

        let second = try FileObjectStore(root: root)
        #expect(second.openSweep.skipped)
        #expect(second.openSweep.isEmpty)
        #expect(try names(tmp).count == 1, "the put's data file is still there")
        #expect(FileManager.default.fileExists(atPath: stale.path))

        gate.withLock { $0 = true }
        let info = try await put
        #expect(info.size == 2000)
        #expect(try await second.get(key: "k").body.collect(limit: 4000).count == 2000)
    }

    /// Data without its metadata (which the put's order rules out; damage from outside) is never
    /// removed, only reported; a folder with no version left goes; a folder holding a file the store
    /// does not know stays.
    @Test func dataWithoutMetadataIsKeptAndReportedAndFoldersWithNoVersionGo() async throws {
        let root = try TestEnvironment.temporaryDirectory("fos-sweep-data")
        defer { try? FileManager.default.removeItem(at: root) }
        let damaged: String
        do {
            let store = try FileObjectStore(root: root)
            damaged = try #require(try await store.put(key: "damaged", body: ByteStream(bytes: [1])).versionId)
            let emptied = try #require(try await store.put(key: "emptied", body: ByteStream(bytes: [2])).versionId)
            try await store.delete(key: "emptied", versionId: emptied)  // leaves the folder with its key
            let foreign = try #require(try await store.put(key: "foreign", body: ByteStream(bytes: [3])).versionId)
            try await store.delete(key: "foreign", versionId: foreign)
            try Data("x".utf8).write(to: folder(root, "foreign").appendingPathComponent("notes.txt"))
        }
        unlink(folder(root, "damaged").appendingPathComponent("\(damaged).meta").path)
        let store = try FileObjectStore(root: root)
        let sweep = store.openSweep
        #expect(sweep.dataWithoutMetadata == ["objects/\(folder(root, "damaged").lastPathComponent)/\(damaged).data"])
        #expect(FileManager.default.fileExists(atPath: folder(root, "damaged").appendingPathComponent("\(damaged).data").path))
        #expect(sweep.emptyObjects == ["objects/\(folder(root, "emptied").lastPathComponent)"])
        #expect(!FileManager.default.fileExists(atPath: folder(root, "emptied").path))
        #expect(try names(folder(root, "foreign")) == ["key", "notes.txt"])
        #expect(sweep.orphanedMetadata.isEmpty && !sweep.skipped)
    }

    /// A put whose commit (the data rename) fails leaves no metadata behind. The rename fails for
    /// real: a folder stands where the version's data file must go (EISDIR).
    @Test func aPutWhoseCommitFailsLeavesNoMetadata() async throws {
        let root = try TestEnvironment.temporaryDirectory("fos-sweep-commit")
        defer { try? FileManager.default.removeItem(at: root) }
        let dir = folder(root, "k")
        var writes = FileObjectStore.WriteConfiguration()
        writes.dataFileCreated = { fd in
            // The data file is tmp/<version>.data: block `<version>.data` in the object's folder.
            let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")) ?? ""
            let name = URL(fileURLWithPath: path).lastPathComponent
            try? FileManager.default.createDirectory(
                at: dir.appendingPathComponent(name).appendingPathComponent("blocker"), withIntermediateDirectories: true)
        }
        let store = try FileObjectStore(root: root, writes: writes)
        await #expect {
            _ = try await store.put(key: "k", body: ByteStream(bytes: [1, 2, 3]))
        } throws: { error in
            (error as? ObjectStoreError)?.message.hasPrefix("commit ") == true
        }
        let left = try names(dir)
        #expect(left.filter { $0.hasSuffix(".meta") }.isEmpty, "\(left)")
        #expect(try names(root.appendingPathComponent("tmp")).isEmpty)
    }
}
