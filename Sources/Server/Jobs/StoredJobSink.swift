import AWS
import Enclave
import Foundation
import Logging

/// Where a running job's events and results go in a real server: state changes to the
/// `JobStore` (persisted and audited) and the progress hub (SSE), outputs to the object store
/// under `jobs/<job>/outputs/<recipient>/<name>` and the `output` table, the receipt and the
/// attestation document under `jobs/<job>/`.
///
/// Each output streams straight into an object store put while it arrives (constant memory, no
/// spool copy); the put, which hashes it on the way, commits only if its SHA-256 is the one the
/// enclave sent at the output's end (a mismatch or an abort fails the put, which leaves no
/// trace), and the output is recorded only after the object is durably stored. Recorded outputs
/// become visible when the job has succeeded (`JobStore.outputs`).
public final class StoredJobSink: JobEventSink, @unchecked Sendable {
    let jobs: JobStore
    let objects: any ObjectStore
    let hub: JobProgressHub

    /// The first wait before writing a state again that could not be stored.
    let storeRetry: Duration
    let logger: Logger?

    public init(
        jobs: JobStore, objects: any ObjectStore, hub: JobProgressHub, storeRetry: Duration = .milliseconds(250),
        logger: Logger? = nil
    ) {
        self.jobs = jobs
        self.objects = objects
        self.hub = hub
        self.storeRetry = storeRetry
        self.logger = logger
    }

    /// Object keys of a job's artifacts.
    public static func outputKey(jobID: String, recipient: String, name: String) -> String {
        outputsPrefix(jobID: jobID) + "\(recipient)/\(name.replacingOccurrences(of: ":", with: "-"))"
    }
    /// The prefix of every output object of a job.
    public static func outputsPrefix(jobID: String) -> String { "jobs/\(jobID)/outputs/" }
    public static func receiptKey(jobID: String) -> String { "jobs/\(jobID)/receipt.json" }
    public static func attestationKey(jobID: String) -> String { "jobs/\(jobID)/attestation.cbor" }

    /// The runner's state changes: each is persisted, then published. A change the store refuses
    /// (the job already ended) is not published. One the store cannot write (a full disk) is
    /// written again, after `storeRetry` doubling up to 16 times that, until it is stored: the
    /// runner goes on only once the database says where the job is, so a job never stays open in
    /// it after its runner ended (a crash review found one `running`, blocking every later start of
    /// its policy), and a state that failed to store cannot make a later one invalid.
    public func transition(jobID: String, to state: JobState, failure: JobFailure?) {
        var wait = storeRetry
        while true {
            do {
                try record(jobID: jobID, to: state, failure: failure)
                return
            } catch {
                logger?.error(
                    "the job's state could not be stored; trying again",
                    metadata: ["job": "\(jobID)", "state": "\(state.rawValue)", "error": "\(error)"])
                Thread.sleep(forTimeInterval: Double(wait.components.seconds) + Double(wait.components.attoseconds) * 1e-18)
                wait = min(wait * 2, storeRetry * 16)
            }
        }
    }

    /// Persists a state change once and publishes it if stored; false if the store refused it (the
    /// job already ended). For request and start-up paths, which report a failure instead of waiting.
    @discardableResult
    public func record(jobID: String, to state: JobState, failure: JobFailure?) throws -> Bool {
        guard try jobs.transition(jobID: jobID, to: state, failure: failure) else { return false }
        hub.publish(jobID: jobID, .state(state, failure))
        return true
    }

    public func progress(jobID: String, _ event: ProgressEvent) {
        hub.publish(jobID: jobID, .progress(event))
    }

    public func beginOutput(jobID: String, descriptor: OutputDescriptor) throws(JobFailure) -> any OutputWriter {
        StreamedOutput(sink: self, jobID: jobID, descriptor: descriptor)
    }

    public func storeReceipt(jobID: String, receipt: [UInt8], attestationDocument: [UInt8]) throws(JobFailure) {
        let objects = self.objects
        let result = BlockingTask.run {
            _ = try await objects.put(key: Self.attestationKey(jobID: jobID), body: ByteStream(bytes: attestationDocument))
            _ = try await objects.put(key: Self.receiptKey(jobID: jobID), body: ByteStream(bytes: receipt))
        }
        if case .failure(let error) = result {
            throw storeFailure(error, jobID: jobID, artifact: "the receipt", key: Self.receiptKey(jobID: jobID))
        }
    }

