import Foundation
import GRDB

/// A collaboration with its current policy, as members see it.
public struct CollaborationView: Sendable {
    public let collaboration: Collaboration
    public let policy: PolicyVersion
    public let members: [String]
    /// Earlier digests of this collaboration's policy, oldest first.
    public let supersededDigests: [String]
}

extension CleanRoomStore {
    /// Completes a proposed policy from the server's records — each party's registered keys, each
    /// dataset's ciphertext digest and object version — and validates the result. Values a proposer
    /// supplied must equal the records (a mismatch is refused, never overwritten). `input` has
    /// passed `checkShape`.
    func completePolicy(_ db: Database, json input: JSONValue, proposer: Party) throws -> PolicyDocument {
        func refuse(_ code: String, _ field: String, _ message: String) -> DomainError {
            DomainError(.invalidInput, code, "\(field) \(message)", details: [.init(field: field, message: message)])
        }
        var json = input
        var parties = json["parties"]?.arrayValue ?? []
        var registered: [String: Party] = [:]
        for (i, entry) in parties.enumerated() {
            let id = entry["id"]?.stringValue ?? ""
            guard let party = try Party.fetchOne(db, key: id), party.status == .active else {
                throw refuse("unknown_party", "parties[\(i)].id", "names \(id), which is not an active registered party")
            }
            registered[id] = party
            var filled = entry
            for (field, value) in [
                ("name", party.name), ("signingKey", party.signingKey),
                ("signingKeyFingerprint", party.signingKeyFingerprint), ("resultKey", party.resultKey),
            ] {
                if let given = entry[field]?.stringValue, given.trimmingCharacters(in: .whitespacesAndNewlines)
                    != value.trimmingCharacters(in: .whitespacesAndNewlines)
                {
                    throw refuse("party_record_mismatch", "parties[\(i)].\(field)", "differs from the party's registered value")
                }
                filled = filled.setting(field, to: .string(value))
            }
            parties[i] = filled
        }
        guard registered[proposer.id] != nil else {
            throw DomainError(.invalidInput, "proposer_not_member", "the proposing party must be one of the policy's parties")
        }
        json = json.setting("parties", to: .array(parties))
        var datasets = json["datasets"]?.arrayValue ?? []
        for (i, entry) in datasets.enumerated() {
            let id = entry["id"]?.stringValue ?? ""
            let owner = entry["owner"]?.stringValue ?? ""
            guard let dataset = try Dataset.fetchOne(db, key: id), dataset.partyId == owner else {
                throw refuse("unknown_dataset", "datasets[\(i)].id", "names \(id), which is not a dataset of \(owner)")
            }
            guard dataset.status == .available, let sha256 = dataset.sha256, let version = dataset.objectVersion else {
                throw refuse("dataset_not_available", "datasets[\(i)].id", "names \(id), whose content is not uploaded (or is withdrawn)")
            }
            let declared = (entry["columns"]?.arrayValue ?? []).map { column in
                DatasetColumn(
                    name: column["name"]?.stringValue ?? "",
                    type: DatasetColumn.ColumnType(rawValue: column["type"]?.stringValue ?? "") ?? .string,
                    nullable: column["nullable"]?.boolValue == true ? true : nil)
            }
            let recorded = dataset.columns.map { DatasetColumn(name: $0.name, type: $0.type, nullable: $0.nullable == true ? true : nil) }
            guard declared == recorded else {
                throw refuse("dataset_columns_mismatch", "datasets[\(i)].columns", "differs from the columns declared for dataset \(id)")
            }
            var filled = entry
            for (field, value) in [("sha256", sha256), ("objectVersion", version)] {
                if let given = entry[field]?.stringValue, given != value {
                    throw refuse("dataset_record_mismatch", "datasets[\(i)].\(field)", "differs from the uploaded content")
                }
                filled = filled.setting(field, to: .string(value))
            }
            datasets[i] = filled
        }
        json = json.setting("datasets", to: .array(datasets))
        let document = try PolicyDocument(json: json)
        if let expiry = document.expiresAt, expiry <= now {
            throw refuse("policy_expired", "constraints.expiresAt", "is in the past")
        }
        if let reason = configuration.trainingCheck?(document) {
            throw DomainError(.invalidInput, "invalid_policy", reason, details: [.init(field: "training", message: reason)])
        }
        return document
    }

    /// The proposed policy's shape, checked before the write transaction that completes it (so a
    /// bad proposal never holds the database's write lock), and which that completion relies on.
    private func checkShape(_ input: JSONValue) throws {
        let shape = PolicyDocument.schemaValidator.validate(input)
        if let first = shape.first {
            throw DomainError(
                .invalidInput, "invalid_policy", "the policy is not valid: \(first.field) \(first.message)", details: shape)
        }
    }

