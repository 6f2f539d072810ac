import GRDB

/// What a party may change on its webhook (nil: unchanged).
public struct WebhookChanges: Sendable {
    public var url: String?
    public var events: [String]?
    public var description: String?
    public var enabled: Bool?

    public init(url: String? = nil, events: [String]? = nil, description: String? = nil, enabled: Bool? = nil) {
        self.url = url
        self.events = events
        self.description = description
        self.enabled = enabled
    }
}

/// The next thing a webhook's sender has to do.
public enum WebhookWork: Sendable, Equatable {
    /// Deliver this entry (the first after the cursor the webhook asked for and the party may see).
    case deliver(AuditEntry)
    /// Nothing to deliver up to this sequence number: move the cursor there.
    case skip(to: Int64)
    /// The cursor is at the head of the log.
    case idle
}

extension CleanRoomStore {
    /// Registered webhooks a party may have at once.
    public static let maxWebhooksPerParty = 10
    /// Delivery attempts kept per webhook (the oldest are dropped).
    public static let webhookDeliveriesKept = 100
    /// How long a rotated-out secret keeps signing beside the new one, so receivers can switch over.
    public static let webhookSecretOverlap: Int64 = 86_400

    /// Registers a webhook for the caller's party, starting after the log's current head (only
    /// events from now on are sent). `url` must already have passed the server's target policy.
    /// Returns the record, whose `secret` the caller sees this once.
    public func createWebhook(url: String, events: [String], description: String?, caller: Caller) throws -> Webhook {
        let party = try caller.requireParty()
        let events = try WebhookEvents.validate(events)
        let description = try Self.webhookDescription(description)
        let secret = "whsec_" + CryptoSupport.base64URL(try CryptoSupport.random(32))
        let id = try CryptoSupport.identifier("wh-")
        return try write { db in
            let count = try Webhook.filter(Column("partyId") == party.id).fetchCount(db)
            guard count < Self.maxWebhooksPerParty else {
                throw DomainError(
                    .conflict, "too_many_webhooks",
                    "your party already has \(count) webhooks, the most it may have: delete one it no longer uses")
            }
            try appendAudit(
                db, actor: caller, action: "webhook.created", subject: id,
                details: .object([("host", .string(Self.auditedHost(url))), ("events", .array(events.map(JSONValue.string)))]))
            let head = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM auditEntry") ?? 0
            let webhook = Webhook(
                id: id, partyId: party.id, url: url, events: events, description: description, secret: secret,
                previousSecret: nil, previousSecretExpiresAt: nil, status: .active, disabledReason: nil, cursor: head,
                failures: 0, failingSince: nil, nextAttemptAt: nil, createdAt: now, createdBy: caller.principal.id)
            try webhook.insert(db)
            return webhook
        }
    }

    /// The caller's party's webhooks, oldest first.
    public func webhooks(caller: Caller) throws -> [Webhook] {
        let party = try caller.requireParty()
        return try read { db in
            try Webhook.filter(Column("partyId") == party.id).order(Column("createdAt"), Column("id")).fetchAll(db)
        }
    }

    /// One of the caller's party's webhooks (404 for another party's, as for a missing one).
    public func webhook(id: String, caller: Caller) throws -> Webhook {
        try read { db in try ownWebhook(db, id: id, caller: caller) }
    }

    /// Changes a webhook. Enabling a disabled one resumes delivery where it stopped; `url`, if
    /// given, must already have passed the server's target policy.
    public func updateWebhook(id: String, changes: WebhookChanges, caller: Caller) throws -> Webhook {
        let events = try changes.events.map(WebhookEvents.validate)
        let description = try Self.webhookDescription(changes.description)
        return try write { db in
            var webhook = try ownWebhook(db, id: id, caller: caller)
            var changed: [(String, JSONValue)] = []
            // A new URL or event list starts delivery afresh: no backoff or failure clock carried over.
            var restart = false
            if let url = changes.url, url != webhook.url {
                webhook.url = url
                changed.append(("host", .string(Self.auditedHost(url))))
                restart = true
            }
            if let events, events != webhook.events {
                webhook.events = events
                changed.append(("events", .array(events.map(JSONValue.string))))
                restart = true
            }
            if changes.description != nil, description != webhook.description {
                webhook.description = description
                changed.append(("description", description.map(JSONValue.string) ?? .null))
            }
            if let enabled = changes.enabled, enabled != (webhook.status == .active) {
                webhook.status = enabled ? .active : .disabled
                webhook.disabledReason = enabled ? nil : "disabled by \(caller.principal.id)"
                changed.append(("enabled", .bool(enabled)))
                restart = true
            }
            if restart {
                webhook.failures = 0
                webhook.failingSince = nil
                webhook.nextAttemptAt = nil
            }
            guard !changed.isEmpty else { return webhook }
            try webhook.update(db)
            try appendAudit(db, actor: caller, action: "webhook.updated", subject: id, details: .object(changed))
            return webhook
        }
    }

