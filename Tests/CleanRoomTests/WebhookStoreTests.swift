import Foundation
import Testing

@testable import CleanRoom

/// The webhook records and what the sender reads from the store: which entries a webhook gets, how
/// its cursor, failures and record of attempts move, and who may see or change it.
@Suite struct WebhookStoreTests {
    static let url = "https://hooks.example.com/cleanroom"

    /// Delivers everything `webhook` has, as a sender that always succeeds would; the types sent.
    static func drain(_ store: CleanRoomStore, _ webhookId: String, url: String = url) throws -> [String] {
        var sent: [String] = []
        while let (_, work) = try store.nextWebhookWork(webhookId: webhookId, batch: 3) {
            switch work {
            case .idle: return sent
            case .skip(let seq): try store.advanceWebhookCursor(id: webhookId, to: seq)
            case .deliver(let entry):
                sent.append(entry.action)
                try store.recordWebhookAttempt(
                    delivery(webhookId, entry.seq, store.currentTime), url: url, retryAt: nil, disableAfter: .max)
            }
        }
        return sent
    }

    static func delivery(_ webhookId: String, _ seq: Int64?, _ time: Int64, error: String? = nil, attempt: Int = 1) -> WebhookDelivery {
        WebhookDelivery(
            webhookId: webhookId, eventSeq: seq, eventId: "evt-\(seq ?? 0)", eventType: "x", attempt: attempt, time: time,
            durationMs: 3, status: error == nil ? 204 : 503, error: error)
    }

    @Test func aWebhookGetsOnlyItsCollaborationsEventsOfTheTypesItAskedForFromItsCreationOn() throws {
        let fixture = try StoreFixture()
        let (parties, policy) = try fixture.threePartyUnion()
        let outsider = try fixture.register("Outsider")
        let early = try fixture.store.propose(policy: policy, caller: parties[0].caller)  // before any webhook: not sent
        let all = try fixture.store.createWebhook(url: Self.url, events: [], description: nil, caller: parties[1].caller)
        let approvals = try fixture.store.createWebhook(
            url: Self.url, events: ["approval.*"], description: "reviews", caller: parties[2].caller)
        let foreign = try fixture.store.createWebhook(url: Self.url, events: [], description: nil, caller: outsider.caller)
        #expect(all.secret.hasPrefix("whsec_") && all.secret != approvals.secret && all.status == .active)

        var second = policy
        if case .object(var members) = second {
            members = members.map { $0.0 == "name" ? ("name", .string("second")) : $0 }
            second = .object(members)
        }
        let view = try fixture.store.propose(policy: second, caller: parties[0].caller)
        for party in parties {
            let expiresAt = fixture.clock.now + 86400
            _ = try fixture.store.submitApproval(
                collaborationId: view.collaboration.id, policyDigest: view.policy.digest, expiresAt: expiresAt,
                signature: try party.approve(view.policy.digest, expiresAt: expiresAt), caller: party.caller)
        }
        _ = try fixture.store.createDataset(name: "unrelated", columns: [DatasetColumn(name: "a", type: .integer)], caller: parties[1].caller)

        #expect(try Self.drain(fixture.store, all.id) == ["policy.proposed"] + Array(repeating: "approval.submitted", count: 3))
        #expect(try Self.drain(fixture.store, approvals.id) == Array(repeating: "approval.submitted", count: 3))
        #expect(try Self.drain(fixture.store, foreign.id) == [])
        // Each is now at the head: nothing more, and the cursor passed over what it did not send.
        let head = try #require(try fixture.store.auditEntries().last?.seq)
        for id in [all.id, approvals.id, foreign.id] {
            #expect(try fixture.store.nextWebhookWork(webhookId: id)?.1 == .idle)
            #expect(try fixture.store.webhook(id: id, caller: id == foreign.id ? outsider.caller : id == all.id ? parties[1].caller : parties[2].caller).cursor == head)
        }
        _ = early
    }

