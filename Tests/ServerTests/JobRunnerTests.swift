import Crypto
import Enclave
import Foundation
import Testing
@testable import Server

/// Records what the runner reports.
final class RecordingSink: JobEventSink, @unchecked Sendable {
    let lock = NSLock()
    var states: [JobState] = []
    var failures: [JobFailure] = []
    var events: [ProgressEvent] = []
    var outputs: [String: [UInt8]] = [:]
    var receipt: [UInt8]?

    final class Writer: OutputWriter {
        let sink: RecordingSink, key: String
        var bytes: [UInt8] = []
        init(sink: RecordingSink, key: String) { self.sink = sink; self.key = key }
        func write(_ chunk: [UInt8]) throws(JobFailure) { bytes += chunk }
        func finish(sha256: [UInt8]) throws(JobFailure) {
            guard SHA256.hash(bytes) == sha256 else { throw JobFailure(code: "output.digest", message: "digest mismatch") }
            sink.lock.withLock { sink.outputs[key] = bytes }
        }
        func abort() {}
    }

    func transition(jobID: String, to state: JobState, failure: JobFailure?) {
        lock.withLock {
            states.append(state)
            if let failure { failures.append(failure) }
        }
    }
    func progress(jobID: String, _ event: ProgressEvent) { lock.withLock { events.append(event) } }
    func beginOutput(jobID: String, descriptor: OutputDescriptor) throws(JobFailure) -> any OutputWriter {
        Writer(sink: self, key: "\(descriptor.recipient)/\(descriptor.name)")
    }
    func storeReceipt(jobID: String, receipt: [UInt8], attestationDocument: [UInt8]) throws(JobFailure) {
        lock.withLock { self.receipt = receipt }
    }
}

struct AcceptingGate: AttestationGate {
    var refuse: JobFailure?
    func verify(document: [UInt8], nonce: [UInt8], expectedUserData: [UInt8], policy: [UInt8]) throws(JobFailure) -> AttestedEnclave {
        if let refuse { throw refuse }
        // The scripted enclave puts nonce ‖ user data in its "document".
        guard document == nonce + expectedUserData else { throw JobFailure(code: "attestation.binding", message: "binding") }
        return AttestedEnclave(publicKey: [1], pcr0: [], development: true)
    }
}

final class CountingKeys: KeyReleaseService, @unchecked Sendable {
    let lock = NSLock()
    var released: [String] = []
    func release(dataset: JobPlan.Dataset, attestationDocument: [UInt8]) throws(JobFailure) -> KeyRelease {
        lock.withLock { released.append(dataset.id) }
        return KeyRelease(datasetID: dataset.id, encryptedDataKeyIndex: 0, ciphertextForRecipient: [0x30, 0x80])
    }
}

struct MemorySource: CiphertextSource {
    let data: [String: [UInt8]]
    func stream(
        dataset: JobPlan.Dataset, chunkSize: Int, _ body: (UnsafeRawBufferPointer) throws(JobFailure) -> Void
    ) throws(JobFailure) {
        let bytes = data[dataset.id] ?? []
        var offset = 0
        while offset < bytes.count {
            try Array(bytes[offset..<min(bytes.count, offset + chunkSize)]).withRawBytes(body)
            offset += chunkSize
        }
    }
}

/// What the scripted enclave does after the data is in.
enum Script: Sendable {
    case succeed
    case failWith(ChannelFailure)
    case dieDuringTraining
    case trainForever
    /// Succeeds, asking the launcher's development attestor for its document first.
    case succeedWithLocalAttestation
    /// Sends a checkpoint although the server gave it no checkpoint key, then succeeds.
    case unaskedCheckpoint
}

/// An in-process stand-in for `cleanroom-enclave` speaking the real protocol over a socket pair.
final class ScriptedEnclave: EnclaveInstance, @unchecked Sendable {
    let connection: ChannelConnection
    let peer: ChannelConnection
    let lock = NSLock()
    var terminated = false
    var summary: String { "scripted" }
    let attestationCalls = LaunchedCounter()
    var localAttestation: LocalAttestation? {
        let calls = attestationCalls
        return { _, userData, nonce in
            calls.increment()
            return nonce + userData
        }
    }