    /// Deletes a webhook and its delivery record; nothing more is sent to it.
    public func deleteWebhook(id: String, caller: Caller) throws {
        try write { db in
            let webhook = try ownWebhook(db, id: id, caller: caller)
            try webhook.delete(db)
            try appendAudit(db, actor: caller, action: "webhook.deleted", subject: id)
        }
    }

    /// Replaces a webhook's secret. The old one keeps signing beside it (a second `v1=` in the
    /// signature header) for `webhookSecretOverlap` seconds, so receivers can switch over.
    public func rotateWebhookSecret(id: String, caller: Caller) throws -> Webhook {
        let secret = "whsec_" + CryptoSupport.base64URL(try CryptoSupport.random(32))
        return try write { db in
            var webhook = try ownWebhook(db, id: id, caller: caller)
            webhook.previousSecret = webhook.secret
            webhook.previousSecretExpiresAt = now + Self.webhookSecretOverlap
            webhook.secret = secret
            try webhook.update(db)
            try appendAudit(db, actor: caller, action: "webhook.secret_rotated", subject: id)
            return webhook
        }
    }

    /// A webhook's most recent delivery attempts, newest first.
    public func webhookDeliveries(id: String, caller: Caller, limit: Int = webhookDeliveriesKept) throws -> [WebhookDelivery] {
        try read { db in
            _ = try ownWebhook(db, id: id, caller: caller)
            return try WebhookDelivery.filter(Column("webhookId") == id).order(Column("id").desc).limit(limit).fetchAll(db)
        }
    }

    private func ownWebhook(_ db: Database, id: String, caller: Caller) throws -> Webhook {
        guard let partyId = caller.partyId, let webhook = try Webhook.fetchOne(db, key: id), webhook.partyId == partyId else {
            throw DomainError.notFound("webhook")
        }
        return webhook
    }

    private static func webhookDescription(_ text: String?) throws -> String? {
        guard let text else { return nil }
        guard text.unicodeScalars.count <= 200, !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw DomainError.invalid(
                "invalid_webhook", "the description must be one line of at most 200 characters, without control characters")
        }
        return text.isEmpty ? nil : text
    }

    /// What the audit log keeps of a webhook's URL: its scheme and host (a URL's path or query may
    /// carry a secret, and the log is kept for good).
    static func auditedHost(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return "" }
        let rest = url[schemeEnd.upperBound...]
        return String(url[..<schemeEnd.upperBound]) + String(rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" })
    }
}

// MARK: - The sender's side

extension CleanRoomStore {
    /// Active webhooks of active parties that are not waiting to retry (`nextAttemptAt` after
    /// `time`) and have an entry of one of their party's collaborations after their cursor (entries
    /// of others make no webhook due), the longest waiting first.
    public func webhooksDue(at time: Int64) throws -> [Webhook] {
        try read { db in
            try Webhook.fetchAll(
                db,
                sql: """
                    SELECT webhook.* FROM webhook JOIN party ON party.id = webhook.partyId
                    WHERE webhook.status = 'active' AND party.status = 'active'
                      AND (webhook.nextAttemptAt IS NULL OR webhook.nextAttemptAt <= ?)
                      AND EXISTS (
                        SELECT 1 FROM auditEntry JOIN membership ON membership.collaborationId = auditEntry.collaborationId
                        WHERE membership.partyId = webhook.partyId AND auditEntry.seq > webhook.cursor)
                    ORDER BY webhook.cursor, webhook.id
                    """, arguments: [time])
        }
    }

