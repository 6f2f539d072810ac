import AWS
import Attestation
import CleanRoom
import Crypto
import Enclave
import Foundation
@testable import LocalServices
import TestSupport
import Testing
@testable import Server

// `offPool` (TestSupport) runs the sink on its own thread, as the runner's thread does in the server.
@Suite struct StoredJobSinkTests {
    func setUp() throws -> (JobStoreWorld, JobPlan, StoredJobSink, FileObjectStore, JobProgressHub) {
        let world = try JobStoreWorld()
        for member in world.members { try world.approve(member) }
        let plan = try world.jobs.startJob(collaborationId: world.collaborationId, caller: world.members[0].caller)
        let objects = try FileObjectStore(root: world.directory.appendingPathComponent("objects"))
        let hub = JobProgressHub()
        let sink = StoredJobSink(jobs: world.jobs, objects: objects, hub: hub)
        return (world, plan, sink, objects, hub)
    }

    @Test func outputBecomesVisibleToItsRecipientOnlyAfterItsDigestMatched() async throws {
        let (world, plan, sink, objects, _) = try setUp()
        let alpha = world.members[0], beta = world.members[1]
        let chunks = (0..<5).map { i in [UInt8](repeating: UInt8(i), count: 100_000) }
        let jobID = plan.jobID, recipient = alpha.id
        let visibleEarly = try await offPool { () throws -> Bool in
            let writer = try sink.beginOutput(jobID: jobID, descriptor: OutputDescriptor(name: "scores:own", recipient: recipient))
            for chunk in chunks { try writer.write(chunk) }
            let early = try !world.recordedOutputs(jobID).isEmpty
            try writer.finish(sha256: SHA256.hash(chunks.flatMap { $0 }))
            return early
        }
        #expect(!visibleEarly, "nothing recorded before finish")
        #expect(try world.jobs.outputs(jobID: plan.jobID, caller: alpha.caller).isEmpty, "nothing visible before the job succeeded")
        try world.succeed(plan.jobID)
        let outputs = try world.jobs.outputs(jobID: plan.jobID, caller: alpha.caller)
        #expect(outputs.map(\.name) == ["scores:own"])
        #expect(try world.jobs.outputs(jobID: plan.jobID, caller: beta.caller).isEmpty)
        var stored: [UInt8] = []
        for try await chunk in try await objects.get(key: outputs[0].objectKey).body { stored += chunk }
        #expect(stored == chunks.flatMap { $0 })
        #expect(try leftovers(world).isEmpty)
    }

    @Test func damagedOutputIsNeitherStoredNorRecorded() async throws {
        let (world, plan, sink, objects, _) = try setUp()
        let jobID = plan.jobID, recipient = world.members[0].id
        let code = try await offPool { () throws -> String? in
            let writer = try sink.beginOutput(jobID: jobID, descriptor: OutputDescriptor(name: "model", recipient: recipient))
            try writer.write([1, 2, 3])
            do {
                try writer.finish(sha256: SHA256.hash([1, 2, 4]))
                return nil
            } catch { return (error as? JobFailure)?.code }
        }
        #expect(code == "output.digest")
        #expect(try world.recordedOutputs(plan.jobID).isEmpty)
        #expect(try leftovers(world).isEmpty)
        try await expectNoObject(objects, StoredJobSink.outputKey(jobID: jobID, recipient: recipient, name: "model"))
    }

