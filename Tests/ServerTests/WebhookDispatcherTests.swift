import Crypto
import Foundation
import Logging
import Testing

@testable import CleanRoom
@testable import Server

/// The sender's decisions (when to retry, when to give up) and its wake-up signal; the whole path
/// over real sockets is `WebhookEndToEndTests`.
@Suite struct WebhookDispatcherTests {
    static func webhook(failingSince: Int64?) -> Webhook {
        Webhook(
            id: "wh-test", partyId: "p", url: "https://hooks.example.com/", events: [], description: nil, secret: "whsec_a",
            previousSecret: nil, previousSecretExpiresAt: nil, status: .active, disabledReason: nil, cursor: 0,
            failures: failingSince == nil ? 0 : 4, failingSince: failingSince, nextAttemptAt: nil, createdAt: 0, createdBy: "pr")
    }

    static let entry = AuditEntry(
        seq: 7, time: 1_800_000_000, actor: "system", actorPartyId: nil, action: "job.failed", collaborationId: "co",
        subject: "job-1", details: #"{"code":"x"}"#, prevHash: "", hash: "h", format: 2)

    @Test func failuresBackOffExponentiallyWithJitterAndGiveUpAfterTheLimit() throws {
        let fixture = try GovernanceFixture()
        let now = fixture.store.currentTime
        var configuration = WebhookDispatcher.Configuration()
        configuration.retryDelay = 10
        configuration.maxRetryDelay = 100
        configuration.disableAfter = 3600
        let dispatcher = WebhookDispatcher(store: fixture.store, configuration: configuration, logger: Logger(label: "test"))
        let event = WebhookEvent(entry: Self.entry, webhookId: "wh-test")
        let failed = WebhookDispatcher.AttemptResult(status: 503, error: "the receiver answered 503", durationMs: 5)
        for (attempt, ceiling) in [(1, 10.0), (2, 20), (3, 40), (4, 80), (5, 100), (30, 100)] {
            for _ in 0..<20 {
                let outcome = dispatcher.outcome(of: failed, event: event, webhook: Self.webhook(failingSince: now), attempt: attempt)
                let delay = Double(try #require(outcome.retryAt) - outcome.delivery.time)
                #expect(delay >= ceiling / 2 - 1 && delay <= ceiling + 1, "attempt \(attempt): \(delay)")
                #expect(outcome.disableReason == nil && outcome.delivery.error == failed.error && outcome.delivery.status == 503)
            }
        }
        let given = dispatcher.outcome(of: failed, event: event, webhook: Self.webhook(failingSince: now - 3600), attempt: 9)
        #expect(given.retryAt == nil)
        #expect(given.disableReason?.contains("the receiver answered 503") == true, "\(given.disableReason ?? "")")
        let ok = dispatcher.outcome(
            of: .init(status: 200, error: nil, durationMs: 1), event: event, webhook: Self.webhook(failingSince: now - 3600), attempt: 9)
        #expect(ok.retryAt == nil && ok.disableReason == nil && ok.delivery.succeeded)
    }

    @Test func theEventIsTheAuditEntryAndItsSignatureCoversTimeAndBody() throws {
        let event = WebhookEvent(entry: Self.entry, webhookId: "wh-test")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(event.body)) as? [String: Any])
        #expect(body["id"] as? String == "evt-7" && body["type"] as? String == "job.failed" && body["subject"] as? String == "job-1")
        #expect((body["details"] as? [String: Any])?["code"] as? String == "x")
        #expect((body["audit"] as? [String: Any])?["seq"] as? Int == 7)
        // RFC 8785: keys sorted, no spaces.
        #expect(String(decoding: event.body, as: UTF8.self).hasPrefix(#"{"actor":"system","actorPartyId":null,"audit":{"hash":"h","seq":7}"#))
        let headers = try event.headers(webhookId: "wh-test", secrets: ["whsec_new", "whsec_old"], time: 1_800_000_123, attempt: 2)
        let signature = try #require(headers.first { $0.name == "Cleanroom-Signature" }?.value)
        let parts = signature.split(separator: ",").map(String.init)
        #expect(parts.count == 3 && parts[0] == "t=1800000123")
        let signed = Array("1800000123.".utf8) + event.body
        for (part, secret) in zip(parts.dropFirst(), ["whsec_new", "whsec_old"]) {
            let mac = try Crypto.HMAC.authenticate(signed, key: Crypto.SecureBytes(Array(secret.utf8)), hash: .sha256)
            #expect(part == "v1=" + Crypto.Hex.encode(mac))
        }
        #expect(headers.contains { $0 == ("Cleanroom-Delivery-Attempt", "2") })
        #expect(headers.contains { $0 == ("Cleanroom-Event-Id", "evt-7") })
    }

    @Test func aSignalIsNeverLostAndAWaitEndsAtItsTimeout() async {
        let wake = WakeSignal()
        wake.signal()
        let start = ContinuousClock.now
        await wake.wait(timeout: 10)  // the signal came first: returns at once
        #expect(ContinuousClock.now - start < .seconds(1))
        await wake.wait(timeout: 0.2)  // no signal: the timeout
        #expect(ContinuousClock.now - start >= .milliseconds(200))
        async let waited: Void = wake.wait(timeout: 10)
        try? await Task.sleep(nanoseconds: 50_000_000)
        wake.signal()
        await waited
        #expect(ContinuousClock.now - start < .seconds(5))
    }
}
