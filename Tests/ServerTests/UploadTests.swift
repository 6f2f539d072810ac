import AWS
import CleanRoom
import Crypto
import Envelope
import Foundation
import HTTPServer
import Logging
import TestSupport
import Testing

@testable import LocalServices
@testable import Server

/// Dataset uploads: keyless validation of the message, visibility only when complete, and retry.
@Suite struct UploadTests {
    static let context = ["cleanroom:dataset": "ds-1", "cleanroom:party": "alpha", "cleanroom:owner-key": String(repeating: "f", count: 64)]

    static func validator() -> UploadValidator {
        UploadValidator(datasetId: "ds-1", partyId: "alpha", ownerKeyFingerprint: String(repeating: "f", count: 64))
    }

    static func feed(_ bytes: [UInt8], chunk: Int) throws -> UploadValidator {
        var v = validator()
        var i = 0
        while i < bytes.count {
            try v.consume(Array(bytes[i..<min(i + chunk, bytes.count)]))
            i += chunk
        }
        return v
    }

    @Test(arguments: [AlgorithmSuite.aes256GCMHKDFSHA512Commit, .aes256GCMHKDFSHA512CommitECDSAP384])
    func completeMessagesPassWhateverTheChunking(suite: AlgorithmSuite) async throws {
        let message = try await TestCiphertext.make(
            plaintext: Array(repeating: 0x41, count: 1000), context: Self.context, suite: suite, frameLength: 64)
        for chunk in [1, 7, 64, 1000, message.count] {
            let v = try Self.feed(message, chunk: chunk)
            try v.finish()
            #expect(v.header?.suite == suite)
        }
    }

    @Test func everyTruncationIsIncomplete() async throws {
        let message = try await TestCiphertext.make(
            plaintext: Array(repeating: 0x41, count: 300), context: Self.context,
            suite: .aes256GCMHKDFSHA512CommitECDSAP384, frameLength: 64)
        for cut in 0..<message.count {
            let v = try Self.feed(Array(message[..<cut]), chunk: 13)
            #expect(throws: UploadValidator.Failure.self, "cut at \(cut)") { try v.finish() }
        }
    }