    @Test func failuresScheduleRetriesDisableWithAnAuditEntryAndSuccessClearsThem() throws {
        let fixture = try StoreFixture()
        let (parties, policy) = try fixture.threePartyUnion()
        let hook = try fixture.store.createWebhook(url: Self.url, events: [], description: nil, caller: parties[0].caller)
        _ = try fixture.store.propose(policy: policy, caller: parties[0].caller)
        guard case .deliver(let entry)? = try fixture.store.nextWebhookWork(webhookId: hook.id)?.1 else {
            Issue.record("nothing to deliver")
            return
        }
        let now = fixture.clock.now
        try fixture.store.recordWebhookAttempt(
            Self.delivery(hook.id, entry.seq, now, error: "the receiver answered 503"), url: Self.url, retryAt: now + 10,
            disableAfter: 10)
        var failing = try fixture.store.webhook(id: hook.id, caller: parties[0].caller)
        #expect(failing.failures == 1 && failing.failingSince == now && failing.nextAttemptAt == now + 10 && failing.cursor < entry.seq)
        // Not due until its retry time; the next retry is reported so the sender can sleep until then.
        #expect(try fixture.store.webhooksDue(at: now).isEmpty)
        #expect(try fixture.store.nextWebhookRetry(after: now) == now + 10)
        #expect(try fixture.store.webhooksDue(at: now + 10).map(\.id) == [hook.id])

        // A suspended party's webhook is neither due nor waited for.
        _ = try fixture.store.suspendParty(id: parties[0].id, caller: fixture.operatorCaller)
        #expect(try fixture.store.webhooksDue(at: now + 10).isEmpty)
        #expect(try fixture.store.nextWebhookRetry(after: now) == nil)
        #expect(try fixture.store.nextWebhookWork(webhookId: hook.id) == nil)
        try fixture.store.pool.write { db in try db.execute(sql: "UPDATE party SET status = 'active'") }

        // An attempt at a URL the webhook no longer has is recorded but judges nothing.
        try fixture.store.recordWebhookAttempt(
            Self.delivery(hook.id, entry.seq, now + 10, error: "refused", attempt: 2), url: "https://old.example.com/",
            retryAt: now + 99, disableAfter: 10)
        #expect(try fixture.store.webhook(id: hook.id, caller: parties[0].caller).nextAttemptAt == now + 10)

        // Failing for disableAfter seconds: disabled with the reason, audited; the same event waits for re-enabling.
        try fixture.store.recordWebhookAttempt(
            Self.delivery(hook.id, entry.seq, now + 10, error: "refused", attempt: 2), url: Self.url, retryAt: now + 30,
            disableAfter: 10)
        failing = try fixture.store.webhook(id: hook.id, caller: parties[0].caller)
        #expect(failing.status == .disabled && failing.failures == 2 && failing.nextAttemptAt == nil)
        #expect(failing.disabledReason?.hasPrefix("every delivery failed for") == true && failing.disabledReason?.contains("refused") == true)
        #expect(try fixture.store.auditEntries().last?.action == "webhook.disabled")
        #expect(try fixture.store.nextWebhookWork(webhookId: hook.id) == nil)
        let enabled = try fixture.store.updateWebhook(id: hook.id, changes: WebhookChanges(enabled: true), caller: parties[0].caller)
        #expect(enabled.status == .active && enabled.failures == 0 && enabled.nextAttemptAt == nil)
        #expect(try fixture.store.nextWebhookWork(webhookId: hook.id)?.1 == .deliver(entry))
        try fixture.store.recordWebhookAttempt(
            Self.delivery(hook.id, entry.seq, now + 20, attempt: 3), url: Self.url, retryAt: nil, disableAfter: 10)
        let healthy = try fixture.store.webhook(id: hook.id, caller: parties[0].caller)
        #expect(healthy.failures == 0 && healthy.failingSince == nil && healthy.cursor == entry.seq)
        // Attempts newest first.
        #expect(try fixture.store.webhookDeliveries(id: hook.id, caller: parties[0].caller).map(\.attempt) == [3, 2, 2, 1])
    }

