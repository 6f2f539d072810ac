import Crypto
import Enclave
import Foundation

/// Drives one job through `pending → attesting → running → delivering → succeeded | failed |
/// cancelled` on its own thread: launches the enclave, verifies its attestation, hands it the
/// policy and approvals, releases each dataset's key (encrypted to the enclave), streams the
/// ciphertext, relays progress, stores the encrypted outputs and the receipt.
///
/// Every wait has a deadline (`Timeouts`), and the enclave is terminated on every exit path —
/// success, failure, cancel, or a crash of the enclave. The runner never sees a plaintext data
/// key: it forwards `CiphertextForRecipient` as received from KMS.
public final class JobRunner: @unchecked Sendable {
    /// How long each step may take.
    public struct Timeouts: Sendable {
        /// From `begin` to the enclave's hello (key generation and attestation).
        public var hello: Duration = .seconds(60)
        /// From the job specification to the enclave's acceptance (approval verification).
        public var accepted: Duration = .seconds(60)
        /// Any single send to the enclave.
        public var send: Duration = .seconds(120)
        /// The longest silence from the enclave once the data is in (training reports progress).
        public var idle: Duration = .seconds(900)
        /// The whole job.
        public var total: Duration = .seconds(24 * 3600)

        public init() {}
    }

    public let plan: JobPlan
    private let launcher: any EnclaveLauncher
    private let gate: any AttestationGate
    private let keys: any KeyReleaseService
    private let source: any CiphertextSource
    private let sink: any JobEventSink
    private let checkpoints: (any CheckpointService)?
    private let timeouts: Timeouts
    private let limits: ChannelLimits

    private let lock = NSCondition()
    private var currentState: JobState = .pending
    private var cancelRequested: String?
    private var enclave: (any EnclaveInstance)?
    private var finalFailure: JobFailure?

    public init(
        plan: JobPlan, launcher: any EnclaveLauncher, gate: any AttestationGate, keys: any KeyReleaseService,
        source: any CiphertextSource, sink: any JobEventSink, timeouts: Timeouts = Timeouts(),
        limits: ChannelLimits = .default, checkpoints: (any CheckpointService)? = nil
    ) {
        self.checkpoints = checkpoints
        self.plan = plan
        self.launcher = launcher
        self.gate = gate
        self.keys = keys
        self.source = source
        self.sink = sink
        self.timeouts = timeouts
        self.limits = limits
    }

    /// The current state.
    public var state: JobState { lock.withLock { currentState } }

    /// Why the job failed, once it has.
    public var failure: JobFailure? { lock.withLock { finalFailure } }

    /// Runs the job on a new thread (named after the job), then `ended` on that thread.
    public func start(then ended: @escaping @Sendable () -> Void = {}) {
        let thread = Thread { [self] in
            Thread.current.name = "job-\(plan.jobID)"  // named from inside: on Linux a name set before start is lost
            run()
            ended()
        }
        thread.start()
    }

    /// Cancels the job: the enclave is told, then terminated, and its keys go with it.
    public func cancel(reason: String = "cancelled by a member party") {
        let instance: (any EnclaveInstance)? = lock.withLock {
            guard !currentState.isTerminal, cancelRequested == nil else { return nil }
            cancelRequested = reason
            return enclave
        }
        if let instance {
            try? instance.connection.send(.cancel(reason: reason), timeout: .milliseconds(200))
            instance.terminate()
        }
    }

    /// Waits until the job has ended or `timeout` passed; returns the state then.
    @discardableResult
    public func wait(timeout: Duration) -> JobState {
        let deadline = Date(timeIntervalSinceNow: Double(timeout.components.seconds) + 1e-18 * Double(timeout.components.attoseconds))
        lock.lock()
        defer { lock.unlock() }
        while !currentState.isTerminal {
            if !lock.wait(until: deadline) { break }
        }
        return currentState
    }

    /// Runs the job to its end on the calling thread.
    public func run() {
        var outcome: JobFailure?
        do {
            try execute()
        } catch {
            outcome = error
        }
        // The enclave is gone before the job reports a terminal state.
        let instance = lock.withLock { enclave }
        instance?.terminate()
        let cancelled = lock.withLock { cancelRequested }
        // A job that ran to its end succeeds even if a cancel came after its receipt (below), so its
        // checkpoint goes whenever the job succeeds.
        checkpoints?.ended(plan: plan, succeeded: outcome == nil)
        if let cancelled, outcome != nil || state != .delivering {
            move(to: .cancelled, failure: JobFailure(code: "job.cancelled", message: cancelled))
        } else if let outcome {
            move(to: .failed, failure: outcome)
        } else {
            move(to: .succeeded)
        }
    }

