import AWS
import Crypto
import Enclave
import Foundation

/// Where a running job's events and results go in a real server: state changes to the
/// `JobStore` (persisted and audited) and the progress hub (SSE), outputs to the object store
/// under `jobs/<job>/outputs/<recipient>/<name>` and the `output` table, the receipt and the
/// attestation document under `jobs/<job>/`.
///
/// Outputs are spooled to a private temporary file while they arrive (constant memory) and become
/// visible only after their SHA-256 matched the enclave's and the object was fully stored.
public final class StoredJobSink: JobEventSink, @unchecked Sendable {
    let jobs: JobStore
    let objects: any ObjectStore
    let hub: JobProgressHub
    let spoolDirectory: URL

    public init(jobs: JobStore, objects: any ObjectStore, hub: JobProgressHub, spoolDirectory: URL) {
        self.jobs = jobs
        self.objects = objects
        self.hub = hub
        self.spoolDirectory = spoolDirectory
    }

    /// Object keys of a job's artifacts.
    public static func outputKey(jobID: String, recipient: String, name: String) -> String {
        "jobs/\(jobID)/outputs/\(recipient)/\(name.replacingOccurrences(of: ":", with: "-"))"
    }
    public static func receiptKey(jobID: String) -> String { "jobs/\(jobID)/receipt.json" }
    public static func attestationKey(jobID: String) -> String { "jobs/\(jobID)/attestation.cbor" }

    /// Persists and publishes a state change. A change the store refuses (the job already ended)
    /// is not published; one the store could not write is still published, so watchers see it.
    public func transition(jobID: String, to state: JobState, failure: JobFailure?) {
        if (try? jobs.transition(jobID: jobID, to: state, failure: failure)) == false { return }
        hub.publish(jobID: jobID, .state(state, failure))
    }

    public func progress(jobID: String, _ event: ProgressEvent) {
        hub.publish(jobID: jobID, .progress(event))
    }

    public func beginOutput(jobID: String, descriptor: OutputDescriptor) throws(JobFailure) -> any OutputWriter {
        do {
            try FileManager.default.createDirectory(
                at: spoolDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let url = spoolDirectory.appendingPathComponent("\(jobID)-\(UUID().uuidString)")
            guard FileManager.default.createFile(atPath: url.path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw JobFailure(code: "output.spool", message: "could not create a spool file")
            }
            return SpooledOutput(
                sink: self, jobID: jobID, descriptor: descriptor, url: url, handle: try FileHandle(forWritingTo: url))
        } catch let error as JobFailure {
            throw error
        } catch {
            throw JobFailure(code: "output.spool", message: "could not spool output \(descriptor.name): \(error)")
        }
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

    /// One output arriving: spooled, hashed, stored and recorded at `finish`.
    final class SpooledOutput: OutputWriter {
        let sink: StoredJobSink
        let jobID: String
        let descriptor: OutputDescriptor
        let url: URL
        let handle: FileHandle
        var hash = SHA256()
        var size: Int64 = 0

        init(sink: StoredJobSink, jobID: String, descriptor: OutputDescriptor, url: URL, handle: FileHandle) {
            self.sink = sink
            self.jobID = jobID
            self.descriptor = descriptor
            self.url = url
            self.handle = handle
        }

        func write(_ chunk: [UInt8]) throws(JobFailure) {
            do {
                try handle.write(contentsOf: chunk)
            } catch {
                throw JobFailure(code: "output.spool", message: "could not spool output \(descriptor.name)")
            }
            hash.update(chunk)
            size += Int64(chunk.count)
        }

        func finish(sha256: [UInt8]) throws(JobFailure) {
            defer { abort() }
            try? handle.close()
            let digest = hash.finalize()
            guard digest == sha256 else {
                throw JobFailure(code: "output.digest", message: "output \(descriptor.name) for \(descriptor.recipient) arrived damaged")
            }
            let key = StoredJobSink.outputKey(jobID: jobID, recipient: descriptor.recipient, name: descriptor.name)
            let objects = sink.objects, path = url.path
            let stored = BlockingTask.run {
                let file = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
                let body = ByteStream(next: {
                    let data = try file.read(upToCount: 1 << 16) ?? Data()
                    return data.isEmpty ? nil : Array(data)
                })
                defer { try? file.close() }
                return try await objects.put(key: key, body: body)
            }
            guard case .success = stored else {
                throw JobFailure(code: "output.store", message: "could not store output \(descriptor.name)")
            }
            do {
                _ = try sink.jobs.recordOutput(
                    jobID: jobID, recipient: descriptor.recipient, name: descriptor.name, objectKey: key, sha256: digest,
                    size: size)
            } catch {
                throw JobFailure(code: "output.record", message: "could not record output \(descriptor.name)")
            }
        }

        func abort() {
            try? handle.close()
            try? FileManager.default.removeItem(at: url)
        }
    }
}
