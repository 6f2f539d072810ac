import AWS
import Foundation
import Logging
import TestSupport
import Testing

@testable import LocalServices
@testable import Server

/// What `cleanroomd serve` logs about opening its file object store.
@Suite struct ObjectStoreOpeningLogTests {
    @Test func sweptLeftoversAreANoticeMissingMetadataAnErrorAndAHeldStoreAWarning() async throws {
        let root = try TestEnvironment.temporaryDirectory("opening-log")
        defer { try? FileManager.default.removeItem(at: root) }
        let version: String
        do {
            let store = try FileObjectStore(root: root)
            version = try #require(try await store.put(key: "k", body: ByteStream(bytes: [1])).versionId)
        }
        let dir = root.appendingPathComponent("objects/\(PayloadHasher.hexDigest(Array("k".utf8)))")
        try Data("{}".utf8).write(to: dir.appendingPathComponent("\(FileObjectStore.newVersionId()).meta"))
        unlink(dir.appendingPathComponent("\(version).meta").path)
        let log = CapturedLog()
        let store = try FileObjectStore(root: root)
        StorageServices.logOpening(of: store, to: log.logger)
        #expect(log.entries.map(\.level) == [.notice, .error], "\(log.entries)")
        #expect(log.entries.last?.metadata["versions"]?.contains("\(version).data") == true)

        let held = CapturedLog()
        StorageServices.logOpening(of: try FileObjectStore(root: root), to: held.logger)  // `store` is still open
        #expect(held.entries.map(\.level) == [.warning], "\(held.entries)")
        _ = store
    }
}