    private func move(to next: JobState, failure: JobFailure? = nil) {
        // Only the runner's own thread moves the state, so checking first and switching after the
        // sink has persisted it cannot race; `state` and `wait` never run ahead of the store.
        guard lock.withLock({ currentState.canMove(to: next) }) else { return }
        sink.transition(jobID: plan.jobID, to: next, failure: failure)
        lock.withLock {
            currentState = next
            if let failure { finalFailure = failure }
            lock.broadcast()
        }
    }

    private func checkCancelled() throws(JobFailure) {
        if let reason = lock.withLock({ cancelRequested }) { throw JobFailure(code: "job.cancelled", message: reason) }
    }

    private func execute() throws(JobFailure) {
        let deadline = ContinuousClock.now + timeouts.total
        try checkCancelled()
        move(to: .attesting)

        // Launch.
        let instance: any EnclaveInstance
        do {
            instance = try launcher.launch(jobID: plan.jobID)
        } catch {
            throw JobFailure(code: error.code.rawValue, message: error.message)
        }
        let cancelledMeanwhile = lock.withLock { () -> Bool in
            enclave = instance
            return cancelRequested != nil
        }
        if cancelledMeanwhile { instance.terminate() }
        try checkCancelled()
        let channel = Channel(connection: instance.connection, runner: self, deadline: deadline)

        // Attest.
        let nonce = (0..<32).map { _ in UInt8.random(in: 0...255) }  // SystemRandomNumberGenerator: getrandom(2)
        try channel.send(.begin(JobBegin(jobID: plan.jobID, policyDigest: plan.policyDigest, nonce: nonce)))
        var answer = try channel.receive(timeout: timeouts.hello, expecting: "hello")
        if case .attestationRequest(let request) = answer {
            // Local mode: the launcher's development attestor measures the binary it started.
            guard let attest = instance.localAttestation else {
                throw JobFailure(code: "job.protocol", message: "the enclave asked for a development attestation in Nitro mode")
            }
            guard request.nonce == nonce else {
                throw JobFailure(code: "job.protocol", message: "the enclave asked to attest another nonce")
            }
            let document: [UInt8]
            do {
                document = try attest(request.publicKey, request.userData, request.nonce)
            } catch {
                throw JobFailure(code: "attestation.development", message: "the development attestor failed: \(error)")
            }
            try channel.send(.attestationDocument(document))
            answer = try channel.receive(timeout: timeouts.hello, expecting: "hello")
        }
        guard case .hello(let hello) = answer else {
            throw JobFailure(code: "job.protocol", message: "the enclave did not answer with its attestation")
        }
        let expectedUserData = AttestationBinding.userData(
            policyDigest: plan.policyDigest, jobID: plan.jobID, receiptPublicKey: hello.receiptPublicKey)
        _ = try gate.verify(
            document: hello.attestationDocument, nonce: nonce, expectedUserData: expectedUserData, policy: plan.policy)

        // Policy, approvals, manifests.
        try channel.send(
            .jobSpec(
                JobSpecification(
                    policy: plan.policy, approvalBundle: plan.approvalBundle, datasets: plan.datasets.map(\.manifest))))
        guard case .accepted(let bundleDigest) = try channel.receive(timeout: timeouts.accepted, expecting: "accepted")
        else {
            throw JobFailure(code: "job.protocol", message: "the enclave did not accept the job specification")
        }
        guard bundleDigest == SHA256.hash(plan.approvalBundle) else {
            throw JobFailure(code: "job.protocol", message: "the enclave accepted a different approval bundle")
        }
        try checkCancelled()
        move(to: .running)

        // Key release, then ciphertext.
        for dataset in plan.datasets {
            let release = try keys.release(dataset: dataset, attestationDocument: hello.attestationDocument)
            try channel.send(.keyRelease(release))
        }
        try grantCheckpoints(channel, attestationDocument: hello.attestationDocument)
        for dataset in plan.datasets {
            try channel.send(.datasetBegin(DatasetBegin(datasetID: dataset.id, byteCount: dataset.byteCount)))
            try source.stream(dataset: dataset, chunkSize: limits.chunkSize) { (chunk) throws(JobFailure) in
                try channel.sendData(.datasetChunk, chunk)
                try channel.drainProgress()
            }
            try channel.send(.datasetEnd(datasetID: dataset.id))
        }

        // Progress, outputs, receipt.
        var writer: (any OutputWriter)?
        defer { writer?.abort() }
        while true {
            let message = try channel.receive(timeout: timeouts.idle, expecting: "progress or outputs")
            switch message {
            case .outputBegin(let descriptor):
                guard writer == nil else { throw JobFailure(code: "job.protocol", message: "nested outputs") }
                if state == .running { move(to: .delivering) }
                writer = try sink.beginOutput(jobID: plan.jobID, descriptor: descriptor)
            case .outputChunk(let chunk):
                guard let current = writer else { throw JobFailure(code: "job.protocol", message: "output data outside an output") }
                try current.write(chunk)
            case .outputEnd(let digest):
                guard let current = writer else { throw JobFailure(code: "job.protocol", message: "output end outside an output") }
                try current.finish(sha256: digest)
                writer = nil
            case .checkpoint(let sealed):
                guard let checkpoints else {
                    throw JobFailure(code: "job.protocol", message: "a checkpoint from an enclave that was given no checkpoint key")
                }
                do {
                    try checkpoints.store(plan: plan, sealed: sealed)
                } catch {
                    forward(ProgressEvent(phase: "checkpoint", message: "the checkpoint was not stored: \(error.message)"))
                }
            case .receipt(let receipt):
                guard writer == nil else { throw JobFailure(code: "job.protocol", message: "receipt inside an output") }
                if state == .running { move(to: .delivering) }
                try sink.storeReceipt(jobID: plan.jobID, receipt: receipt, attestationDocument: hello.attestationDocument)
                return
            default:
                throw JobFailure(code: "job.protocol", message: "unexpected \(message.type) message from the enclave")
            }
        }
    }

