import AWS
import Attestation
import CleanRoom
import Crypto
import Enclave
import Foundation
import Logging

/// The jobs of a running server: starts them through the unanimity gate (`JobStore.startJob`),
/// runs each on its own thread with the configured enclave launcher, attestation verifier and KMS
/// key release, cancels them, and fails cleanly the jobs a restart interrupted.
///
/// Key releases are audited (`job.key_release`, with the attested PCR0) before the released key
/// is forwarded to the enclave; a release that cannot be audited is not forwarded.
public final class JobManager: @unchecked Sendable {
    /// What every job runs with.
    public struct Services: Sendable {
        /// Starts enclaves (a local child process, or a Nitro Enclave).
        public var launcher: any EnclaveLauncher
        /// Verifies enclave attestation documents (the development root locally, AWS's in Nitro mode).
        public var verifier: AttestationVerifier
        /// KMS `Decrypt` with `Recipient` (the local KMS, or AWS KMS).
        public var decrypt: KMSKeyRelease.Decrypt
        public var timeouts: JobRunner.Timeouts
        /// Stores sealed training checkpoints and gets their key from KMS for the attested enclave
        /// only (nil: jobs run without checkpoints).
        public var checkpoints: (any CheckpointService)?
        /// The launcher's standby (when `launcher` is one): started and stopped with the server.
        public var standby: StandbyEnclaveLauncher?

        public init(
            launcher: any EnclaveLauncher, verifier: AttestationVerifier, decrypt: @escaping KMSKeyRelease.Decrypt,
            timeouts: JobRunner.Timeouts = JobRunner.Timeouts(), checkpoints: (any CheckpointService)? = nil
        ) {
            self.launcher = launcher
            self.verifier = verifier
            self.decrypt = decrypt
            self.timeouts = timeouts
            self.checkpoints = checkpoints
        }
    }

    public let jobs: JobStore
    public let objects: any ObjectStore
    public let hub: JobProgressHub
    let services: Services
    let sink: StoredJobSink
    let logger: Logger
    /// How long a finished job's live feed stays replayable (later watchers get its final state).
    let feedRetention: Double

    private let lock = NSCondition()
    private var runners: [String: JobRunner] = [:]

    public init(
        store: CleanRoomStore, objects: any ObjectStore, services: Services, logger: Logger = Logger(label: "cleanroomd.jobs"),
        feedRetention: Double = 600
    ) {
        jobs = JobStore(store: store)
        self.objects = objects
        hub = JobProgressHub()
        self.services = services
        sink = StoredJobSink(jobs: jobs, objects: objects, hub: hub, logger: logger)
        self.logger = logger
        self.feedRetention = feedRetention
    }

    /// Object key of the approval bundle a job's enclave received, exactly as sent.
    public static func approvalBundleKey(jobID: String) -> String { "jobs/\(jobID)/approval-bundle.json" }

    /// Records a job (refused with a precise reason unless every start condition holds) and runs it.
    public func start(collaborationId: String, caller: Caller, expectedDigest: String? = nil) async throws -> Job {
        let jobs = self.jobs
        let plan = try await GovernanceRoutes.blocking {
            try jobs.startJob(collaborationId: collaborationId, caller: caller, expectedDigest: expectedDigest)
        }
        let recorder = AttestationRecorder(inner: VerifyingAttestationGate(verifier: services.verifier))
        let keys = AuditedKeyRelease(
            inner: KMSKeyRelease(objects: objects, decrypt: services.decrypt), jobs: jobs, jobID: plan.jobID,
            attested: recorder)
        let runner = JobRunner(
            plan: plan, launcher: services.launcher, gate: recorder, keys: keys,
            source: ObjectStoreCiphertextSource(objects: objects), sink: sink, timeouts: services.timeouts,
            checkpoints: services.checkpoints.map { inner in
                AuditedCheckpoints(inner: inner, jobs: jobs, jobID: plan.jobID, attestedPCR0: { recorder.attested?.pcr0 })
            })
        // Registered before anything else is awaited, so a cancel from now on reaches the runner.
        lock.withLock { runners[plan.jobID] = runner }
        hub.publish(jobID: plan.jobID, .state(.pending, nil))  // watchers can subscribe from now on
        do {
            _ = try await objects.put(
                key: Self.approvalBundleKey(jobID: plan.jobID), body: ByteStream(bytes: plan.approvalBundle))
        } catch {
            let failure = JobFailure(code: "job.store", message: "the approval bundle could not be stored")
            let sink = self.sink
            // Once: the request fails either way; a job the store kept open is failed at the next start.
            _ = try? await GovernanceRoutes.blocking { try sink.record(jobID: plan.jobID, to: .failed, failure: failure) }
            lock.withLock {
                runners[plan.jobID] = nil
                lock.broadcast()
            }
            throw DomainError(.internalError, "object_store_failed", "the job could not be recorded; start it again")
        }
        runner.start { [self] in
            if runner.state != .succeeded {
                let id = plan.jobID
                Task { await self.discardOutputs(jobID: id) }
            }
            lock.withLock {
                runners[plan.jobID] = nil
                lock.broadcast()
            }
            logger.info(
                "job ended",
                metadata: ["job": "\(plan.jobID)", "state": "\(runner.state.rawValue)", "error": "\(runner.failure?.description ?? "")"])
            let hub = self.hub, id = plan.jobID
            DispatchQueue.global().asyncAfter(deadline: .now() + feedRetention) { hub.forget(jobID: id) }
        }
        logger.info("job started", metadata: ["job": "\(plan.jobID)", "collaboration": "\(collaborationId)"])
        return try await GovernanceRoutes.blocking { try jobs.job(id: plan.jobID, caller: caller) }
    }

