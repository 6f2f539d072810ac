import AWS
import Enclave
import Foundation

/// Where a running job's events and results go in a real server: state changes to the
/// `JobStore` (persisted and audited) and the progress hub (SSE), outputs to the object store
/// under `jobs/<job>/outputs/<recipient>/<name>` and the `output` table, the receipt and the
/// attestation document under `jobs/<job>/`.
///
/// Each output streams straight into an object store put while it arrives (constant memory, no
/// spool copy); the put, which hashes it on the way, commits only if its SHA-256 is the one the
/// enclave sent at the output's end (a mismatch or an abort fails the put, which leaves no
/// trace), and the output is recorded — visible — only after the object is durably stored.
public final class StoredJobSink: JobEventSink, @unchecked Sendable {
    let jobs: JobStore
    let objects: any ObjectStore
    let hub: JobProgressHub

    /// The first wait before writing a terminal state again that could not be stored.
    let terminalRetry: Duration

    public init(jobs: JobStore, objects: any ObjectStore, hub: JobProgressHub, terminalRetry: Duration = .milliseconds(250)) {
        self.jobs = jobs
        self.objects = objects
        self.hub = hub
        self.terminalRetry = terminalRetry
    }

    /// Object keys of a job's artifacts.
    public static func outputKey(jobID: String, recipient: String, name: String) -> String {
        outputsPrefix(jobID: jobID) + "\(recipient)/\(name.replacingOccurrences(of: ":", with: "-"))"
    }
    /// The prefix of every output object of a job.
    public static func outputsPrefix(jobID: String) -> String { "jobs/\(jobID)/outputs/" }
    public static func receiptKey(jobID: String) -> String { "jobs/\(jobID)/receipt.json" }
    public static func attestationKey(jobID: String) -> String { "jobs/\(jobID)/attestation.cbor" }

    /// Persists and publishes a state change. A change the store refuses (the job already ended)
    /// is not published. An open state the store could not write is still published, so watchers
    /// see it; a terminal one is retried until it is stored (after `terminalRetry`, doubling up to 16×),
    /// since a job left open in the database blocks the next start of its policy and would be
    /// reported running after a restart (a crash review filled the disk and found that).
    public func transition(jobID: String, to state: JobState, failure: JobFailure?) {
        let retry = terminalRetry
        var wait = retry
        while true {
            do {
                if try jobs.transition(jobID: jobID, to: state, failure: failure) == false { return }
                break
            } catch {
                guard state.isTerminal else { break }
                Thread.sleep(forTimeInterval: Double(wait.components.seconds) + Double(wait.components.attoseconds) * 1e-18)
                wait = min(wait * 2, retry * 16)
            }
        }
        hub.publish(jobID: jobID, .state(state, failure))
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
            throw JobFailure(code: "output.store", message: "could not store the receipt: \(error)")
        }
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
                // The put stopped early: its error is the reason.
                throw JobFailure(code: "output.store", message: "could not store output \(descriptor.name)")
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
            default:
                throw JobFailure(code: "output.store", message: "could not store output \(descriptor.name)")
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
