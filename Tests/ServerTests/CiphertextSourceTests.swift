import AWS
import Foundation
import LocalServices
import TestSupport
import Testing
@testable import Server

/// `ObjectStoreCiphertextSource` hands the job runner a dataset's ciphertext in chunks of exactly
/// `chunkSize` (the last shorter), whichever path it takes: `pread` straight from the file store,
/// or the download stream of any other store (S3). Both are run against a real file store; the
/// second sees it only through the `ObjectStore` protocol, as it sees an S3 store.
@Suite struct CiphertextSourceTests {
    /// The file store behind the protocol alone, so the source cannot take its file path.
    struct ProtocolOnly: ObjectStore {
        let store: FileObjectStore
        func put(key: String, body: ByteStream, options: ObjectPutOptions) async throws -> ObjectInfo {
            try await store.put(key: key, body: body, options: options)
        }
        func get(key: String, versionId: String?, range: ByteRange?) async throws -> ObjectDownload {
            try await store.get(key: key, versionId: versionId, range: range)
        }
        func head(key: String, versionId: String?) async throws -> ObjectInfo { try await store.head(key: key, versionId: versionId) }
        func delete(key: String, versionId: String?) async throws { try await store.delete(key: key, versionId: versionId) }
        func list(prefix: String) async throws -> [ObjectInfo] { try await store.list(prefix: prefix) }
    }

    func dataset(_ key: String, bytes: Int) -> JobPlan.Dataset {
        JobPlan.Dataset(id: "ds-1", partyID: "alpha", objectKey: key, ciphertextSHA256: [], byteCount: UInt64(bytes))
    }

    /// The chunks a source hands over, or the failure it reports.
    func chunks(_ source: ObjectStoreCiphertextSource, _ dataset: JobPlan.Dataset, chunkSize: Int) async throws
        -> Result<[[UInt8]], JobFailure>
    {
        try await offPool {
            var chunks: [[UInt8]] = []
            do throws(JobFailure) {
                try source.stream(dataset: dataset, chunkSize: chunkSize) { (chunk) throws(JobFailure) in chunks.append(Array(chunk)) }
                return .success(chunks)
            } catch {
                return .failure(error)
            }
        }
    }

    @Test func bothPathsHandOverTheObjectInWholeChunks() async throws {
        let store = try FileObjectStore(root: try TestEnvironment.temporaryDirectory("ciphertext-source"))
        let chunkSize = 100_000
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<(3 * chunkSize + chunkSize / 2 + 17)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        _ = try await store.put(key: "datasets/ds-1", body: ByteStream(bytes: bytes))
        for source in [ObjectStoreCiphertextSource(objects: store), ObjectStoreCiphertextSource(objects: ProtocolOnly(store: store))] {
            let path = source.objects is FileObjectStore ? "file" : "stream"
            let got = try await chunks(source, dataset("datasets/ds-1", bytes: bytes.count), chunkSize: chunkSize).get()
            #expect(got.flatMap { $0 } == bytes, "\(path)")
            #expect(got.dropLast().allSatisfy { $0.count == chunkSize }, "\(path): \(got.map(\.count))")
            #expect(got.last?.count == chunkSize / 2 + 17, "\(path)")
            // A missing object is a clear failure, not an empty dataset.
            let missing = try await chunks(source, dataset("datasets/none", bytes: 1), chunkSize: chunkSize)
            guard case .failure(let failure) = missing else {
                Issue.record("\(path): a missing object streamed")
                continue
            }
            #expect(failure.code == "job.dataset_unreadable", "\(path)")
        }
    }
}