    @Test func trailingBytesAreRefused() async throws {
        let message = try await TestCiphertext.make(plaintext: [1, 2, 3], context: Self.context)
        #expect { _ = try Self.feed(message + [0], chunk: 5) } throws: {
            ($0 as? UploadValidator.Failure)?.code == "invalid_ciphertext"
        }
    }

    @Test func wrongOrMissingEncryptionContextIsRefusedNamingTheKey() async throws {
        var wrong = Self.context
        wrong["cleanroom:party"] = "beta"
        let message = try await TestCiphertext.make(plaintext: [1], context: wrong)
        #expect { _ = try Self.feed(message, chunk: 4096) } throws: { error in
            let f = error as? UploadValidator.Failure
            return f?.code == "wrong_encryption_context" && f?.message.contains("cleanroom:party") == true
        }
        var missing = Self.context
        missing["cleanroom:owner-key"] = nil
        let message2 = try await TestCiphertext.make(plaintext: [1], context: missing)
        #expect { _ = try Self.feed(message2, chunk: 4096) } throws: { error in
            let f = error as? UploadValidator.Failure
            return f?.code == "missing_encryption_context" && f?.message.contains("cleanroom:owner-key") == true
        }
    }

    @Test func otherSuitesAndNonMessagesAreRefused() throws {
        // An AWS compatibility vector in suite 0x0178 (format 1, no key commitment).
        let v1 = Array(try Data(contentsOf: TestEnvironment.vector("esdk/ciphertexts/v1-0178-aes-10000")))
        #expect { _ = try Self.feed(v1, chunk: 4096) } throws: { ($0 as? UploadValidator.Failure)?.code == "unsupported_suite" }
        #expect { _ = try Self.feed(Array("age,label\n1,0\n".utf8), chunk: 4096) } throws: {
            ($0 as? UploadValidator.Failure)?.code == "invalid_ciphertext"
        }
    }

    @Test func uploadThroughTheAPIBecomesVisibleOnlyWhenComplete() async throws {
        let fixture = try GovernanceFixture()
        let alpha = try await fixture.register("Alpha")
        let created = try await fixture.call(
            .post, "/v1/datasets", token: alpha.token, json: ["name": "d", "columns": GovernanceFixture.columns])
        let id = try require2(created["id"] as? String)
        let message = try await fixture.ciphertext(datasetId: id, party: alpha, plaintext: Array(repeating: 0x30, count: 5000))
        // Cut off mid-stream: refused, nothing visible, nothing left in the object store.
        let cut = try await fixture.call(.put, "/v1/datasets/\(id)/content", token: alpha.token, body: Array(message.prefix(2000)))
        #expect(cut.status == 400)
        #expect(cut.code == "incomplete_upload")
        let afterCut = try await fixture.call(.get, "/v1/datasets/\(id)", token: alpha.token)
        #expect(afterCut["status"] as? String == "created")
        #expect(afterCut["sha256"] == nil)
        #expect(try await fixture.objects.list(prefix: "datasets/").isEmpty)
        #expect(try fixture.store.pendingUploads().isEmpty)
        // The retry succeeds and records size, digest, version, suite and context.
        let done = try await fixture.call(.put, "/v1/datasets/\(id)/content", token: alpha.token, body: message)
        #expect(done.status == 200, "\(done.json)")
        #expect(done["status"] as? String == "available")
        #expect(done["sha256"] as? String == Hex.encode(SHA256.hash(message)))
        #expect(done["size"] as? Int == message.count)
        #expect(done["suite"] as? String == "0x0478")
        #expect((done["encryptionContext"] as? [String: String])?["cleanroom:dataset"] == id)
        let stored = try await fixture.objects.list(prefix: "datasets/")
        #expect(stored.count == 1)
        let download = try await fixture.objects.get(key: stored[0].key)
        #expect(try await download.body.collect(limit: 1 << 20) == message)
        // A message made for another dataset is refused.
        let other = try await fixture.call(
            .post, "/v1/datasets", token: alpha.token, json: ["name": "e", "columns": GovernanceFixture.columns])
        let otherId = try require2(other["id"] as? String)
        let replay = try await fixture.call(.put, "/v1/datasets/\(otherId)/content", token: alpha.token, body: message)
        #expect(replay.code == "wrong_encryption_context")
    }

    /// Two uploads of one dataset at once: one wins; the other is told the dataset is already
    /// uploaded (409), not a server error (500, in a crash review), and leaves nothing behind.
    @Test func ofTwoConcurrentUploadsOneWinsAndTheOtherGets409() async throws {
        let fixture = try GovernanceFixture()
        let alpha = try await fixture.register("Alpha")
        let created = try await fixture.call(
            .post, "/v1/datasets", token: alpha.token, json: ["name": "d", "columns": GovernanceFixture.columns])
        let id = try require2(created["id"] as? String)
        let message = try await fixture.ciphertext(datasetId: id, party: alpha, plaintext: Array(repeating: 0x30, count: 8 << 20))
        async let first = fixture.call(.put, "/v1/datasets/\(id)/content", token: alpha.token, body: message)
        async let second = fixture.call(.put, "/v1/datasets/\(id)/content", token: alpha.token, body: message)
        let replies = try await [first, second]
        #expect(replies.map(\.status).sorted() == [200, 409], "\(replies.map(\.json))")
        #expect(replies.contains { $0.code == "dataset_already_uploaded" })
        #expect(try await fixture.objects.list(prefix: "datasets/").count == 1)
        #expect(try fixture.store.pendingUploads().isEmpty)
    }

    /// A governance API whose file object store writes go to `/dev/full` while `disk` says so (the
    /// kernel's ENOSPC on the store's real writes), logging to `log`.
    static func fixtureOnDisk(_ disk: FullDisk, log: CapturedLog) throws -> GovernanceFixture {
        try GovernanceFixture(
            objects: { data in
                var writes = FileObjectStore.WriteConfiguration()
                writes.dataFileCreated = { disk.apply(to: $0) }
                return try FileObjectStore(root: data.file("objects"), writes: writes)
            }, logger: log.logger)
    }

    /// A full disk (a crash review got a bare 500 and no log line): the owner gets 507 and what to
    /// do, the operator an error line naming the store's file and errno, and nothing changes: the
    /// dataset stays as it was, no object, no pending upload, no temporary file. Once space is freed
    /// the same upload succeeds.
    @Test func anUploadOnAFullDiskAnswers507LogsTheErrnoAndChangesNothing() async throws {
        let disk = FullDisk()
        let log = CapturedLog()
        let fixture = try Self.fixtureOnDisk(disk, log: log)
        let alpha = try await fixture.register("Alpha")
        let created = try await fixture.call(
            .post, "/v1/datasets", token: alpha.token, json: ["name": "d", "columns": GovernanceFixture.columns])
        let id = try require2(created["id"] as? String)
        let message = try await fixture.ciphertext(datasetId: id, party: alpha, plaintext: Array(repeating: 0x30, count: 3 << 20))
        disk.mode = .full
        let full = try await fixture.call(.put, "/v1/datasets/\(id)/content", token: alpha.token, body: message)
        #expect(full.status == 507, "\(full.json)")
        #expect(full.code == "insufficient_storage")
        let text = try require2((full["error"] as? [String: Any])?["message"] as? String)
        #expect(text.contains("storage is full") && text.contains("once the server's operator has freed space"), "\(text)")
        #expect(!text.contains(fixture.directory.path), "no server path reaches the client")
        let after = try await fixture.call(.get, "/v1/datasets/\(id)", token: alpha.token)
        #expect(after["status"] as? String == "created")
        #expect(after["sha256"] == nil)
        #expect(try await fixture.objects.list(prefix: "").isEmpty)
        #expect(try fixture.store.pendingUploads().isEmpty)
        let tmp = fixture.directory.appendingPathComponent("objects/tmp").path
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp).isEmpty)
        let errors = log.entries.filter { $0.level == .error }
        #expect(errors.count == 1, "\(log.entries)")
        #expect(errors.first?.message.contains("object store is full") == true)
        #expect(errors.first?.metadata["errno"] == "\(ENOSPC)")
        #expect(errors.first?.metadata["dataset"] == id)
        #expect(errors.first?.metadata["error"]?.contains(tmp) == true, "the line names the file: \(errors)")

        disk.mode = .off
        let retried = try await fixture.call(.put, "/v1/datasets/\(id)/content", token: alpha.token, body: message)
        #expect(retried.status == 200, "\(retried.json)")
        #expect(retried["status"] as? String == "available")
    }

    /// A full database (SQLite's own SQLITE_FULL, here from a page limit on its one writer): 507
    /// with what to do, an error line for the operator, nothing changed; once it has room again the
    /// same request succeeds.
    @Test func aRequestOnAFullDatabaseAnswers507AndChangesNothing() async throws {
        let log = CapturedLog()
        let fixture = try GovernanceFixture(logger: log.logger)
        let alpha = try await fixture.register("Alpha")
        let pages = try await fixture.store.pool.read { db in try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0 }
        try await fixture.store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = \(pages)") }
        var created: GovernanceFixture.Reply?
        for n in 0..<50 {  // until the writes no longer fit the pages left over
            let reply = try await fixture.call(
                .post, "/v1/datasets", token: alpha.token, json: ["name": "d\(n)", "columns": GovernanceFixture.columns])
            if reply.status != 201 && reply.status != 200 {
                created = reply
                break
            }
        }
        let full = try require2(created)
        #expect(full.status == 507, "\(full.json)")
        #expect(full.code == "insufficient_storage")
        let message = try require2((full["error"] as? [String: Any])?["message"] as? String)
        #expect(message.contains("storage is full") && message.contains("nothing was changed"), "\(message)")
        #expect(log.entries.contains { $0.level == .error && $0.message.contains("the database is full") }, "\(log.entries)")
        let before = try await fixture.call(.get, "/v1/datasets", token: alpha.token)
        let count = (before["items"] as? [Any])?.count
        try await fixture.store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = 1073741823") }
        let again = try await fixture.call(
            .post, "/v1/datasets", token: alpha.token, json: ["name": "after", "columns": GovernanceFixture.columns])
        #expect(again.status == 201 || again.status == 200, "\(again.json)")
        let after = try await fixture.call(.get, "/v1/datasets", token: alpha.token)
        #expect((after["items"] as? [Any])?.count == (count ?? -1) + 1)
    }

    /// Any other failure of the store keeps its 500 `object_store_failed`, and is logged too.
    @Test func anotherStoreFailureAnswers500AndIsLogged() async throws {
        let disk = FullDisk()
        let log = CapturedLog()
        let fixture = try Self.fixtureOnDisk(disk, log: log)
        let alpha = try await fixture.register("Alpha")
        let created = try await fixture.call(
            .post, "/v1/datasets", token: alpha.token, json: ["name": "d", "columns": GovernanceFixture.columns])
        let id = try require2(created["id"] as? String)
        let message = try await fixture.ciphertext(datasetId: id, party: alpha)
        disk.mode = .unwritable
        let failed = try await fixture.call(.put, "/v1/datasets/\(id)/content", token: alpha.token, body: message)
        #expect(failed.status == 500, "\(failed.json)")
        #expect(failed.code == "object_store_failed")
        #expect(try await fixture.objects.list(prefix: "").isEmpty)
        let errors = log.entries.filter { $0.level == .error }
        #expect(errors.count == 1, "\(log.entries)")
        #expect(errors.first?.metadata["errno"] == "\(EBADF)")
    }

    @Test func crashLeftoversAreCleanedAtStartAndTheUploadCanBeRetried() async throws {
        let fixture = try GovernanceFixture()
        let alpha = try await fixture.register("Alpha")
        let created = try await fixture.call(
            .post, "/v1/datasets", token: alpha.token, json: ["name": "d", "columns": GovernanceFixture.columns])
        let id = try require2(created["id"] as? String)
        // What a SIGKILL mid-upload leaves: the pending record and a stray object under its key.
        let caller = try require2(try fixture.store.authenticate(bearer: alpha.token))
        let pending = try fixture.store.beginUpload(datasetId: id, caller: caller)
        _ = try await fixture.objects.put(key: pending.objectKey, body: ByteStream(bytes: [1, 2, 3]))
        try await GovernanceSetup.recoverInterruptedUploads(
            store: fixture.store, objects: fixture.objects, logger: .init(label: "test"))
        #expect(try fixture.store.pendingUploads().isEmpty)
        #expect(try await fixture.objects.list(prefix: "datasets/").isEmpty)
        let message = try await fixture.ciphertext(datasetId: id, party: alpha)
        let done = try await fixture.call(.put, "/v1/datasets/\(id)/content", token: alpha.token, body: message)
        #expect(done["status"] as? String == "available")
    }
}