    /// With a checkpoint service: the checkpoint key (as KMS released it to this enclave) and the
    /// stored checkpoint to resume from. Without a key the job runs without checkpoints.
    private func grantCheckpoints(_ channel: Channel, attestationDocument: [UInt8]) throws(JobFailure) {
        guard let checkpoints else { return }
        let grant: CheckpointGrant
        do {
            grant = try checkpoints.grant(plan: plan, attestationDocument: attestationDocument)
        } catch {
            forward(ProgressEvent(phase: "checkpoint", message: "this run has no checkpoints: \(error.message)"))
            return
        }
        if let note = grant.note { forward(ProgressEvent(phase: "checkpoint", message: note)) }
        try channel.send(.checkpointKey(ciphertextForRecipient: grant.ciphertextForRecipient))
        if let sealed = grant.sealedCheckpoint { try channel.send(.checkpointResume(sealed)) }
    }

    fileprivate func forward(_ event: ProgressEvent) {
        sink.progress(jobID: plan.jobID, event)
    }

    /// The runner's view of the connection: deadlines, progress forwarding, enclave errors as failures.
    private struct Channel {
        let connection: ChannelConnection
        let runner: JobRunner
        let deadline: ContinuousClock.Instant

        func send(_ message: ChannelMessage) throws(JobFailure) {
            do {
                try connection.send(message, timeout: runner.timeouts.send)
            } catch {
                // The enclave may have said why it stopped listening.
                if let failure = pendingFailure() { throw failure }
                throw Self.failure(error, waiting: "the enclave to read")
            }
        }

        /// Sends a data frame straight from `bytes` (no copy into a frame).
        func sendData(_ type: ChannelMessageType, _ bytes: UnsafeRawBufferPointer) throws(JobFailure) {
            do {
                try connection.sendData(type, bytes, timeout: runner.timeouts.send)
            } catch {
                if let failure = pendingFailure() { throw failure }
                throw Self.failure(error, waiting: "the enclave to read")
            }
        }

        /// The next non-progress message; progress is forwarded, an enclave error is thrown.
        func receive(timeout: Duration, expecting: String) throws(JobFailure) -> ChannelMessage {
            while true {
                let limit = min(timeout, deadline - ContinuousClock.now)
                let message: ChannelMessage
                do {
                    message = try connection.receive(timeout: limit)
                } catch {
                    throw Self.failure(error, waiting: expecting)
                }
                switch message {
                case .progress(let event): runner.forward(event)
                case .error(let failure): throw JobFailure(code: failure.code, message: failure.message)
                default: return message
                }
            }
        }

        /// Forwards any progress already received (so the enclave never blocks on a full socket).
        func drainProgress() throws(JobFailure) {
            while true {
                let message: ChannelMessage?
                do {
                    message = try connection.receiveIfAvailable()
                } catch {
                    throw Self.failure(error, waiting: "progress")
                }
                guard let message else { return }
                switch message {
                case .progress(let event): runner.forward(event)
                case .error(let failure): throw JobFailure(code: failure.code, message: failure.message)
                default: throw JobFailure(code: "job.protocol", message: "unexpected \(message.type) while streaming data")
                }
            }
        }

        private func pendingFailure() -> JobFailure? {
            while let message = try? connection.receiveIfAvailable() {
                if case .error(let failure) = message { return JobFailure(code: failure.code, message: failure.message) }
            }
            return nil
        }

        static func failure(_ error: ChannelError, waiting: String) -> JobFailure {
            switch error.code {
            case .timeout: JobFailure(code: "job.timeout", message: "timed out waiting for \(waiting)")
            case .closed, .truncated:
                JobFailure(code: "job.enclave_lost", message: "the enclave closed the channel while the server waited for \(waiting)")
            default: JobFailure(code: "job.channel", message: error.description)
            }
        }
    }
}