    /// The job's failure when the object store could not keep one of its artifacts, logged at error
    /// level with the store's own error (file and errno; never the data). A full store (disk or
    /// quota) is `output.insufficient_storage`, which tells the parties to run the job again once
    /// space is freed; any other failure `output.store`. The failure names no file: every member
    /// party reads it.
    func storeFailure(_ error: (any Error)?, jobID: String, artifact: String, key: String) -> JobFailure {
        let failure = StoreFailure(error, ["job": "\(jobID)", "object": "\(key)"])
        if failure.isFull {
            logger?.error(
                "the object store is full: a job output was not stored and the job fails; free space in it", metadata: failure.metadata)
            return JobFailure(
                code: "output.insufficient_storage",
                message: "could not store \(artifact): the server's storage is full; "
                    + "start the job again once the server's operator has freed space")
        }
        logger?.error("a job output could not be stored; the job fails", metadata: failure.metadata)
        return JobFailure(code: "output.store", message: "could not store \(artifact)")
    }

    /// One output arriving: each chunk is handed to a put that runs while the output arrives;
    /// `finish` tells the put the enclave's digest, which it must match to commit, then records
    /// the output.
    final class StreamedOutput: OutputWriter {
        let sink: StoredJobSink
        let jobID: String
        let descriptor: OutputDescriptor
        let key: String
        /// At most four 1 MiB chunks wait for the put.
        let channel = ByteChannel(limit: 4 << 20)
        let done = DispatchSemaphore(value: 0)
        let outcome = Outcome()
        var size: Int64 = 0
        var ended = false

        final class Outcome: @unchecked Sendable {
            var result: Result<ObjectInfo, any Error>?
            /// The enclave's digest of the output. Set before `channel.finish()`; the put reads it
            /// only after `channel.next()` has returned the end, which it learns under the channel's
            /// lock, so the write is visible to it. Nil (never set) matches no digest.
            var expected: [UInt8]?
        }

        /// The put's refusal when the output's digest is not the enclave's.
        struct DigestMismatch: Error {}

        init(sink: StoredJobSink, jobID: String, descriptor: OutputDescriptor) {
            self.sink = sink
            self.jobID = jobID
            self.descriptor = descriptor
            key = StoredJobSink.outputKey(jobID: jobID, recipient: descriptor.recipient, name: descriptor.name)
            let objects = sink.objects, key = self.key, channel = self.channel, done = self.done, outcome = self.outcome
            let options = ObjectPutOptions(verifyContent: { sha256 in
                guard sha256 == outcome.expected else { throw DigestMismatch() }
            })
            Task.detached {
                let result: Result<ObjectInfo, any Error>
                do {
                    result = .success(
                        try await objects.put(key: key, body: ByteStream(next: { try await channel.next() }), options: options))
                } catch {
                    result = .failure(error)
                }
                outcome.result = result
                channel.cancel()  // the put is over: a writer still pushing is released
                done.signal()
            }
        }

        deinit { abort() }

        func write(_ chunk: [UInt8]) throws(JobFailure) {
            guard !ended else { throw JobFailure(code: "job.protocol", message: "output \(descriptor.name) data after its end") }
            size += Int64(chunk.count)
            guard channel.sendBlocking(chunk) else {
                // The put stopped early: its error is the reason. It set `outcome.result` before it
                // cancelled the channel, which `sendBlocking` learned under the channel's lock.
                throw sink.storeFailure(
                    outcome.result?.failure, jobID: jobID, artifact: "output \(descriptor.name)", key: key)
            }
        }

        func finish(sha256: [UInt8]) throws(JobFailure) {
            guard !ended else { throw JobFailure(code: "job.protocol", message: "output \(descriptor.name) ended twice") }
            ended = true
            outcome.expected = sha256
            channel.finish()
            done.wait()
            switch outcome.result {
            case .success: break
            case .failure(let error) where error is DigestMismatch:
                throw JobFailure(code: "output.digest", message: "output \(descriptor.name) for \(descriptor.recipient) arrived damaged")
            case .failure(let error):
                throw sink.storeFailure(error, jobID: jobID, artifact: "output \(descriptor.name)", key: key)
            case nil:
                throw sink.storeFailure(nil, jobID: jobID, artifact: "output \(descriptor.name)", key: key)
            }
            do {
                _ = try sink.jobs.recordOutput(
                    jobID: jobID, recipient: descriptor.recipient, name: descriptor.name, objectKey: key, sha256: sha256,
                    size: size)
            } catch {
                throw JobFailure(code: "output.record", message: "could not record output \(descriptor.name)")
            }
        }

        /// Fails the put (nothing is stored) and waits for it to have cleaned up.
        func abort() {
            guard !ended else { return }
            ended = true
            channel.finish(JobFailure(code: "output.aborted", message: "output \(descriptor.name) was not completed"))
            done.wait()
        }
    }
}

extension Result {
    /// The error of a failure; nil for a success.
    fileprivate var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