    /// Cancels a job that has not ended: the enclave is told, terminated, and its keys go with it.
    /// Returns the job once it has reached a terminal state (or after `wait` seconds).
    public func cancel(jobID: String, caller: Caller, wait: Double = 10) async throws -> Job {
        let jobs = self.jobs
        let job = try await GovernanceRoutes.blocking { try jobs.job(id: jobID, caller: caller) }
        guard let state = JobState(rawValue: job.status), !state.isTerminal else {
            throw DomainError(.conflict, "job_finished", "job \(jobID) already ended (\(job.status)); there is nothing to cancel")
        }
        try await GovernanceRoutes.blocking { try jobs.auditCancelRequest(job: job, caller: caller) }
        let reason = "cancelled by \(caller.partyId ?? "a member party")"
        let sink = self.sink
        let runner = lock.withLock { runners[jobID] }
        try await GovernanceRoutes.blocking {
            if let runner {
                // Stopping the enclave can take its termination grace: off the concurrency pool. The
                // runner persists its terminal state before `wait` sees it.
                runner.cancel(reason: reason)
                _ = runner.wait(timeout: .milliseconds(Int64(wait * 1000)))
            } else {
                // Not running in this process (it ended meanwhile, or it cannot run any more): the store
                // moves it to cancelled only if it has not ended.
                try sink.record(jobID: jobID, to: .cancelled, failure: JobFailure(code: "job.cancelled", message: reason))
            }
        }
        return try await GovernanceRoutes.blocking { try jobs.job(id: jobID, caller: caller) }
    }

    /// Settles the jobs a previous run of the server left unfinished (called once at start-up): a job
    /// whose receipt was stored had delivered everything and succeeded (the receipt is stored after
    /// every output), and its sealed checkpoint is dropped as its runner would have; any other is
    /// failed (its checkpoint kept for a job started again), and the outputs it had stored are
    /// discarded. None is left hanging, and none shows part of its outputs.
    @discardableResult
    public func recoverInterruptedJobs() async throws -> (failed: [String], succeeded: [String]) {
        var failed: [String] = [], succeeded: [String] = []
        let jobs = self.jobs, sink = self.sink
        for job in try await GovernanceRoutes.blocking({ try jobs.openJobs() }) {
            if job.status == JobState.delivering.rawValue, try await receiptStored(jobID: job.id) {
                try await GovernanceRoutes.blocking { try sink.record(jobID: job.id, to: .succeeded, failure: nil) }
                logger.warning("a job the restart interrupted had delivered everything: succeeded", metadata: ["job": "\(job.id)"])
                succeeded.append(job.id)
                await dropCheckpoint(of: job)
            } else {
                try await GovernanceRoutes.blocking { try jobs.failInterrupted(jobID: job.id) }
                await discardOutputs(jobID: job.id)
                logger.warning("failed a job the restart interrupted", metadata: ["job": "\(job.id)"])
                failed.append(job.id)
            }
        }
        for id in try await GovernanceRoutes.blocking({ try jobs.unsuccessfulJobsWithOutputs() }) {
            await discardOutputs(jobID: id)
        }
        return (failed, succeeded)
    }

