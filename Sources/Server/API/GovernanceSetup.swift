import AWS
import CleanRoom
import Enclave
import Foundation
import LocalServices
import Logging

/// Opens the governance store of a data directory: `cleanroom.sqlite` (WAL) and the audit
/// checkpoint key `audit-signing-key.pem` (0600, created on first start), and makes the
/// operator's bootstrap token (`operator-credentials.json`) a credential of the operator
/// principal (stored hashed). Used by `cleanroomd serve`, `cleanroomd admin enroll` and
/// `cleanroomd audit verify`.
public enum GovernanceSetup {
    public static let databaseFile = "cleanroom.sqlite"
    public static let auditKeyFile = "audit-signing-key.pem"

    /// Opens (creating) the store with the data directory's audit key.
    public static func openStore(dataDirectory: DataDirectory, operatorToken: String?) throws -> CleanRoomStore {
        let signer = try P256AuditSigner.loadOrCreate(path: dataDirectory.file(auditKeyFile).path)
        var configuration = CleanRoomStore.Configuration()
        configuration.auditSigner = signer
        configuration.trainingCheck = { document in
            do throws(EnclaveError) {
                try TrainingWorkload.checkTraining(try JobPolicy(bytes: document.canonical))
                return nil
            } catch {
                return error.message
            }
        }
        let store = try CleanRoomStore(path: dataDirectory.file(databaseFile).path, configuration: configuration)
        if let operatorToken { try store.ensureOperatorCredential(secret: operatorToken) }
        return store
    }

    /// The embedded object store (`objects/` in the data directory) where dataset ciphertext is kept.
    public static func makeObjectStore(dataDirectory: DataDirectory) throws -> any ObjectStore {
        try FileObjectStore(root: dataDirectory.file("objects"))
    }

    /// Deletes the objects of uploads a crash interrupted and forgets them, so the datasets are
    /// exactly as they were before those uploads began and can be uploaded again.
    public static func recoverInterruptedUploads(
        store: CleanRoomStore, objects: any ObjectStore, logger: Logger
    ) async throws {
        for upload in try store.pendingUploads() {
            do {
                try await objects.delete(key: upload.objectKey)
            } catch let error as ObjectStoreError where error.code == .notFound {
                // The store never made the partial object visible: nothing to delete.
            }
            try store.abortUpload(upload)
            logger.info(
                "discarded an interrupted upload",
                metadata: ["dataset": "\(upload.datasetId)", "upload": "\(upload.id)"])
        }
    }
}

/// The governance services of a running server (issue #6): the metadata store and the object
/// store that holds dataset ciphertext. Built once at start-up by `Governance.open`.
public final class Governance: Sendable {
    public let store: CleanRoomStore
    public let objects: any ObjectStore

    public init(store: CleanRoomStore, objects: any ObjectStore) {
        self.store = store
        self.objects = objects
    }

    /// Opens the data directory's store and object store, makes the operator's bootstrap token a
    /// credential, and discards uploads a crash interrupted.
    /// `objects` is the configured store (`--object-store`); the embedded file store when nil.
    public static func open(
        dataDirectory: DataDirectory, operatorToken: String, logger: Logger, objects configured: (any ObjectStore)? = nil
    ) async throws -> Governance {
        let store = try GovernanceSetup.openStore(dataDirectory: dataDirectory, operatorToken: operatorToken)
        let objects = try configured ?? GovernanceSetup.makeObjectStore(dataDirectory: dataDirectory)
        try await GovernanceSetup.recoverInterruptedUploads(store: store, objects: objects, logger: logger)
        // Sign what is already in the log (entries a crash left unsigned included), then keep signing
        // the head periodically so a later crash leaves at most one interval unsigned.
        try store.checkpoint()
        Task.detached {
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: checkpointInterval * 1_000_000_000)
                do {
                    try store.checkpoint()
                } catch {
                    logger.error("cannot sign an audit checkpoint", metadata: ["error": "\(error)"])
                }
            }
        }
        return Governance(store: store, objects: objects)
    }

    /// Seconds between periodic audit checkpoints.
    public static let checkpointInterval: UInt64 = 30

    /// The /v1 routes over these services, with `jobs` running the job routes.
    func routes(jobs: JobManager?, webhooks: WebhookDispatcher?, logger: Logger) -> GovernanceRoutes {
        GovernanceRoutes(store: store, objects: objects, jobs: jobs, webhooks: webhooks, logger: logger)
    }
}
