import AWS
import Crypto
import Enclave
import Foundation
@testable import LocalServices
import Logging
import TestSupport
import Testing
@testable import Server

/// The checkpoint service's refusals, against a real file object store and scripted KMS answers:
/// the server never forwards (or keeps) a checkpoint key KMS answered in plaintext (DESIGN §2.1),
/// and stored or offered bytes that are not a checkpoint are refused with a clear code. The service
/// blocks on the object store, so it is called off the concurrency pool, as the job runner's thread does.
@Suite struct KMSCheckpointServiceTests {
    let plan = JobPlan(
        jobID: "job-1", collaborationID: "col-1", policy: Array("{}".utf8), policyDigest: SHA256.hash(Array("p".utf8)),
        approvalBundle: [], datasets: [])
    let objectKey: String

    init() {
        objectKey = KMSCheckpointService.objectKey(collaborationID: "col-1", policyDigest: SHA256.hash(Array("p".utf8)))
    }

    final class Calls: @unchecked Sendable {
        private let lock = NSLock()
        private var names: [String] = []
        func record(_ name: String) { lock.withLock { names.append(name) } }
        var all: [String] { lock.withLock { names } }
    }

    /// A service whose KMS answers with `leak` plaintext keys when asked to.
    func service(_ objects: FileObjectStore, leakOnGenerate: Bool = false, leakOnDecrypt: Bool = false, calls: Calls)
        -> KMSCheckpointService
    {
        KMSCheckpointService(
            objects: objects, keyID: "alias/cleanroom-checkpoints",
            generateDataKey: { _ in
                calls.record("generate")
                return KMSWire.GenerateDataKeyResponse(
                    ciphertextBlob: Data([1, 2, 3]), plaintext: leakOnGenerate ? Data(repeating: 7, count: 32) : nil,
                    keyId: "k", ciphertextForRecipient: Data([9, 9, 9]))
            },
            decrypt: { _ in
                calls.record("decrypt")
                return KMSWire.DecryptResponse(
                    plaintext: leakOnDecrypt ? Data(repeating: 7, count: 32) : nil, keyId: "k",
                    ciphertextForRecipient: Data([8, 8, 8]))
            })
    }

    func store() throws -> FileObjectStore {
        try FileObjectStore(root: try TestEnvironment.temporaryDirectory("checkpoint-service"))
    }

    /// The job failure `body` throws, if any.
    func failure(_ body: @escaping @Sendable () throws -> Void) async -> JobFailure? {
        do {
            try await offPool(body)
            return nil
        } catch {
            return error as? JobFailure ?? JobFailure(code: "unexpected", message: "\(error)")
        }
    }

    /// A well-formed stored checkpoint object (`CRCS`, version 1, blob length, blob, sealed bytes).
    func object(blob: [UInt8] = [1, 2, 3], sealed: [UInt8] = [UInt8](repeating: 5, count: 64)) -> [UInt8] {
        Array("CRCS".utf8) + [1] + withUnsafeBytes(of: UInt32(blob.count).bigEndian) { Array($0) } + blob + sealed
    }

    @Test func aNewKeyAnsweredInPlaintextIsNeverForwarded() async throws {
        let calls = Calls()
        let (checkpoints, plan) = (service(try store(), leakOnGenerate: true, calls: calls), plan)
        let refusal = await failure { _ = try checkpoints.grant(plan: plan, attestationDocument: [1]) }
        #expect(refusal?.code == "checkpoint.plaintext")
        #expect(calls.all == ["generate"])
        // Nothing was kept for the job either: a checkpoint cannot be stored under that key.
        let stored = await failure { try checkpoints.store(plan: plan, sealed: [UInt8](repeating: 0, count: 64)) }
        #expect(stored?.code == "checkpoint.no_key")
    }

    @Test func aStoredKeyReleasedInPlaintextIsNeverForwarded() async throws {
        let objects = try store()
        _ = try await objects.put(key: objectKey, body: ByteStream(bytes: object()))
        let calls = Calls()
        let (checkpoints, plan) = (service(objects, leakOnDecrypt: true, calls: calls), plan)
        let refusal = await failure { _ = try checkpoints.grant(plan: plan, attestationDocument: [1]) }
        #expect(refusal?.code == "checkpoint.plaintext")
        #expect(calls.all == ["decrypt"])
    }

