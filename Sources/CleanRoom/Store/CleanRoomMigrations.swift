import GRDB

/// The metadata schema as an append-only list of migrations, registered by string identifier.
/// A shipped migration is never edited: schema changes are new migrations appended here
/// (other modules, e.g. the job orchestrator, append theirs through `CleanRoomStore.Configuration`).
enum CleanRoomMigrations {
    static func register(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration("2026-11-21-01-governance") { db in
            try db.create(table: "party") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull().unique()
                t.column("status", .text).notNull()
                t.column("signingKey", .text).notNull()
                t.column("signingKeyFingerprint", .text).notNull()
                t.column("resultKey", .text).notNull()
                t.column("createdAt", .integer).notNull()
            }
            try db.create(table: "principal") { t in
                t.primaryKey("id", .text)
                t.column("partyId", .text).references("party")
                t.column("name", .text).notNull()
                t.column("roles", .text).notNull()  // JSON array of Role
                t.column("status", .text).notNull()
                t.column("createdAt", .integer).notNull()
            }
            try db.create(table: "credential") { t in
                t.primaryKey("id", .text)
                t.column("principalId", .text).notNull().references("principal")
                t.column("secretHash", .text).notNull().unique()
                t.column("createdAt", .integer).notNull()
                t.column("revokedAt", .integer)
            }
            try db.create(table: "accessKey") { t in
                t.primaryKey("id", .text)
                t.column("partyId", .text).notNull().references("party")
                t.column("principalId", .text).notNull().references("principal")
                t.column("secret", .text).notNull()
                t.column("createdAt", .integer).notNull()
                t.column("revokedAt", .integer)
            }
            try db.create(table: "enrollmentToken") { t in
                t.primaryKey("id", .text)
                t.column("tokenHash", .text).notNull().unique()
                t.column("createdAt", .integer).notNull()
                t.column("expiresAt", .integer).notNull()
                t.column("usedAt", .integer)
                t.column("partyId", .text)
            }
            try db.create(table: "dataset") { t in
                t.primaryKey("id", .text)
                t.column("partyId", .text).notNull().references("party").indexed()
                t.column("name", .text).notNull()
                t.column("columns", .text).notNull()  // JSON array of Column
                t.column("status", .text).notNull()
                t.column("objectKey", .text)
                t.column("objectVersion", .text)
                t.column("size", .integer)
                t.column("sha256", .text)
                t.column("suite", .integer)
                t.column("encryptionContext", .text)  // JSON object
                t.column("createdAt", .integer).notNull()
                t.column("uploadedAt", .integer)
                t.uniqueKey(["partyId", "name"])
            }
            try db.create(table: "pendingUpload") { t in
                t.primaryKey("id", .text)
                t.column("datasetId", .text).notNull().references("dataset").indexed()
                t.column("objectKey", .text).notNull()
                t.column("startedAt", .integer).notNull()
            }
            try db.create(table: "collaboration") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull()
                t.column("proposerPartyId", .text).notNull().references("party")
                t.column("currentDigest", .text).notNull()
                t.column("createdAt", .integer).notNull()
                t.column("updatedAt", .integer).notNull()
            }
            try db.create(table: "policy") { t in
                t.primaryKey("digest", .text)
                t.column("collaborationId", .text).notNull().references("collaboration").indexed()
                t.column("version", .integer).notNull()
                t.column("canonical", .text).notNull()
                t.column("proposedBy", .text).notNull()
                t.column("createdAt", .integer).notNull()
                t.column("supersededAt", .integer)
                t.uniqueKey(["collaborationId", "version"])
            }
            try db.create(table: "membership") { t in
                t.column("collaborationId", .text).notNull().references("collaboration")
                t.column("partyId", .text).notNull().references("party").indexed()
                t.primaryKey(["collaborationId", "partyId"])
            }
            try db.create(table: "approval") { t in
                t.primaryKey("id", .text)
                t.column("collaborationId", .text).notNull().references("collaboration").indexed()
                t.column("policyDigest", .text).notNull().references("policy")
                t.column("partyId", .text).notNull().references("party")
                t.column("principalId", .text).notNull().references("principal")
                t.column("expiresAt", .integer).notNull()
                t.column("signature", .text).notNull().unique()
                t.column("createdAt", .integer).notNull()
                t.column("revokedAt", .integer)
            }
            try db.create(table: "job") { t in
                t.primaryKey("id", .text)
                t.column("collaborationId", .text).notNull().references("collaboration").indexed()
                t.column("policyDigest", .text).notNull().references("policy")
                t.column("status", .text).notNull()
                t.column("error", .text)
                t.column("createdAt", .integer).notNull()
                t.column("updatedAt", .integer).notNull()
            }
            try db.create(table: "output") { t in
                t.primaryKey("id", .text)
                t.column("jobId", .text).notNull().references("job").indexed()
                t.column("recipientPartyId", .text).notNull().references("party")
                t.column("name", .text).notNull()
                t.column("objectKey", .text).notNull()
                t.column("sha256", .text).notNull()
                t.column("size", .integer).notNull()
                t.column("createdAt", .integer).notNull()
            }
            try db.create(table: "auditEntry") { t in
                t.primaryKey("seq", .integer)
                t.column("time", .integer).notNull()
                t.column("actor", .text).notNull()
                t.column("actorPartyId", .text)
                t.column("action", .text).notNull()
                t.column("collaborationId", .text).indexed()
                t.column("subject", .text)
                t.column("details", .text).notNull()
                t.column("prevHash", .text).notNull()
                t.column("hash", .text).notNull()
            }
            try db.create(table: "auditCheckpoint") { t in
                t.primaryKey("seq", .integer)
                t.column("hash", .text).notNull()
                t.column("time", .integer).notNull()
                t.column("signature", .text).notNull()
                t.column("keyFingerprint", .text).notNull()
            }
        }
        // Audit format 2: each entry's hash covers a collaboration tag its link shows (NULL: format 1),
        // and each checkpoint signs where format 2 begins.
        migrator.registerMigration("2026-11-21-02-audit-collaboration-tags") { db in
            try db.alter(table: "auditEntry") { t in t.add(column: "format", .integer) }
            try db.alter(table: "auditCheckpoint") { t in t.add(column: "formatSince", .integer) }
        }
        // Signed webhooks (DESIGN §8): a party's registrations and their recent delivery attempts.
        migrator.registerMigration("2026-11-22-01-webhooks") { db in
            try db.create(table: "webhook") { t in
                t.primaryKey("id", .text)
                t.column("partyId", .text).notNull().references("party").indexed()
                t.column("url", .text).notNull()
                t.column("events", .text).notNull()  // JSON array of event types or patterns
                t.column("description", .text)
                t.column("secret", .text).notNull()
                t.column("previousSecret", .text)
                t.column("previousSecretExpiresAt", .integer)
                t.column("status", .text).notNull()
                t.column("disabledReason", .text)
                t.column("cursor", .integer).notNull()
                t.column("failures", .integer).notNull()
                t.column("failingSince", .integer)
                t.column("nextAttemptAt", .integer)
                t.column("createdAt", .integer).notNull()
                t.column("createdBy", .text).notNull()
            }
            try db.create(table: "webhookDelivery") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("webhookId", .text).notNull().references("webhook", onDelete: .cascade).indexed()
                t.column("eventSeq", .integer)
                t.column("eventId", .text).notNull()
                t.column("eventType", .text).notNull()
                t.column("attempt", .integer).notNull()
                t.column("time", .integer).notNull()
                t.column("durationMs", .integer).notNull()
                t.column("status", .integer)
                t.column("error", .text)
            }
        }
    }
}