    /// Files a put left in the object store's temporary folder.
    func leftovers(_ world: JobStoreWorld) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: world.directory.appendingPathComponent("objects/tmp").path)
    }

    func expectNoObject(_ objects: FileObjectStore, _ key: String) async throws {
        do {
            _ = try await objects.head(key: key)
            Issue.record("object \(key) exists")
        } catch let error as ObjectStoreError {
            #expect(error.code == .notFound)
        }
    }

    /// A full disk (ENOSPC from the store's real writes to `/dev/full`) fails the job with
    /// `output.insufficient_storage`, a reason every party may read (no server path), and an error
    /// line for the operator with the errno; nothing is stored or recorded. Whether the put fails
    /// while the output still streams (the large one) or at its end (the small one).
    @Test func anOutputOnAFullDiskFailsTheJobSayingSoAndIsLogged() async throws {
        let world = try JobStoreWorld()
        for member in world.members { try world.approve(member) }
        let plan = try world.jobs.startJob(collaborationId: world.collaborationId, caller: world.members[0].caller)
        let disk = FullDisk()
        let log = CapturedLog()
        var writes = FileObjectStore.WriteConfiguration()
        writes.dataFileCreated = { disk.apply(to: $0) }
        let objects = try FileObjectStore(root: world.directory.appendingPathComponent("objects"), writes: writes)
        let sink = StoredJobSink(jobs: world.jobs, objects: objects, hub: JobProgressHub(), logger: log.logger)
        disk.mode = .full
        let jobID = plan.jobID, recipient = world.members[0].id
        for (name, chunks) in [("model", 8), ("metrics", 1)] {
            let chunk = [UInt8](repeating: 7, count: name == "model" ? 1 << 20 : 100)
            let failure = try await offPool { () throws -> JobFailure? in
                do {
                    let writer = try sink.beginOutput(jobID: jobID, descriptor: OutputDescriptor(name: name, recipient: recipient))
                    for _ in 0..<chunks { try writer.write(chunk) }
                    try writer.finish(sha256: SHA256.hash(Array((0..<chunks).map { _ in chunk }.joined())))
                    return nil
                } catch { return error as? JobFailure }
            }
            #expect(failure?.code == "output.insufficient_storage", "\(name): \(String(describing: failure))")
            #expect(failure?.message.contains("storage is full") == true)
            #expect(failure?.message.contains(world.directory.path) == false)
            try await expectNoObject(objects, StoredJobSink.outputKey(jobID: jobID, recipient: recipient, name: name))
        }
        let receiptFailure = try await offPool { () throws -> JobFailure? in
            do {
                try sink.storeReceipt(jobID: jobID, receipt: [1], attestationDocument: [2])
                return nil
            } catch { return error as? JobFailure }
        }
        #expect(receiptFailure?.code == "output.insufficient_storage")
        #expect(try world.recordedOutputs(plan.jobID).isEmpty)
        #expect(try leftovers(world).isEmpty)
        let errors = log.entries.filter { $0.level == .error }
        #expect(errors.count == 3, "\(log.entries)")
        #expect(errors.allSatisfy { $0.metadata["errno"] == "\(ENOSPC)" && $0.metadata["job"] == jobID })
    }

    @Test func outputOfManyChunksStreamsIntoTheStoreWithItsDigest() async throws {
        let (world, plan, sink, objects, _) = try setUp()
        let alpha = world.members[0]
        // 24 MiB in 1 MiB chunks: more than the handoff holds, so the put must consume while chunks arrive.
        let chunks = (0..<24).map { i in (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) } }
        let jobID = plan.jobID, recipient = alpha.id
        try await offPool { () throws in
            let writer = try sink.beginOutput(jobID: jobID, descriptor: OutputDescriptor(name: "scores:own", recipient: recipient))
            for chunk in chunks { try writer.write(chunk) }
            try writer.finish(sha256: SHA256.hash(chunks.flatMap { $0 }))
        }
        try world.succeed(plan.jobID)
        let outputs = try world.jobs.outputs(jobID: plan.jobID, caller: alpha.caller)
        #expect(outputs.count == 1)
        #expect(outputs.first?.size == 24 << 20)
        #expect(outputs.first?.sha256 == Hex.encode(SHA256.hash(chunks.flatMap { $0 })))
        var hash = SHA256()
        var count = 0
        for try await chunk in try await objects.get(key: outputs[0].objectKey).body {
            hash.update(chunk)
            count += chunk.count
        }
        #expect(count == 24 << 20)
        #expect(hash.finalize() == SHA256.hash(chunks.flatMap { $0 }))
        #expect(try leftovers(world).isEmpty)
    }

    @Test func shortOutputIsRefusedAndNothingIsStored() async throws {
        let (world, plan, sink, objects, _) = try setUp()
        let jobID = plan.jobID, recipient = world.members[0].id
        let chunks = (0..<6).map { i in [UInt8](repeating: UInt8(i), count: 300_000) }
        let code = try await offPool { () throws -> String? in
            let writer = try sink.beginOutput(jobID: jobID, descriptor: OutputDescriptor(name: "metrics", recipient: recipient))
            // The last two chunks never arrive, but the end names the digest of all six.
            for chunk in chunks.prefix(4) { try writer.write(chunk) }
            do {
                try writer.finish(sha256: SHA256.hash(chunks.flatMap { $0 }))
                return nil
            } catch { return (error as? JobFailure)?.code }
        }
        #expect(code == "output.digest")
        #expect(try world.recordedOutputs(plan.jobID).isEmpty)
        #expect(try leftovers(world).isEmpty)
        try await expectNoObject(objects, StoredJobSink.outputKey(jobID: jobID, recipient: recipient, name: "metrics"))
    }

    @Test func abortedOutputLeavesNoObject() async throws {
        let (world, plan, sink, objects, _) = try setUp()
        let jobID = plan.jobID, recipient = world.members[0].id
        try await offPool { () throws in
            let writer = try sink.beginOutput(jobID: jobID, descriptor: OutputDescriptor(name: "model", recipient: recipient))
            for _ in 0..<8 { try writer.write([UInt8](repeating: 9, count: 1 << 20)) }
            writer.abort()
        }
        #expect(try world.recordedOutputs(plan.jobID).isEmpty)
        #expect(try leftovers(world).isEmpty)
        try await expectNoObject(objects, StoredJobSink.outputKey(jobID: jobID, recipient: recipient, name: "model"))
    }

    @Test func transitionsReachTheStoreTheAuditAndTheHub() async throws {
        let (world, plan, sink, objects, hub) = try setUp()
        let stream = hub.subscribe(jobID: plan.jobID)
        sink.transition(jobID: plan.jobID, to: .attesting, failure: nil)
        sink.progress(jobID: plan.jobID, ProgressEvent(phase: "training", iteration: 1, total: 2, loss: 0.5))
        let jobID = plan.jobID
        try await offPool { try sink.storeReceipt(jobID: jobID, receipt: Array("{}".utf8), attestationDocument: [0x84]) }
        sink.transition(jobID: plan.jobID, to: .failed, failure: JobFailure(code: "job.timeout", message: "timed out"))
        var events: [JobEvent] = []
        for await (_, event) in stream { events.append(event) }
        #expect(events.count == 3)
        #expect(try world.jobs.job(id: plan.jobID, caller: world.members[1].caller).status == "failed")
        #expect(try world.store.auditEntries().filter { $0.subject == plan.jobID }.map(\.action) == ["job.start", "job.attesting", "job.failed"])
        _ = try await objects.head(key: StoredJobSink.receiptKey(jobID: plan.jobID))
    }
}