    init(script: Script) throws {
        let (a, b) = try ChannelSocket.pair()
        connection = ChannelConnection(fileDescriptor: a)
        peer = ChannelConnection(fileDescriptor: b)
        let peer = self.peer
        Thread.detachNewThread { try? Self.play(script, peer) }
    }

    static func play(_ script: Script, _ c: ChannelConnection) throws {
        let t = Duration.seconds(10)
        guard case .begin(let begin) = try c.receive(timeout: t) else { return }
        let receiptKey = Array("receipt-key".utf8)
        let userData = AttestationBinding.userData(policyDigest: begin.policyDigest, jobID: begin.jobID, receiptPublicKey: receiptKey)
        var document = begin.nonce + userData
        if case .succeedWithLocalAttestation = script {
            try c.send(.attestationRequest(AttestationRequest(publicKey: [0x30], userData: userData, nonce: begin.nonce)), timeout: t)
            guard case .attestationDocument(let issued) = try c.receive(timeout: t) else { return }
            document = issued
        }
        try c.send(.hello(EnclaveHello(attestationDocument: document, receiptPublicKey: receiptKey)), timeout: t)
        guard case .jobSpec(let spec) = try c.receive(timeout: t) else { return }
        try c.send(.accepted(approvalBundleDigest: SHA256.hash(spec.approvalBundle)), timeout: t)
        for _ in spec.datasets { guard case .keyRelease = try c.receive(timeout: t) else { return } }
        for _ in spec.datasets {
            guard case .datasetBegin = try c.receive(timeout: t) else { return }
            while case .datasetChunk = try c.receive(timeout: t) {}
        }
        try c.send(.progress(ProgressEvent(phase: "training", iteration: 1, total: 2, loss: 0.5)), timeout: t)
        switch script {
        case .failWith(let failure):
            try c.send(.error(failure), timeout: t)
            return
        case .dieDuringTraining:
            c.close()
            return
        case .trainForever:
            _ = try? c.receive(timeout: .seconds(30))  // until cancelled
            return
        case .unaskedCheckpoint:
            try c.send(.checkpoint(Array("CRCK".utf8) + [1, 0, 0, 0, 1] + Array(repeating: 0, count: 40)), timeout: t)
        case .succeed, .succeedWithLocalAttestation:
            break
        }
        let output = Array("ciphertext".utf8)
        try c.send(.outputBegin(OutputDescriptor(name: "model", recipient: "alpha")), timeout: t)
        try c.send(.outputChunk(output), timeout: t)
        try c.send(.outputEnd(sha256: SHA256.hash(output)), timeout: t)
        try c.send(.receipt(Array("{}".utf8)), timeout: t)
    }

    func isAlive() -> Bool { lock.withLock { !terminated } }
    func terminate() {
        lock.withLock { terminated = true }
        connection.shutdown()
        peer.shutdown()
    }
}

struct ScriptedLauncher: EnclaveLauncher {
    let script: Script
    let box: LaunchedBox
    func launch(jobID: String) throws(EnclaveLaunchError) -> any EnclaveInstance {
        do {
            let enclave = try ScriptedEnclave(script: script)
            box.set(enclave)
            return enclave
        } catch {
            throw EnclaveLaunchError(.socket, "\(error)")
        }
    }
}

final class LaunchedCounter: @unchecked Sendable {
    let lock = NSLock()
    var count = 0
    func increment() { lock.withLock { count += 1 } }
}

final class LaunchedBox: @unchecked Sendable {
    let lock = NSLock()
    var enclave: ScriptedEnclave?
    func set(_ e: ScriptedEnclave) { lock.withLock { enclave = e } }
    var value: ScriptedEnclave? { lock.withLock { enclave } }
}

