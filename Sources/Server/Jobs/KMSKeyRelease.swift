import AWS
import Enclave
import Envelope
import Foundation
import LocalServices

/// Key release through KMS (DESIGN §4): reads the dataset's message header from the object store,
/// takes its `aws-kms` encrypted data key and encryption context, and calls `Decrypt` with
/// `Recipient = {attestation document, RSAES_OAEP_SHA_256}`. KMS (AWS, or the local KMS) checks
/// the attestation and the key policy's `kms:RecipientAttestation` conditions and answers only
/// `CiphertextForRecipient`; a response carrying a plaintext key is refused, so the server never
/// holds one.
public struct KMSKeyRelease: KeyReleaseService {
    /// KMS `Decrypt` (the local KMS's `decrypt(_:caller:)`, or the AWS KMS client).
    public typealias Decrypt = @Sendable (KMSWire.DecryptRequest) throws -> KMSWire.DecryptResponse

    let objects: any ObjectStore
    let decrypt: Decrypt
    /// How much of the object is read to find the header.
    let headerReadLimit: Int

    public init(objects: any ObjectStore, headerReadLimit: Int = 1 << 20, decrypt: @escaping Decrypt) {
        self.objects = objects
        self.decrypt = decrypt
        self.headerReadLimit = headerReadLimit
    }

    public func release(dataset: JobPlan.Dataset, attestationDocument: [UInt8]) throws(JobFailure) -> KeyRelease {
        let header = try readHeader(dataset)
        guard let index = header.encryptedDataKeys.firstIndex(where: { $0.providerID == "aws-kms" }) else {
            throw JobFailure(code: "key_release.no_kms_key", message: "dataset \(dataset.id) has no aws-kms encrypted data key")
        }
        let edk = header.encryptedDataKeys[index]
        var context: [String: String] = [:]
        for pair in header.encryptionContext.pairs { context[pair.key] = pair.value }
        let request = KMSWire.DecryptRequest(
            ciphertextBlob: Data(edk.ciphertext), keyId: String(decoding: edk.providerInfo, as: UTF8.self),
            encryptionContext: context,
            recipient: KMSWire.RecipientInfo(attestationDocument: Data(attestationDocument)))
        let response: KMSWire.DecryptResponse
        do {
            response = try decrypt(request)
        } catch let error as KMSError where error.code == "AccessDeniedException" {
            throw JobFailure(
                code: "key_release.refused",
                message: "KMS refused the key of dataset \(dataset.id): \(error). The key policy of its owner's KMS key does not "
                    + "let this enclave image decrypt: the owner approves this policy with `cleanroom policy approve`, or allows "
                    + "the image with `cleanroom kms allow-image`")
        } catch {
            throw JobFailure(code: "key_release.refused", message: "KMS refused the key of dataset \(dataset.id): \(error)")
        }
        guard response.plaintext == nil, let cms = response.ciphertextForRecipient, !cms.isEmpty else {
            throw JobFailure(
                code: "key_release.plaintext", message: "KMS did not answer with CiphertextForRecipient; nothing was forwarded")
        }
        return KeyRelease(datasetID: dataset.id, encryptedDataKeyIndex: UInt32(index), ciphertextForRecipient: Array(cms))
    }

    private func readHeader(_ dataset: JobPlan.Dataset) throws(JobFailure) -> MessageHeader {
        let objects = self.objects, limit = headerReadLimit
        let result = BlockingTask.run { () async throws -> MessageHeader in
            // Only the first `limit` bytes: the header, not a whole (possibly multi-GB) dataset.
            let download = try await objects.get(key: dataset.objectKey, range: ByteRange(offset: 0, length: Int64(limit)))
            var bytes: [UInt8] = []
            let parser = MessageHeaderParser()
            for try await chunk in download.body {
                bytes += chunk
                if let header = try parser.parse(bytes) { return header }
                guard bytes.count < limit else { break }
            }
            throw JobFailure(code: "key_release.header", message: "dataset \(dataset.id) has no complete message header")
        }
        switch result {
        case .success(let header): return header
        case .failure(let error as JobFailure): throw error
        case .failure(let error):
            throw JobFailure(code: "key_release.header", message: "dataset \(dataset.id): \(error)")
        }
    }
}