    /// The earliest time after `time` a waiting webhook (active, of an active party) is due again, if any.
    public func nextWebhookRetry(after time: Int64) throws -> Int64? {
        try read { db in
            try Int64.fetchOne(
                db,
                sql: """
                    SELECT MIN(webhook.nextAttemptAt) FROM webhook JOIN party ON party.id = webhook.partyId
                    WHERE webhook.status = 'active' AND party.status = 'active' AND webhook.nextAttemptAt > ?
                    """, arguments: [time])
        }
    }

    /// What webhook `webhookId` has to do next, with its record as it is now: the first entry after
    /// its cursor of a collaboration its party is a member of now, and of a type it asked for
    /// (looking at `batch` entries at most). Nil when the webhook is gone, disabled or its party
    /// suspended.
    public func nextWebhookWork(webhookId: String, batch: Int = 500) throws -> (Webhook, WebhookWork)? {
        try read { db in
            guard let webhook = try Webhook.fetchOne(db, key: webhookId), webhook.status == .active,
                try Party.fetchOne(db, key: webhook.partyId)?.status == .active
            else { return nil }
            let head = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM auditEntry") ?? 0
            guard webhook.cursor < head else { return (webhook, .idle) }
            let entries = try AuditEntry.fetchAll(
                db,
                sql: """
                    SELECT * FROM auditEntry WHERE seq > ? AND seq <= ?
                      AND collaborationId IN (SELECT collaborationId FROM membership WHERE partyId = ?)
                    ORDER BY seq LIMIT ?
                    """, arguments: [webhook.cursor, head, webhook.partyId, batch])
            if let entry = entries.first(where: { webhook.wants($0.action) }) { return (webhook, .deliver(entry)) }
            return (webhook, .skip(to: entries.count == batch ? entries.last!.seq : head))
        }
    }

    /// Moves a webhook's cursor forward past entries it does not send (never backwards).
    public func advanceWebhookCursor(id: String, to seq: Int64) throws {
        try write { db in
            try db.execute(sql: "UPDATE webhook SET cursor = ? WHERE id = ? AND cursor < ?", arguments: [seq, id, seq])
        }
    }

    /// Records an attempt and what follows from it, in one transaction, judged on the webhook as it
    /// is now: a delivered event moves the cursor and clears the failures; a failed one schedules its
    /// retry at `retryAt`, or disables the webhook (audited) when it has failed for `disableAfter`
    /// seconds. A ping, or an attempt at a URL the webhook no longer has (changed, disabled or
    /// deleted meanwhile), only adds to the record (or nothing, for a deleted one).
    public func recordWebhookAttempt(_ delivery: WebhookDelivery, url: String, retryAt: Int64?, disableAfter: Int64) throws {
        try write { db in
            var delivery = delivery
            guard var webhook = try Webhook.fetchOne(db, key: delivery.webhookId) else { return }
            try delivery.insert(db)
            try db.execute(
                sql: """
                    DELETE FROM webhookDelivery WHERE webhookId = ? AND id <= (
                      SELECT id FROM webhookDelivery WHERE webhookId = ? ORDER BY id DESC LIMIT 1 OFFSET ?)
                    """, arguments: [webhook.id, webhook.id, Self.webhookDeliveriesKept])
            guard let seq = delivery.eventSeq, webhook.status == .active, webhook.url == url else { return }
            if delivery.succeeded {
                webhook.cursor = max(webhook.cursor, seq)
                webhook.failures = 0
                webhook.failingSince = nil
                webhook.nextAttemptAt = nil
            } else {
                webhook.failures += 1
                let failingSince = webhook.failingSince ?? delivery.time
                webhook.failingSince = failingSince
                webhook.nextAttemptAt = retryAt
                if delivery.time - failingSince >= disableAfter {
                    let days = (Double(disableAfter) / 86_400 * 10).rounded() / 10
                    let reason =
                        "every delivery failed for \(days.formatted()) day(s), the last with: \(delivery.error ?? "?"); "
                        + "fix the receiver, then enable the webhook again (events since the failure are kept)"
                    webhook.status = .disabled
                    webhook.disabledReason = reason
                    webhook.nextAttemptAt = nil
                    try appendAudit(
                        db, actor: nil, action: "webhook.disabled", subject: webhook.id,
                        details: .object([("party", .string(webhook.partyId)), ("reason", .string(reason))]))
                }
            }
            try webhook.update(db)
        }
    }
}
