import CleanRoom
import Foundation
import HTTPServer

/// The webhook operations of the permission table (DESIGN §8), for a party's admins: register a
/// URL (the signing secret is shown once), list, show, change (URL, events, enabled), delete,
/// rotate the secret, send a ping, and read the recent delivery attempts.
struct WebhookRoutes {
    let store: CleanRoomStore
    /// Sends pings and decides which URLs are allowed; nil in servers (tests) that send none.
    let dispatcher: WebhookDispatcher?

    func handlers() -> [String: GovernanceRoutes.Operation] {
        let store = self.store
        let dispatcher = self.dispatcher
        @Sendable func caller(_ c: Caller?) throws -> Caller {
            guard let c else { throw APIAuthorizer.unauthenticated }
            return c
        }
        /// The URL as registered, once its form and where it resolves to are allowed.
        @Sendable func checkedURL(_ url: String) async throws -> String {
            do {
                if let dispatcher { return try await dispatcher.checkedTarget(url).url.string }
                let policy = WebhookTargetPolicy()
                return try await GovernanceRoutes.blocking { try policy.resolve(try policy.validate(url: url)) }.url.string
            } catch let error as WebhookTargetError {
                throw DomainError(.invalidInput, "invalid_webhook_url", error.message)
            }
        }
        return [
            "createWebhook": { request, c in
                let caller = try caller(c)
                guard let body = try await GovernanceRoutes.decode(CreateWebhookRequest.self, request) else { throw DomainError.badBody }
                let url = try await checkedURL(body.url)
                let webhook = try await GovernanceRoutes.blocking {
                    try store.createWebhook(url: url, events: body.events ?? [], description: body.description, caller: caller)
                }
                return try Response.json(WebhookBody(webhook, showingSecret: true), status: .created)
            },
            "listWebhooks": { _, c in
                let caller = try caller(c)
                return try Response.json(ItemList(items: try await GovernanceRoutes.blocking { try store.webhooks(caller: caller) }.map {
                    WebhookBody($0)
                }))
            },
            "getWebhook": { request, c in
                let caller = try caller(c)
                let id = try request.pathParameters.require("webhookId")
                return try Response.json(WebhookBody(try await GovernanceRoutes.blocking { try store.webhook(id: id, caller: caller) }))
            },
            "updateWebhook": { request, c in
                let caller = try caller(c)
                let id = try request.pathParameters.require("webhookId")
                guard let body = try await GovernanceRoutes.decode(UpdateWebhookRequest.self, request) else { throw DomainError.badBody }
                var changes = WebhookChanges(events: body.events, description: body.description, enabled: body.enabled)
                if let url = body.url { changes.url = try await checkedURL(url) }
                let checked = changes
                let webhook = try await GovernanceRoutes.blocking { try store.updateWebhook(id: id, changes: checked, caller: caller) }
                return try Response.json(WebhookBody(webhook))
            },
            "deleteWebhook": { request, c in
                let caller = try caller(c)
                let id = try request.pathParameters.require("webhookId")
                try await GovernanceRoutes.blocking { try store.deleteWebhook(id: id, caller: caller) }
                return try Response.json(["id": id, "status": "deleted"])
            },
            "rotateWebhookSecret": { request, c in
                let caller = try caller(c)
                let id = try request.pathParameters.require("webhookId")
                let webhook = try await GovernanceRoutes.blocking { try store.rotateWebhookSecret(id: id, caller: caller) }
                return try Response.json(WebhookBody(webhook, showingSecret: true))
            },
            "pingWebhook": { request, c in
                let caller = try caller(c)
                let id = try request.pathParameters.require("webhookId")
                guard let dispatcher else {
                    return Response.errorJSON(
                        status: .serviceUnavailable, code: "webhooks_unavailable", message: "this server sends no webhooks")
                }
                let webhook = try await GovernanceRoutes.blocking { try store.webhook(id: id, caller: caller) }
                do {
                    return try Response.json(WebhookDeliveryBody(try await dispatcher.ping(webhook)))
                } catch is WebhookDispatcher.PingInProgress {
                    throw DomainError(
                        .conflict, "ping_in_progress", "another ping of your party's is under way: wait for its answer first")
                }
            },
            "listWebhookDeliveries": { request, c in
                let caller = try caller(c)
                let id = try request.pathParameters.require("webhookId")
                let deliveries = try await GovernanceRoutes.blocking { try store.webhookDeliveries(id: id, caller: caller) }
                return try Response.json(ItemList(items: deliveries.map(WebhookDeliveryBody.init)))
            },
        ]
    }
}

struct CreateWebhookRequest: Decodable {
    let url: String
    let events: [String]?
    let description: String?
}

struct UpdateWebhookRequest: Decodable {
    let url: String?
    let events: [String]?
    let description: String?
    let enabled: Bool?
}

/// A webhook as its party sees it; `secret` only in the answers that make one.
struct WebhookBody: Encodable {
    let id, partyId, url, status, createdAt, createdBy: String
    let events: [String]
    let description, disabledReason: String?
    /// The audit sequence number of the last event delivered or passed over.
    let cursor: Int64
    let failures: Int
    let failingSince, nextAttemptAt, previousSecretExpiresAt: String?
    let secret: String?

    init(_ webhook: Webhook, showingSecret: Bool = false) {
        id = webhook.id
        partyId = webhook.partyId
        url = webhook.url
        status = webhook.status.rawValue
        createdAt = RFC3339.format(webhook.createdAt)
        createdBy = webhook.createdBy
        events = webhook.events
        description = webhook.description
        disabledReason = webhook.disabledReason
        cursor = webhook.cursor
        failures = webhook.failures
        failingSince = webhook.failingSince.map(RFC3339.format)
        nextAttemptAt = webhook.nextAttemptAt.map(RFC3339.format)
        previousSecretExpiresAt = webhook.previousSecretExpiresAt.map(RFC3339.format)
        secret = showingSecret ? webhook.secret : nil
    }
}

struct WebhookDeliveryBody: Encodable {
    let eventId, eventType, time: String
    let eventSeq: Int64?
    let attempt, durationMs: Int
    let status: Int?
    let error: String?
    let succeeded: Bool

    init(_ delivery: WebhookDelivery) {
        eventId = delivery.eventId
        eventType = delivery.eventType
        time = RFC3339.format(delivery.time)
        eventSeq = delivery.eventSeq
        attempt = delivery.attempt
        durationMs = delivery.durationMs
        status = delivery.status
        error = delivery.error
        succeeded = delivery.succeeded
    }
}