/// What a restart does with jobs the last stop interrupted (DESIGN §2.6: nothing half-visible):
/// one that had stored its receipt had delivered everything and succeeds; any other fails, and
/// the outputs it had stored, recorded or not, are discarded. A crash review found a failed job
/// serving one of its five outputs.
@Suite struct JobRecoveryTests {
    struct NoKMS: Error {}

    func setUp() throws -> (JobStoreWorld, JobPlan, StoredJobSink, FileObjectStore, JobManager) {
        let world = try JobStoreWorld()
        for member in world.members { try world.approve(member) }
        let plan = try world.jobs.startJob(collaborationId: world.collaborationId, caller: world.members[0].caller)
        for state in [JobState.attesting, .running, .delivering] { try world.jobs.transition(jobID: plan.jobID, to: state, failure: nil) }
        let objects = try FileObjectStore(root: world.directory.appendingPathComponent("objects"))
        let manager = Self.manager(world, objects)
        return (world, plan, manager.sink, objects, manager)
    }

    /// A manager over the world's store that can run no enclave (none is needed to recover).
    static func manager(
        _ world: JobStoreWorld, _ objects: FileObjectStore, checkpoints: (any CheckpointService)? = nil
    ) -> JobManager {
        JobManager(
            store: world.store, objects: objects,
            services: JobManager.Services(
                launcher: LocalEnclaveLauncher(configuration: .init(executablePath: world.directory.appendingPathComponent("none").path)),
                verifier: AttestationVerifier(trustedRoots: [.awsNitroEnclavesRootG1]), decrypt: { _ in throw NoKMS() },
                checkpoints: checkpoints))
    }

    /// One output delivered and recorded, a second stored but not yet recorded (the stop came in between).
    func deliverPart(_ sink: StoredJobSink, _ objects: FileObjectStore, _ plan: JobPlan, to recipient: String) async throws {
        let jobID = plan.jobID
        try await offPool { () throws in
            let writer = try sink.beginOutput(jobID: jobID, descriptor: OutputDescriptor(name: "model", recipient: recipient))
            try writer.write([1, 2, 3])
            try writer.finish(sha256: SHA256.hash([1, 2, 3]))
        }
        _ = try await objects.put(
            key: StoredJobSink.outputKey(jobID: jobID, recipient: recipient, name: "metrics"), body: ByteStream(bytes: [4]))
    }