    @Test func theRecordKeepsTheLastHundredAttemptsAndAPingMovesNothing() throws {
        let fixture = try StoreFixture()
        let party = try fixture.register("Alpha")
        let hook = try fixture.store.createWebhook(url: Self.url, events: [], description: nil, caller: party.caller)
        for i in 0..<130 {
            try fixture.store.recordWebhookAttempt(
                Self.delivery(hook.id, nil, fixture.clock.now + Int64(i), error: i % 2 == 0 ? nil : "x"), url: Self.url, retryAt: nil,
                disableAfter: 0)
        }
        let kept = try fixture.store.webhookDeliveries(id: hook.id, caller: party.caller, limit: 1000)
        #expect(kept.count == CleanRoomStore.webhookDeliveriesKept)
        #expect(kept.first?.time == fixture.clock.now + 129 && kept.last?.time == fixture.clock.now + 30)
        let after = try fixture.store.webhook(id: hook.id, caller: party.caller)
        #expect(after.failures == 0 && after.cursor == hook.cursor, "pings change no delivery state")
        // Deleting drops the record with it.
        try fixture.store.deleteWebhook(id: hook.id, caller: party.caller)
        let rows = try fixture.store.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM webhookDelivery") }
        #expect(rows == 0)
    }

    @Test func anotherPartysWebhookIsMissingAndEveryChangeIsChecked() throws {
        let fixture = try StoreFixture()
        let alpha = try fixture.register("Alpha")
        let beta = try fixture.register("Beta")
        let hook = try fixture.store.createWebhook(url: Self.url, events: ["job.*"], description: nil, caller: alpha.caller)
        for attempt in [
            { _ = try fixture.store.webhook(id: hook.id, caller: beta.caller) },
            { _ = try fixture.store.updateWebhook(id: hook.id, changes: WebhookChanges(enabled: false), caller: beta.caller) },
            { try fixture.store.deleteWebhook(id: hook.id, caller: beta.caller) },
            { _ = try fixture.store.rotateWebhookSecret(id: hook.id, caller: beta.caller) },
            { _ = try fixture.store.webhookDeliveries(id: hook.id, caller: beta.caller) },
            { _ = try fixture.store.webhook(id: hook.id, caller: fixture.operatorCaller) },
        ] as [() throws -> Void] {
            #expect(throws: DomainError.notFound("webhook")) { try attempt() }
        }
        #expect(try fixture.store.webhooks(caller: beta.caller).isEmpty)

        // Unknown types, overlong descriptions, more than ten webhooks: refused, nothing changed.
        #expect { try fixture.store.createWebhook(url: Self.url, events: ["job.finished"], description: nil, caller: alpha.caller) } throws: {
            ($0 as? DomainError)?.code == "invalid_webhook" && "\($0)".contains("job.finished")
        }
        #expect(throws: DomainError.self) {
            try fixture.store.updateWebhook(id: hook.id, changes: WebhookChanges(description: "a\nb"), caller: alpha.caller)
        }
        for i in 1..<CleanRoomStore.maxWebhooksPerParty {
            _ = try fixture.store.createWebhook(url: Self.url, events: [], description: "\(i)", caller: alpha.caller)
        }
        #expect { try fixture.store.createWebhook(url: Self.url, events: [], description: nil, caller: alpha.caller) } throws: {
            ($0 as? DomainError)?.code == "too_many_webhooks"
        }
        #expect(try fixture.store.webhook(id: hook.id, caller: alpha.caller).events == ["job.*"])

        // Rotation: the old secret signs beside the new one for the overlap, then alone no more.
        let rotated = try fixture.store.rotateWebhookSecret(id: hook.id, caller: alpha.caller)
        #expect(rotated.secret != hook.secret && rotated.previousSecret == hook.secret)
        #expect(rotated.signingSecrets(at: fixture.clock.now) == [rotated.secret, hook.secret])
        #expect(rotated.signingSecrets(at: fixture.clock.now + CleanRoomStore.webhookSecretOverlap) == [rotated.secret])
        let actions = try fixture.store.auditEntries().map(\.action)
        #expect(actions.filter { $0.hasPrefix("webhook.") } == ["webhook.created"] + Array(repeating: "webhook.created", count: 9) + ["webhook.secret_rotated"])
    }

    @Test func eventPatternsSelectTypes() throws {
        #expect(WebhookEvents.matches([], "job.failed"))
        #expect(WebhookEvents.matches(["*"], "job.failed"))
        #expect(WebhookEvents.matches(["job.*"], "job.failed"))
        #expect(!WebhookEvents.matches(["job.*"], "jobs.failed"))
        #expect(!WebhookEvents.matches(["job.failed"], "job.failed_twice"))
        #expect(try WebhookEvents.validate(["job.failed", "job.failed", "approval.*"]) == ["approval.*", "job.failed"])
        #expect(throws: DomainError.self) { try WebhookEvents.validate(["webhook.*"]) }
    }
}
