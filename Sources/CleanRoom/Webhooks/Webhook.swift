import GRDB

/// A party's registration of a URL that receives its collaborations' events, signed with a
/// secret only the server and the party hold (HMAC-SHA256, DESIGN §8).
///
/// The events are the audit log's entries of the collaborations the party is a member of when
/// the event is sent, exactly what `GET /v1/collaborations/{id}/audit` shows it; `cursor` is the
/// last entry handled, so delivery resumes where it stopped after a failure or a restart (at
/// least once, in order).
public struct Webhook: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "webhook"
    public enum Status: String, Codable, Sendable { case active, disabled }

    public var id: String
    public var partyId: String
    /// Checked by the server's target policy when set (https, not a private address).
    public var url: String
    /// Event types or `prefix.*` patterns; empty means every event.
    public var events: [String]
    public var description: String?
    /// The signing secret (`whsec_…`). Kept in the clear: HMAC needs it.
    public var secret: String
    /// The secret before the last rotation, which also signs until `previousSecretExpiresAt`.
    public var previousSecret: String?
    public var previousSecretExpiresAt: Int64?
    public var status: Status
    public var disabledReason: String?
    /// The audit sequence number of the last entry delivered or passed over.
    public var cursor: Int64
    /// Consecutive failed attempts, when the first of them was, and when to try again.
    public var failures: Int
    public var failingSince: Int64?
    public var nextAttemptAt: Int64?
    public var createdAt: Int64
    public var createdBy: String

    /// Whether an event of `type` is one this webhook asked for.
    public func wants(_ type: String) -> Bool {
        WebhookEvents.matches(events, type)
    }

    /// The secrets that sign a delivery at `time`: the current one, and the previous one while it lasts.
    public func signingSecrets(at time: Int64) -> [String] {
        if let previousSecret, let until = previousSecretExpiresAt, time < until { return [secret, previousSecret] }
        return [secret]
    }
}

/// One attempt to deliver an event (or a ping) to a webhook, kept for the party to inspect.
public struct WebhookDelivery: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "webhookDelivery"
    public var id: Int64?
    public var webhookId: String
    /// The audit entry delivered; nil for a ping.
    public var eventSeq: Int64?
    public var eventId: String
    public var eventType: String
    /// 1 for the first attempt at this event.
    public var attempt: Int
    public var time: Int64
    public var durationMs: Int
    /// The receiver's HTTP status, if it answered.
    public var status: Int?
    /// Why the attempt failed (nil when it succeeded).
    public var error: String?

    public var succeeded: Bool { error == nil }

    public init(
        id: Int64? = nil, webhookId: String, eventSeq: Int64?, eventId: String, eventType: String, attempt: Int, time: Int64,
        durationMs: Int, status: Int?, error: String?
    ) {
        self.id = id
        self.webhookId = webhookId
        self.eventSeq = eventSeq
        self.eventId = eventId
        self.eventType = eventType
        self.attempt = attempt
        self.time = time
        self.durationMs = durationMs
        self.status = status
        self.error = error
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// The event types a webhook can ask for: the audit actions recorded against a collaboration.
public enum WebhookEvents {
    /// Every type, with what it means (documented in docs/webhooks.md).
    public static let known: [String] = [
        "policy.proposed", "policy.revised", "approval.submitted", "approval.revoked",
        "job.start", "job.cancel_requested", "job.attesting", "job.key_release", "job.checkpoint_key", "job.running",
        "job.delivering", "job.output", "job.outputs_discarded", "job.succeeded", "job.failed", "job.cancelled",
        "output.download",
    ]

    /// The type of the synthetic event `POST /v1/webhooks/{id}/ping` sends.
    public static let ping = "webhook.ping"

    /// Whether `patterns` (types, `prefix.*`, or `*`; empty: all) select `type`.
    public static func matches(_ patterns: [String], _ type: String) -> Bool {
        patterns.isEmpty
            || patterns.contains { pattern in
                pattern == "*" || pattern == type
                    || (pattern.hasSuffix(".*") && type.hasPrefix(String(pattern.dropLast())))
            }
    }

    /// Checks a party's event list: each entry a known type or a pattern that selects at least one.
    public static func validate(_ patterns: [String]) throws -> [String] {
        guard patterns.count <= known.count else {
            throw DomainError.invalid("invalid_webhook", "at most \(known.count) event types")
        }
        for pattern in patterns where !known.contains(where: { matches([pattern], $0) }) {
            throw DomainError.invalid(
                "invalid_webhook",
                "unknown event type \"\(pattern.prefix(64))\": use one of \(known.joined(separator: ", ")), "
                    + "a prefix such as job.*, or leave events out for all of them")
        }
        return Array(Set(patterns)).sorted()
    }
}
