import AWS
import CleanRoom
import Envelope
import Foundation
import HTTPServer
import Logging

/// `PUT /v1/datasets/{id}/content`: streams an Encryption SDK message into the object store while
/// validating its structure (`UploadValidator`), and makes the dataset visible in one transaction
/// only when the whole message has arrived and the object is stored. The recorded SHA-256 is the
/// one the store computed as it wrote the object.
///
/// The object store pulls the body through `UploadPipe`; if the message is malformed or ends
/// early, the pipe throws, so the store keeps nothing. A crash leaves a pending-upload record whose
/// object the next start deletes (`GovernanceSetup.recoverInterruptedUploads`); the dataset is
/// then exactly as before and the upload can be retried.
///
/// A store that is full (`ObjectStoreError.Code.insufficientStorage`: the disk or quota of a file
/// store) answers 507 `insufficient_storage`, so the owner knows to retry once the operator has freed
/// space; any other store failure answers 500 `object_store_failed`. Both are logged at error level
/// with the store's own error (which names the file and errno), never with the data.
struct DatasetUpload {
    let store: CleanRoomStore
    let objects: any ObjectStore
    let logger: Logger

    func handle(_ request: Request, caller: Caller) async throws -> Response {
        let datasetId = try request.pathParameters.require("datasetId")
        guard let party = caller.party else { throw DomainError(.notFound, "not_found", "not found") }
        let store = self.store
        let pending = try await GovernanceRoutes.blocking { try store.beginUpload(datasetId: datasetId, caller: caller) }
        let pipe = UploadPipe(
            body: request.body,
            validator: UploadValidator(
                datasetId: datasetId, partyId: party.id, ownerKeyFingerprint: party.signingKeyFingerprint))
        do {
            let info = try await objects.put(key: pending.objectKey, body: ByteStream(next: { try await pipe.next() }))
            let (size, header) = try pipe.result()
            guard let digest = info.sha256 else { throw ObjectStoreError(.service, "the object store returned no digest") }
            let result = CompletedUpload(
                objectKey: pending.objectKey, objectVersion: info.versionId ?? info.etag, size: size, sha256: digest,
                suite: Int(header.suite.id), encryptionContext: header.encryptionContext.dictionary)
            let dataset = try await GovernanceRoutes.blocking {
                try store.completeUpload(pending, result: result, caller: caller)
            }
            return try Response.json(DatasetBody(dataset))
        } catch {
            try? await objects.delete(key: pending.objectKey)
            try? await GovernanceRoutes.blocking { try store.abortUpload(pending) }
            if let failure = error as? UploadValidator.Failure {
                throw DomainError(.invalidInput, failure.code, failure.message)
            }
            if let failure = pipe.failure { throw DomainError(.invalidInput, failure.code, failure.message) }
            if let http = pipe.bodyError { throw http }
            // Another upload of the dataset completed first (409), or the database refused.
            if let domain = error as? DomainError { throw domain }
            throw Self.storeFailure(error, datasetId: datasetId, objectKey: pending.objectKey, logger: logger)
        }
    }
}

extension DatasetUpload {
    /// What the owner is told, and the operator's log line, when the store could not keep an upload.
    static func storeFailure(_ error: any Error, datasetId: String, objectKey: String, logger: Logger) -> DomainError {
        let failure = StoreFailure(error, ["dataset": "\(datasetId)", "object": "\(objectKey)"])
        if failure.isFull {
            logger.error("the object store is full: a dataset upload was refused (507); free space in it", metadata: failure.metadata)
            return DomainError(
                .insufficientStorage, "insufficient_storage",
                "the server's storage is full, so the dataset was not stored and is unchanged; "
                    + "upload it again once the server's operator has freed space")
        }
        logger.error("a dataset upload could not be stored (500)", metadata: failure.metadata)
        return DomainError(
            .internalError, "object_store_failed",
            "the dataset could not be stored and is unchanged; upload it again, and if this persists tell the server's operator")
    }
}

/// The request body as the object store pulls it: each chunk is validated on its way through;
/// the end of the body is accepted only if the message is complete.
final class UploadPipe: @unchecked Sendable {  // used by one task at a time (the store's reader)
    private var iterator: RequestBody.AsyncIterator
    private var validator: UploadValidator
    private var size: Int64 = 0
    private var finished = false
    private(set) var failure: UploadValidator.Failure?
    private(set) var bodyError: Error?

    init(body: RequestBody, validator: UploadValidator) {
        iterator = body.makeAsyncIterator()
        self.validator = validator
    }

    func next() async throws -> [UInt8]? {
        let chunk: [UInt8]?
        do {
            chunk = try await iterator.next()
        } catch {
            bodyError = error
            throw error
        }
        do {
            guard let chunk else {
                try validator.finish()
                finished = true
                return nil
            }
            try validator.consume(chunk)
            size += Int64(chunk.count)
            return chunk
        } catch let error as UploadValidator.Failure {
            failure = error
            throw error
        }
    }

    /// The size and header of a complete message.
    func result() throws -> (Int64, Envelope.MessageHeader) {
        guard finished, let header = validator.header else {
            throw UploadValidator.Failure(code: "incomplete_upload", message: "the upload ended before the message did")
        }
        return (size, header)
    }
}