    /// Drops the sealed checkpoint of a job found to have succeeded. A failure to do so costs space,
    /// not the start: it is logged.
    private func dropCheckpoint(of job: Job) async {
        guard let checkpoints = services.checkpoints, let digest = Hex.decode(job.policyDigest) else { return }
        let collaborationID = job.collaborationId
        do {
            try await GovernanceRoutes.blocking {
                try checkpoints.drop(collaborationID: collaborationID, policyDigest: digest)
            }
        } catch {
            logger.warning(
                "could not drop the checkpoint of a job that succeeded",
                metadata: ["job": "\(job.id)", "error": "\(error)"])
        }
    }

    /// Whether a job's receipt is stored. Only "no such object" means no: any other answer (a store
    /// that cannot be read) stops the start-up rather than fail a job that may have succeeded.
    private func receiptStored(jobID: String) async throws -> Bool {
        do {
            _ = try await objects.head(key: StoredJobSink.receiptKey(jobID: jobID))
            return true
        } catch let error as ObjectStoreError where error.code == .notFound {
            return false
        }
    }

    /// Deletes what a job that failed or was cancelled had stored of its outputs: the objects
    /// (including any stored but not yet recorded) first, then the records (never visible), so a
    /// stop in between leaves records the next start finds again.
    func discardOutputs(jobID: String) async {
        let jobs = self.jobs
        do {
            guard let recorded = try await GovernanceRoutes.blocking({ try jobs.outputObjects(ofUnsuccessfulJob: jobID) })
            else { return }
            let stored = try await objects.list(prefix: StoredJobSink.outputsPrefix(jobID: jobID)).map(\.key)
            for key in Set(recorded + stored) {
                do {
                    try await objects.delete(key: key)
                } catch let error as ObjectStoreError where error.code == .notFound {}
            }
            try await GovernanceRoutes.blocking { try jobs.forgetOutputs(jobID: jobID) }
        } catch {
            logger.warning("could not discard the outputs of a job that did not succeed", metadata: ["job": "\(jobID)", "error": "\(error)"])
        }
    }

    /// The jobs running in this process.
    public var runningJobs: [String] { lock.withLock { Array(runners.keys) } }

    /// Cancels every running job (server shutdown) and waits up to `timeout` seconds for them to end,
    /// so no enclave outlives the server.
    public func cancelAll(reason: String, timeout: Double) {
        let active = lock.withLock { Array(runners.values) }
        for runner in active { runner.cancel(reason: reason) }
        let deadline = Date(timeIntervalSinceNow: timeout)
        lock.lock()
        defer { lock.unlock() }
        while !runners.isEmpty, lock.wait(until: deadline) {}
    }
}

/// The attestation gate of one job, remembering what it verified (for the key-release audit).
final class AttestationRecorder: AttestationGate, @unchecked Sendable {
    let inner: any AttestationGate
    private let lock = NSLock()
    private var verified: AttestedEnclave?

    init(inner: any AttestationGate) { self.inner = inner }

    var attested: AttestedEnclave? { lock.withLock { verified } }

    func verify(document: [UInt8], nonce: [UInt8], expectedUserData: [UInt8], policy: [UInt8]) throws(JobFailure)
        -> AttestedEnclave
    {
        let result = try inner.verify(document: document, nonce: nonce, expectedUserData: expectedUserData, policy: policy)
        lock.withLock { verified = result }
        return result
    }
}

/// Audits each key release (dataset, attested PCR0 — never the key) before it is forwarded.
struct AuditedKeyRelease: KeyReleaseService {
    let inner: any KeyReleaseService
    let jobs: JobStore
    let jobID: String
    let attested: AttestationRecorder

    func release(dataset: JobPlan.Dataset, attestationDocument: [UInt8]) throws(JobFailure) -> KeyRelease {
        guard let enclave = attested.attested else {
            throw JobFailure(code: "job.protocol", message: "a key release was asked before the enclave was attested")
        }
        let release = try inner.release(dataset: dataset, attestationDocument: attestationDocument)
        do {
            try jobs.auditKeyRelease(jobID: jobID, datasetID: dataset.id, pcr0: enclave.pcr0)
        } catch {
            throw JobFailure(code: "audit.failed", message: "the key release of \(dataset.id) could not be audited; nothing was forwarded")
        }
        return release
    }
}