    /// A stored object that is not a checkpoint is not handed to KMS or the enclave: the job gets
    /// a fresh key and a note saying why it starts over.
    @Test(arguments: ["truncated", "magic", "version", "length past the end", "empty blob"])
    func aMalformedStoredCheckpointIsRefusedAndTrainingStartsOver(fault: String) async throws {
        var bytes = object()
        switch fault {
        case "truncated": bytes = Array(bytes.prefix(6))
        case "magic": bytes[0] = UInt8(ascii: "X")
        case "version": bytes[4] = 2
        case "length past the end": bytes[5] = 0xFF
        default: bytes = object(blob: [])
        }
        let objects = try store()
        _ = try await objects.put(key: objectKey, body: ByteStream(bytes: bytes))
        let calls = Calls()
        let (checkpoints, plan) = (service(objects, calls: calls), plan)
        let grant = try await offPool { try checkpoints.grant(plan: plan, attestationDocument: [1]) }
        #expect(calls.all == ["generate"], "\(fault)")
        #expect(grant.sealedCheckpoint == nil)
        #expect(grant.ciphertextForRecipient == [9, 9, 9])
        #expect(grant.note?.contains("the stored checkpoint object is malformed") == true, "\(fault)")
    }

    /// A stored object past the largest checkpoint is not read whole: the job starts over.
    @Test func anOversizedStoredCheckpointIsRefusedAndTrainingStartsOver() async throws {
        let objects = try store()
        let oversized = object(sealed: [UInt8](repeating: 5, count: KMSCheckpointService.maxObjectBytes))
        _ = try await objects.put(key: objectKey, body: ByteStream(bytes: oversized))
        let calls = Calls()
        let (checkpoints, plan) = (service(objects, calls: calls), plan)
        let grant = try await offPool { try checkpoints.grant(plan: plan, attestationDocument: [1]) }
        #expect(calls.all == ["generate"])
        #expect(grant.sealedCheckpoint == nil)
        #expect(grant.note?.contains("the stored checkpoint is too large") == true, "\(grant.note ?? "no note")")
    }

    @Test func bytesThatAreNotASealedCheckpointAreNotStored() async throws {
        let objects = try store()
        let (checkpoints, plan) = (service(objects, calls: Calls()), plan)
        _ = try await offPool { try checkpoints.grant(plan: plan, attestationDocument: [1]) }
        let refusal = await failure { try checkpoints.store(plan: plan, sealed: [1, 2, 3]) }
        #expect(refusal?.code == "checkpoint.malformed")
        await #expect(throws: ObjectStoreError.self) { _ = try await objects.head(key: objectKey, versionId: nil) }
    }

    /// A checkpoint the store cannot keep (a full disk: ENOSPC from the store's real writes to
    /// `/dev/full`) is reported to the parties without the server's file names, and logged for the
    /// operator with the errno.
    @Test func aCheckpointOnAFullDiskIsReportedWithoutServerPathsAndLogged() async throws {
        let root = try TestEnvironment.temporaryDirectory("checkpoint-full")
        defer { try? FileManager.default.removeItem(at: root) }
        let disk = FullDisk()
        var writes = FileObjectStore.WriteConfiguration()
        writes.dataFileCreated = { disk.apply(to: $0) }
        let objects = try FileObjectStore(root: root, writes: writes)
        let log = CapturedLog()
        let calls = Calls()
        let checkpoints = KMSCheckpointService(
            objects: objects, keyID: "alias/cleanroom-checkpoints",
            generateDataKey: { _ in
                calls.record("generate")
                return KMSWire.GenerateDataKeyResponse(
                    ciphertextBlob: Data([1, 2, 3]), plaintext: nil, keyId: "k", ciphertextForRecipient: Data([9, 9, 9]))
            },
            decrypt: { _ in throw JobFailure(code: "unexpected", message: "no decrypt") }, logger: log.logger)
        let plan = self.plan
        _ = try await offPool { try checkpoints.grant(plan: plan, attestationDocument: [1]) }
        disk.mode = .full
        let sealed = Array("CRCK".utf8) + [1] + [UInt8](repeating: 0, count: SealedCheckpoint.minimumBytes)
        let refusal = await failure { try checkpoints.store(plan: plan, sealed: sealed) }
        #expect(refusal?.code == "checkpoint.store")
        #expect(refusal?.message == "the checkpoint could not be stored: the server's storage is full")
        #expect(log.entries.map(\.level) == [.error])
        #expect(log.entries.first?.metadata["errno"] == "\(ENOSPC)")
        #expect(log.entries.first?.metadata["error"]?.contains(root.path) == true)
    }
}