    /// Proposes a new collaboration with `policy` (the proposer's party must be in it).
    public func propose(policy json: JSONValue, caller: Caller) throws -> CollaborationView {
        let proposer = try caller.requireParty()
        let id = try CryptoSupport.identifier("col-")
        try checkShape(json)
        try write { db in
            let document = try completePolicy(db, json: json, proposer: proposer)
            if try PolicyVersion.fetchOne(db, key: document.digest) != nil {
                throw DomainError(.conflict, "policy_exists", "a collaboration with exactly this policy already exists")
            }
            try Collaboration(
                id: id, name: document.name, proposerPartyId: proposer.id, currentDigest: document.digest,
                createdAt: now, updatedAt: now
            ).insert(db)
            try insertVersion(db, document: document, collaborationId: id, version: 1, caller: caller)
            try appendAudit(
                db, actor: caller, action: "policy.proposed", collaborationId: id, subject: document.digest,
                details: .object([("version", .number(1)), ("parties", .array(document.partyIds.map(JSONValue.string)))]))
        }
        return try collaboration(id: id, caller: caller)
    }

    private func insertVersion(_ db: Database, document: PolicyDocument, collaborationId: String, version: Int, caller: Caller) throws {
        try PolicyVersion(
            digest: document.digest, collaborationId: collaborationId, version: version,
            canonical: String(decoding: document.canonical, as: UTF8.self), proposedBy: caller.principal.id,
            createdAt: now, supersededAt: nil
        ).insert(db)
        try Membership.filter(Column("collaborationId") == collaborationId).deleteAll(db)
        for partyId in document.partyIds {
            try Membership(collaborationId: collaborationId, partyId: partyId).insert(db)
        }
    }

    /// Replaces a collaboration's policy with a new version; approvals of earlier digests no longer count.
    public func revisePolicy(collaborationId: String, policy json: JSONValue, caller: Caller) throws -> CollaborationView {
        let proposer = try caller.requireParty()
        _ = try collaboration(id: collaborationId, caller: caller)
        try checkShape(json)
        try write { db in
            guard var collaboration = try Collaboration.fetchOne(db, key: collaborationId) else {
                throw DomainError.notFound("collaboration")
            }
            let document = try completePolicy(db, json: json, proposer: proposer)
            if try PolicyVersion.fetchOne(db, key: document.digest) != nil {
                throw DomainError(.conflict, "policy_exists", "this exact policy has already been proposed")
            }
            let previous = try PolicyVersion.filter(Column("collaborationId") == collaborationId)
                .order(Column("version").desc).fetchOne(db)
            let version = (previous?.version ?? 0) + 1
            try db.execute(
                sql: "UPDATE policy SET supersededAt = ? WHERE collaborationId = ? AND supersededAt IS NULL",
                arguments: [now, collaborationId])
            try insertVersion(db, document: document, collaborationId: collaborationId, version: version, caller: caller)
            collaboration.currentDigest = document.digest
            collaboration.name = document.name
            collaboration.updatedAt = now
            try collaboration.update(db)
            try appendAudit(
                db, actor: caller, action: "policy.revised", collaborationId: collaborationId, subject: document.digest,
                details: .object([
                    ("version", .number(Double(version))), ("supersedes", .string(previous?.digest ?? "")),
                ]))
        }
        return try collaboration(id: collaborationId, caller: caller)
    }

    private func view(_ db: Database, _ collaboration: Collaboration) throws -> CollaborationView {
        guard let policy = try PolicyVersion.fetchOne(db, key: collaboration.currentDigest) else {
            throw DomainError(.internalError, "missing_policy", "the collaboration's current policy is missing")
        }
        let members = try Membership.filter(Column("collaborationId") == collaboration.id).fetchAll(db).map(\.partyId).sorted()
        let superseded = try PolicyVersion.filter(Column("collaborationId") == collaboration.id && Column("supersededAt") != nil)
            .order(Column("version")).fetchAll(db).map(\.digest)
        return CollaborationView(collaboration: collaboration, policy: policy, members: members, supersededDigests: superseded)
    }

    /// A collaboration the caller's party is a member of; 404 otherwise.
    public func collaboration(id: String, caller: Caller) throws -> CollaborationView {
        guard let partyId = caller.partyId else { throw DomainError.notFound("collaboration") }
        return try read { db in
            guard let collaboration = try Collaboration.fetchOne(db, key: id),
                try Membership.fetchOne(db, key: ["collaborationId": id, "partyId": partyId]) != nil
            else { throw DomainError.notFound("collaboration") }
            return try view(db, collaboration)
        }
    }

    /// The collaborations the caller's party is a member of.
    public func collaborations(caller: Caller) throws -> [CollaborationView] {
        let party = try caller.requireParty()
        return try read { db in
            let ids = try Membership.filter(Column("partyId") == party.id).fetchAll(db).map(\.collaborationId)
            return try Collaboration.filter(ids.contains(Column("id"))).order(Column("createdAt"), Column("id"))
                .fetchAll(db).map { try view(db, $0) }
        }
    }

    /// Whether `partyId` is a member of the collaboration (for scope checks).
    public func isMember(partyId: String, collaborationId: String) throws -> Bool {
        try read { db in
            try Membership.fetchOne(db, key: ["collaborationId": collaborationId, "partyId": partyId]) != nil
        }
    }

    /// A policy version by digest (no visibility check: callers check membership).
    public func policyVersion(digest: String) throws -> PolicyVersion? {
        try read { db in try PolicyVersion.fetchOne(db, key: digest) }
    }
}
