import Foundation
import GRDB

/// What the server learned from a completely received upload, recorded in one transaction.
public struct CompletedUpload: Sendable {
    public var objectKey: String
    public var objectVersion: String
    public var size: Int64
    public var sha256: String
    public var suite: Int
    public var encryptionContext: [String: String]

    public init(
        objectKey: String, objectVersion: String, size: Int64, sha256: String, suite: Int,
        encryptionContext: [String: String]
    ) {
        self.objectKey = objectKey
        self.objectVersion = objectVersion
        self.size = size
        self.sha256 = sha256
        self.suite = suite
        self.encryptionContext = encryptionContext
    }
}

extension CleanRoomStore {
    static let maxColumns = 4096

    /// Creates a dataset (no content yet) for the caller's party.
    public func createDataset(name: String, columns: [DatasetColumn], caller: Caller) throws -> Dataset {
        let party = try caller.requireParty()
        guard (1...128).contains(name.count) else { throw DomainError.invalid("invalid_name", "name must be 1 to 128 characters") }
        guard (1...Self.maxColumns).contains(columns.count) else {
            throw DomainError.invalid("invalid_columns", "columns must list 1 to \(Self.maxColumns) columns")
        }
        var names = Set<String>()
        for (i, column) in columns.enumerated() {
            guard column.name.range(of: "^[A-Za-z_][A-Za-z0-9_.-]{0,127}$", options: .regularExpression) != nil else {
                throw DomainError.invalid("invalid_columns", "columns[\(i)].name is not a valid column name")
            }
            guard names.insert(column.name).inserted else {
                throw DomainError.invalid("invalid_columns", "columns[\(i)].name repeats \(column.name)")
            }
        }
        let dataset = Dataset(
            id: try CryptoSupport.identifier("ds-"), partyId: party.id, name: name, columns: columns, status: .created,
            objectKey: nil, objectVersion: nil, size: nil, sha256: nil, suite: nil, encryptionContext: nil,
            createdAt: now, uploadedAt: nil)
        try write { db in
            if try Dataset.filter(Column("partyId") == party.id && Column("name") == name).fetchCount(db) > 0 {
                throw DomainError(.conflict, "dataset_exists", "the party already has a dataset named \(name)")
            }
            try dataset.insert(db)
            try appendAudit(db, actor: caller, action: "dataset.created", subject: dataset.id,
                            details: .object([("name", .string(name)), ("columns", .number(Double(columns.count)))]))
        }
        return dataset
    }

    /// The caller's party's datasets.
    public func datasets(caller: Caller) throws -> [Dataset] {
        let party = try caller.requireParty()
        return try read { db in
            try Dataset.filter(Column("partyId") == party.id).order(Column("createdAt"), Column("id")).fetchAll(db)
        }
    }

    /// A dataset of the caller's party; 404 for any other (existence is not revealed).
    public func dataset(id: String, caller: Caller) throws -> Dataset {
        guard let partyId = caller.partyId, let dataset = try read({ db in try Dataset.fetchOne(db, key: id) }),
            dataset.partyId == partyId
        else { throw DomainError.notFound("dataset") }
        return dataset
    }

    /// Starts an upload: records where the bytes go so a crash leaves a trace to clean up.
    /// Refused for withdrawn datasets and for datasets whose content is already complete.
    public func beginUpload(datasetId: String, caller: Caller) throws -> PendingUpload {
        let dataset = try dataset(id: datasetId, caller: caller)
        switch dataset.status {
        case .withdrawn: throw DomainError(.conflict, "dataset_withdrawn", "the dataset has been withdrawn")
        case .available:
            throw DomainError(.conflict, "dataset_already_uploaded", "the dataset's content is already complete")
        case .created: break
        }
        let uploadId = try CryptoSupport.identifier("up-")
        let upload = PendingUpload(
            id: uploadId, datasetId: datasetId, objectKey: "datasets/\(datasetId)/\(uploadId).esdk", startedAt: now)
        try write { db in try upload.insert(db) }
        return upload
    }

    /// Makes an upload visible: the dataset's content fields are set in the same transaction that
    /// removes the pending upload and appends the audit entry. Another upload of the dataset still
    /// in flight is left alone: it then fails `dataset_already_uploaded`, and deletes its object
    /// (or, after a crash, the next start does, from its pending record).
    public func completeUpload(_ upload: PendingUpload, result: CompletedUpload, caller: Caller) throws -> Dataset {
        try write { db in
            guard var dataset = try Dataset.fetchOne(db, key: upload.datasetId), dataset.partyId == caller.partyId,
                try PendingUpload.fetchOne(db, key: upload.id) != nil
            else { throw DomainError.notFound("upload") }
            guard dataset.status == .created else {
                throw DomainError(.conflict, "dataset_already_uploaded", "the dataset's content is already complete")
            }
            dataset.status = .available
            dataset.objectKey = result.objectKey
            dataset.objectVersion = result.objectVersion
            dataset.size = result.size
            dataset.sha256 = result.sha256
            dataset.suite = result.suite
            dataset.encryptionContext = result.encryptionContext
            dataset.uploadedAt = now
            try dataset.update(db)
            try PendingUpload.deleteOne(db, key: upload.id)
            try appendAudit(
                db, actor: caller, action: "dataset.uploaded", subject: dataset.id,
                details: .object([
                    ("sha256", .string(result.sha256)), ("size", .number(Double(result.size))),
                    ("objectVersion", .string(result.objectVersion)), ("suite", .number(Double(result.suite))),
                ]))
            return dataset
        }
    }

    /// Forgets a failed upload (its object is deleted by the caller).
    public func abortUpload(_ upload: PendingUpload) throws {
        _ = try write { db in try PendingUpload.deleteOne(db, key: upload.id) }
    }

    /// Uploads left behind by a crash: the server deletes their objects and then `abortUpload`s them at start-up.
    public func pendingUploads() throws -> [PendingUpload] {
        try read { db in try PendingUpload.order(Column("startedAt")).fetchAll(db) }
    }

    /// Withdraws a dataset: it can no longer be named in new policies or uploaded.
    public func withdrawDataset(id: String, caller: Caller) throws -> Dataset {
        var dataset = try dataset(id: id, caller: caller)
        return try write { db in
            dataset.status = .withdrawn
            try dataset.update(db)
            try appendAudit(db, actor: caller, action: "dataset.withdrawn", subject: id)
            return dataset
        }
    }
}