@Suite struct JobRunnerTests {
    let plan = JobPlan(
        jobID: "job-1", collaborationID: "c", policy: Array(#"{"version":1}"#.utf8),
        policyDigest: SHA256.hash(Array("p".utf8)), approvalBundle: Array(#"{"approvals":[]}"#.utf8),
        datasets: [
            .init(id: "a", partyID: "alpha", objectKey: "a", ciphertextSHA256: SHA256.hash([1]), byteCount: 3_000_000),
            .init(id: "b", partyID: "beta", objectKey: "b", ciphertextSHA256: SHA256.hash([2]), byteCount: 10),
        ])

    func runner(
        _ script: Script, gate: AcceptingGate = AcceptingGate(), sink: RecordingSink, keys: CountingKeys = CountingKeys(),
        box: LaunchedBox = LaunchedBox(), idle: Duration = .seconds(20)
    ) -> JobRunner {
        var timeouts = JobRunner.Timeouts()
        timeouts.idle = idle
        return JobRunner(
            plan: plan, launcher: ScriptedLauncher(script: script, box: box), gate: gate, keys: keys,
            source: MemorySource(data: ["a": Array(repeating: 7, count: 3_000_000), "b": Array(repeating: 8, count: 10)]),
            sink: sink, timeouts: timeouts)
    }

    @Test func happyPathWalksEveryStateAndStoresOutputsAndReceipt() throws {
        let sink = RecordingSink(), keys = CountingKeys(), box = LaunchedBox()
        let job = runner(.succeed, sink: sink, keys: keys, box: box)
        job.start()
        #expect(job.wait(timeout: .seconds(30)) == .succeeded)
        #expect(sink.states == [.attesting, .running, .delivering, .succeeded])
        #expect(keys.released == ["a", "b"])
        #expect(sink.outputs["alpha/model"] == Array("ciphertext".utf8))
        #expect(sink.receipt == Array("{}".utf8))
        #expect(sink.events.first?.phase == "training")
        #expect(box.value?.isAlive() == false, "the enclave is terminated after success")
    }

    @Test func localModeAttestationIsIssuedByTheLauncher() throws {
        let sink = RecordingSink(), box = LaunchedBox()
        let job = runner(.succeedWithLocalAttestation, sink: sink, box: box)
        job.run()
        #expect(job.state == .succeeded)
        #expect(box.value?.attestationCalls.count == 1)
    }

    @Test func refusedAttestationReleasesNoKeys() throws {
        let sink = RecordingSink(), keys = CountingKeys(), box = LaunchedBox()
        let gate = AcceptingGate(refuse: JobFailure(code: "attestation.pcr_mismatch", message: "PCR0 is not allowed"))
        let job = runner(.succeed, gate: gate, sink: sink, keys: keys, box: box)
        job.run()
        #expect(job.state == .failed)
        #expect(sink.states == [.attesting, .failed])
        #expect(job.failure?.code == "attestation.pcr_mismatch")
        #expect(keys.released.isEmpty)
        #expect(box.value?.isAlive() == false)
    }

    @Test func enclaveErrorFailsTheJobWithItsCode() throws {
        let sink = RecordingSink()
        let job = runner(.failWith(ChannelFailure(code: "enclave.schema_violation", message: "dataset a, column age: not an integer")), sink: sink)
        job.run()
        #expect(job.state == .failed)
        #expect(job.failure == JobFailure(code: "enclave.schema_violation", message: "dataset a, column age: not an integer"))
    }

    @Test func checkpointFromAnEnclaveGivenNoCheckpointKeyFailsTheJob() throws {
        let sink = RecordingSink()
        let job = runner(.unaskedCheckpoint, sink: sink)
        job.run()
        #expect(job.state == .failed)
        #expect(job.failure?.code == "job.protocol")
        #expect(sink.outputs.isEmpty)
    }

    @Test func enclaveDyingMidTrainingFailsCleanly() throws {
        let sink = RecordingSink(), box = LaunchedBox()
        let job = runner(.dieDuringTraining, sink: sink, box: box)
        job.run()
        #expect(job.state == .failed)
        #expect(job.failure?.code == "job.enclave_lost")
        #expect(box.value?.isAlive() == false)
    }

    @Test func silentEnclaveTimesOut() throws {
        let sink = RecordingSink()
        let job = runner(.trainForever, sink: sink, idle: .milliseconds(300))
        job.run()
        #expect(job.failure?.code == "job.timeout")
    }

    @Test func cancelMidRunTerminatesTheEnclave() throws {
        let sink = RecordingSink(), box = LaunchedBox()
        let job = runner(.trainForever, sink: sink, box: box)
        job.start()
        let deadline = ContinuousClock.now + .seconds(10)
        while sink.lock.withLock({ sink.events.isEmpty }) && ContinuousClock.now < deadline { usleep(10_000) }
        job.cancel(reason: "cancelled by alpha")
        #expect(job.wait(timeout: .seconds(10)) == .cancelled)
        #expect(sink.states.last == .cancelled)
        #expect(sink.failures.last?.message == "cancelled by alpha")
        #expect(box.value?.isAlive() == false)
        job.cancel()  // a second cancel is harmless
        #expect(job.state == .cancelled)
    }

    /// A cancel that comes once the receipt is stored does not undo the delivery: the job succeeds,
    /// and, as after every success, its checkpoint is dropped (the runner kept it, counting the late
    /// cancel against a job it then reported succeeded).
    @Test func aCancelAfterTheReceiptIsStoredStillSucceedsAndDropsTheCheckpoint() throws {
        /// Asks for a cancel while the receipt is being stored.
        final class CancellingSink: JobEventSink, @unchecked Sendable {
            let inner = RecordingSink()
            let lock = NSLock()
            var runner: JobRunner?
            func transition(jobID: String, to state: JobState, failure: JobFailure?) {
                inner.transition(jobID: jobID, to: state, failure: failure)
            }
            func progress(jobID: String, _ event: ProgressEvent) { inner.progress(jobID: jobID, event) }
            func beginOutput(jobID: String, descriptor: OutputDescriptor) throws(JobFailure) -> any OutputWriter {
                try inner.beginOutput(jobID: jobID, descriptor: descriptor)
            }
            func storeReceipt(jobID: String, receipt: [UInt8], attestationDocument: [UInt8]) throws(JobFailure) {
                try inner.storeReceipt(jobID: jobID, receipt: receipt, attestationDocument: attestationDocument)
                lock.withLock { runner }?.cancel(reason: "cancelled by beta")
            }
        }
        /// Grants no key (the run goes on without checkpoints) and records how each job ended.
        final class EndedCheckpoints: CheckpointService, @unchecked Sendable {
            let lock = NSLock()
            var ended: [Bool] = []
            func grant(plan: JobPlan, attestationDocument: [UInt8]) throws(JobFailure) -> CheckpointGrant {
                throw JobFailure(code: "checkpoint.key_refused", message: "no key in this test")
            }
            func store(plan: JobPlan, sealed: [UInt8]) throws(JobFailure) {}
            func ended(plan: JobPlan, succeeded: Bool) { lock.withLock { ended.append(succeeded) } }
            func drop(collaborationID: String, policyDigest: [UInt8]) throws(JobFailure) {}
        }
        let sink = CancellingSink(), checkpoints = EndedCheckpoints()
        let job = JobRunner(
            plan: plan, launcher: ScriptedLauncher(script: .succeed, box: LaunchedBox()), gate: AcceptingGate(),
            keys: CountingKeys(), source: MemorySource(data: ["a": [1], "b": [2]]), sink: sink, checkpoints: checkpoints)
        sink.lock.withLock { sink.runner = job }
        job.run()
        #expect(job.state == .succeeded)
        #expect(sink.inner.states == [.attesting, .running, .delivering, .succeeded])
        #expect(checkpoints.lock.withLock { checkpoints.ended } == [true])
    }

    @Test func stateMachineAllowsOnlyForwardMoves() {
        #expect(JobState.pending.canMove(to: .attesting))
        #expect(!JobState.pending.canMove(to: .running))
        #expect(!JobState.succeeded.canMove(to: .failed))
        #expect(!JobState.cancelled.canMove(to: .cancelled))
        #expect(JobState.delivering.canMove(to: .cancelled))
    }
}
