import CleanRoom
import Crypto

/// One webhook request's body and headers: an audit entry (or a ping) as JSON, signed with the
/// webhook's secret(s).
///
/// `Cleanroom-Signature: t=TIME,v1=HEX[,v1=HEX]`, where each HEX is HMAC-SHA256 under one secret
/// (its UTF-8 bytes, `whsec_` included) of `TIME + "." + body`: the current secret, and during a
/// rotation's overlap the previous one too. Receivers check any `v1` against their secret in
/// constant time and refuse a `t` more than five minutes away from their clock (replays).
struct WebhookEvent: Sendable {
    let id: String
    let type: String
    /// The audit entry delivered; nil for a ping.
    let seq: Int64?
    /// Canonical JSON (RFC 8785), so the bytes signed are the bytes sent.
    let body: [UInt8]

    /// The event for an audit entry.
    init(entry: AuditEntry, webhookId: String) {
        // The hash tells this entry from another that took its number after a restore of an older backup.
        id = "evt-\(entry.seq)-\(entry.hash.prefix(12))"
        type = entry.action
        seq = entry.seq
        let details = (try? JSONParser.parse(entry.details)) ?? .object([])
        func optional(_ s: String?) -> JSONValue { s.map(JSONValue.string) ?? .null }
        body = CanonicalJSON.serialize(
            .object([
                ("id", .string(id)), ("type", .string(type)), ("time", .string(RFC3339.format(entry.time))),
                ("webhookId", .string(webhookId)), ("collaborationId", optional(entry.collaborationId)),
                ("subject", optional(entry.subject)), ("actor", .string(entry.actor)),
                ("actorPartyId", optional(entry.actorPartyId)), ("details", details),
                ("audit", .object([("seq", .number(Double(entry.seq))), ("hash", .string(entry.hash))])),
            ]))
    }

    /// The ping `POST /v1/webhooks/{id}/ping` sends: proves the URL and the secret work.
    init(pingFor webhookId: String, time: Int64, nonce: String) {
        id = "ping-\(nonce)"
        type = WebhookEvents.ping
        seq = nil
        body = CanonicalJSON.serialize(
            .object([
                ("id", .string(id)), ("type", .string(type)), ("time", .string(RFC3339.format(time))),
                ("webhookId", .string(webhookId)),
            ]))
    }

    /// The request headers for sending this event at `time` (Unix seconds) signed by `secrets`.
    func headers(webhookId: String, secrets: [String], time: Int64, attempt: Int) throws -> [(name: String, value: String)] {
        [
            ("Content-Type", "application/json"),
            ("User-Agent", "cleanroomd-webhook/1"),
            ("Cleanroom-Webhook-Id", webhookId),
            ("Cleanroom-Event-Id", id),
            ("Cleanroom-Event-Type", type),
            ("Cleanroom-Delivery-Attempt", String(attempt)),
            ("Cleanroom-Signature", try Self.signature(body: body, secrets: secrets, time: time)),
        ]
    }

    /// The `Cleanroom-Signature` value for `body` sent at `time`.
    static func signature(body: [UInt8], secrets: [String], time: Int64) throws -> String {
        let signed = Array("\(time).".utf8) + body
        let macs = try secrets.map { secret in
            "v1=" + Hex.encode(try HMAC.authenticate(signed, key: SecureBytes(Array(secret.utf8)), hash: .sha256))
        }
        return (["t=\(time)"] + macs).joined(separator: ",")
    }
}