    @Test func aJobInterruptedWhileDeliveringFailsAndShowsNoneOfItsOutputs() async throws {
        let (world, plan, sink, objects, manager) = try setUp()
        let alpha = world.members[0]
        try await deliverPart(sink, objects, plan, to: alpha.id)
        #expect(try world.jobs.outputs(jobID: plan.jobID, caller: alpha.caller).isEmpty, "not visible while delivering")

        let recovered = try await manager.recoverInterruptedJobs()
        #expect(recovered.failed == [plan.jobID] && recovered.succeeded.isEmpty)
        let job = try world.jobs.job(id: plan.jobID, caller: alpha.caller)
        #expect(job.status == "failed" && job.error?.hasPrefix("job.interrupted") == true)
        #expect(try world.recordedOutputs(plan.jobID).isEmpty)
        #expect(try await objects.list(prefix: StoredJobSink.outputsPrefix(jobID: plan.jobID)).isEmpty)
        #expect(try world.store.auditEntries().contains { $0.action == "job.outputs_discarded" && $0.subject == plan.jobID })
        // A second start finds nothing left to do.
        let again = try await manager.recoverInterruptedJobs()
        #expect(again.failed.isEmpty && again.succeeded.isEmpty)
    }

    @Test func aJobInterruptedAfterStoringItsReceiptSucceeds() async throws {
        let (world, plan, sink, objects, manager) = try setUp()
        let alpha = world.members[0]
        try await deliverPart(sink, objects, plan, to: alpha.id)
        let jobID = plan.jobID
        try await offPool { () throws in try sink.storeReceipt(jobID: jobID, receipt: [7], attestationDocument: [8]) }

        let recovered = try await manager.recoverInterruptedJobs()
        #expect(recovered.succeeded == [plan.jobID] && recovered.failed.isEmpty)
        #expect(try world.jobs.job(id: plan.jobID, caller: alpha.caller).status == "succeeded")
        #expect(try world.jobs.outputs(jobID: plan.jobID, caller: alpha.caller).map(\.name) == ["model"])
    }

    /// A receipt the store cannot read (here its metadata is damaged) is not taken for a missing
    /// one: the start stops, and the job and its outputs stay as they were (a review of the fix
    /// had such a job failed and its outputs deleted).
    @Test func aReceiptThatCannotBeReadStopsTheStartInsteadOfFailingTheJob() async throws {
        let (world, plan, sink, objects, manager) = try setUp()
        let alpha = world.members[0]
        try await deliverPart(sink, objects, plan, to: alpha.id)
        let jobID = plan.jobID
        try await offPool { () throws in try sink.storeReceipt(jobID: jobID, receipt: [7], attestationDocument: [8]) }
        let version = try #require(try await objects.head(key: StoredJobSink.receiptKey(jobID: jobID)).versionId)
        let meta = try #require(
            FileManager.default.enumerator(atPath: world.directory.appendingPathComponent("objects").path)?
                .compactMap { $0 as? String }.first { $0.hasSuffix("\(version).meta") })
        try Data("not json".utf8).write(to: world.directory.appendingPathComponent("objects").appendingPathComponent(meta))
        await #expect(throws: (any Error).self) { try await manager.recoverInterruptedJobs() }
        #expect(try world.jobs.job(id: jobID, caller: alpha.caller).status == "delivering")
        #expect(try world.recordedOutputs(jobID).count == 1)
    }

    /// A job that failed with outputs still recorded (a stop came before they were discarded) has
    /// them discarded at the next start.
    @Test func outputsLeftByAJobThatFailedAreDiscardedAtStart() async throws {
        let (world, plan, sink, objects, manager) = try setUp()
        try await deliverPart(sink, objects, plan, to: world.members[0].id)
        try world.jobs.transition(jobID: plan.jobID, to: .failed, failure: JobFailure(code: "output.store", message: "x"))
        let recovered = try await manager.recoverInterruptedJobs()
        #expect(recovered.failed.isEmpty && recovered.succeeded.isEmpty)
        #expect(try world.recordedOutputs(plan.jobID).isEmpty)
        #expect(try await objects.list(prefix: StoredJobSink.outputsPrefix(jobID: plan.jobID)).isEmpty)
    }

    /// A job the restart finds delivered succeeds as one its runner saw through, and its sealed
    /// checkpoint goes as the runner's would: it is training state of a finished job, which no
    /// longer serves anything. A job the restart fails keeps its checkpoint, so that a job started
    /// again resumes from it.
    @Test func aJobRecoveredAsSucceededDropsItsCheckpointAndOneRecoveredAsFailedKeepsIt() async throws {
        let world = try JobStoreWorld(maxRuns: 2)
        for member in world.members { try world.approve(member) }
        let objects = try FileObjectStore(root: world.directory.appendingPathComponent("objects"))
        let checkpoints = KMSCheckpointService(
            objects: objects, keyID: "alias/cleanroom-checkpoints", generateDataKey: { _ in throw NoKMS() },
            decrypt: { _ in throw NoKMS() })
        let manager = Self.manager(world, objects, checkpoints: checkpoints)
        let alpha = world.members[0]
        func interruptedWhileDelivering() throws -> JobPlan {
            let plan = try world.jobs.startJob(collaborationId: world.collaborationId, caller: alpha.caller)
            for state in [JobState.attesting, .running, .delivering] {
                try world.jobs.transition(jobID: plan.jobID, to: state, failure: nil)
            }
            return plan
        }
        func checkpointStored(_ plan: JobPlan) async throws -> Bool {
            do {
                _ = try await objects.head(
                    key: KMSCheckpointService.objectKey(collaborationID: plan.collaborationID, policyDigest: plan.policyDigest))
                return true
            } catch let error as ObjectStoreError where error.code == .notFound {
                return false
            }
        }
        // What a run stores (the service's own object layout; the bytes do not matter here).
        func storeCheckpoint(_ plan: JobPlan) async throws {
            _ = try await objects.put(
                key: KMSCheckpointService.objectKey(collaborationID: plan.collaborationID, policyDigest: plan.policyDigest),
                body: ByteStream(bytes: Array("CRCS".utf8) + [1, 0, 0, 0, 1, 9, 9]))
        }

        let first = try interruptedWhileDelivering()
        try await storeCheckpoint(first)
        #expect(try await manager.recoverInterruptedJobs().failed == [first.jobID])
        #expect(try await checkpointStored(first), "kept for the job started again")

        let second = try interruptedWhileDelivering()
        try await deliverPart(manager.sink, objects, second, to: alpha.id)
        let jobID = second.jobID, sink = manager.sink
        try await offPool { () throws in try sink.storeReceipt(jobID: jobID, receipt: [7], attestationDocument: [8]) }
        #expect(try await manager.recoverInterruptedJobs().succeeded == [second.jobID])
        #expect(try world.jobs.job(id: second.jobID, caller: alpha.caller).status == "succeeded")
        #expect(try await !checkpointStored(second), "dropped once its job succeeded")
    }

    @Test func aJobInterruptedBeforeDeliveringFails() async throws {
        let world = try JobStoreWorld()
        for member in world.members { try world.approve(member) }
        let plan = try world.jobs.startJob(collaborationId: world.collaborationId, caller: world.members[0].caller)
        for state in [JobState.attesting, .running] { try world.jobs.transition(jobID: plan.jobID, to: state, failure: nil) }
        let manager = Self.manager(world, try FileObjectStore(root: world.directory.appendingPathComponent("objects")))
        #expect(try await manager.recoverInterruptedJobs().failed == [plan.jobID])
        let job = try world.jobs.job(id: plan.jobID, caller: world.members[0].caller)
        #expect(job.status == "failed")
        #expect(job.error?.hasPrefix("job.interrupted") == true)
    }
}