/// Streams a dataset's ciphertext from the object store (constant memory: one chunk at a time).
///
/// From the file store, each chunk is read with `pread` straight into one reusable buffer on the
/// runner's thread and handed on from there (no task hop, no array per chunk). From any other
/// store (S3) the download's pieces are gathered into the same kind of buffer.
public struct ObjectStoreCiphertextSource: CiphertextSource {
    let objects: any ObjectStore

    public init(objects: any ObjectStore) {
        self.objects = objects
    }

    public func stream(
        dataset: JobPlan.Dataset, chunkSize: Int, _ body: (UnsafeRawBufferPointer) throws(JobFailure) -> Void
    ) throws(JobFailure) {
        if let files = objects as? FileObjectStore {
            return try streamFile(files, dataset: dataset, chunkSize: chunkSize, body)
        }
        let objects = self.objects
        let opened = BlockingTask.run { try await objects.get(key: dataset.objectKey) }
        guard case .success(let download) = opened else {
            throw Self.unreadable(dataset)
        }
        let iterator = IteratorBox(download.body.makeAsyncIterator())
        var pending: [UInt8] = []
        pending.reserveCapacity(chunkSize)
        while true {
            let next = BlockingTask.run { try await iterator.next() }
            guard case .success(let chunk) = next else {
                throw JobFailure(code: "job.dataset_unreadable", message: "reading dataset \(dataset.id) failed")
            }
            guard let chunk else { break }
            var rest = chunk[...]
            while !rest.isEmpty {
                let take = min(chunkSize - pending.count, rest.count)
                pending.append(contentsOf: rest.prefix(take))
                rest = rest.dropFirst(take)
                if pending.count == chunkSize {
                    try pending.withRawBytes(body)
                    pending.removeAll(keepingCapacity: true)
                }
            }
        }
        if !pending.isEmpty { try pending.withRawBytes(body) }
    }

    private func streamFile(
        _ files: FileObjectStore, dataset: JobPlan.Dataset, chunkSize: Int,
        _ body: (UnsafeRawBufferPointer) throws(JobFailure) -> Void
    ) throws(JobFailure) {
        let reader: FileObjectReader
        do {
            reader = try files.openReader(key: dataset.objectKey)
        } catch {
            throw Self.unreadable(dataset)
        }
        defer { reader.close() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(chunkSize, 1), alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count: Int
            do {
                count = try reader.read(into: buffer)
            } catch {
                throw JobFailure(code: "job.dataset_unreadable", message: "reading dataset \(dataset.id) failed")
            }
            guard count > 0 else { return }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    static func unreadable(_ dataset: JobPlan.Dataset) -> JobFailure {
        JobFailure(code: "job.dataset_unreadable", message: "dataset \(dataset.id) could not be read from the object store")
    }

    final class IteratorBox: @unchecked Sendable {
        var iterator: ByteStream.AsyncIterator
        init(_ iterator: ByteStream.AsyncIterator) { self.iterator = iterator }
        func next() async throws -> [UInt8]? { try await iterator.next() }
    }
}

/// Runs async work to completion from a blocking thread (the job runner's own thread, never an
/// event-loop or concurrency-pool thread).
enum BlockingTask {
    static func run<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) -> Result<T, any Error> {
        let box = ResultBox<T>()
        let semaphore = DispatchSemaphore(value: 0)
        Task.detached {
            do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
            semaphore.signal()
        }
        semaphore.wait()
        return box.result!
    }

    final class ResultBox<T: Sendable>: @unchecked Sendable {
        var result: Result<T, any Error>?
    }
}