extension StoredJobSinkTests {
    /// A state the database refuses to store for a while (a full disk, here a trigger) is written
    /// again until it is stored, an open one as a terminal one: the job never stays open in the
    /// database after its runner ended (a crash review found it `running`, blocking every later
    /// start of the policy), and a state lost on the way cannot make the next one invalid (a
    /// review of the fix lost `delivering`, after which `succeeded` was refused).
    @Test func aStateIsStoredOnceTheDatabaseTakesWritesAgain() async throws {
        let (world, plan, _, objects, hub) = try setUp()
        let sink = StoredJobSink(jobs: world.jobs, objects: objects, hub: hub, storeRetry: .milliseconds(20))
        try await world.store.pool.write { db in
            try db.execute(sql: "CREATE TRIGGER refuse BEFORE UPDATE ON job BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        }
        let jobID = plan.jobID
        let done = DispatchSemaphore(value: 0)
        Thread {
            sink.transition(jobID: jobID, to: .attesting, failure: nil)
            sink.transition(jobID: jobID, to: .failed, failure: JobFailure(code: "output.store", message: "could not store output model"))
            done.signal()
        }.start()
        #expect(done.wait(timeout: .now() + 0.3) == .timedOut, "still retrying while the database refuses")
        #expect(try world.jobs.job(id: jobID, caller: world.members[0].caller).status == "pending")
        try await world.store.pool.write { db in try db.execute(sql: "DROP TRIGGER refuse") }
        #expect(done.wait(timeout: .now() + 5) == .success)
        let job = try world.jobs.job(id: jobID, caller: world.members[0].caller)
        #expect(job.status == "failed" && job.error == "output.store: could not store output model")
        #expect(try world.store.auditEntries().contains { $0.action == "job.attesting" && $0.subject == jobID })
    }
}
