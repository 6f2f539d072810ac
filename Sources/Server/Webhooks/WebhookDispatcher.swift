import AWS
import CleanRoom
import Foundation
import GRDB
import Logging
import Synchronization

/// Sends every party's webhook events (DESIGN §8): the audit entries of its collaborations, in
/// order, at least once, each signed (`WebhookEvent`).
///
/// - Woken by every commit that appends to the audit log (a GRDB region observation), and by a
///   timer for retries; so an event leaves within milliseconds of its transaction.
/// - One webhook's events go one at a time, in order; up to `concurrency` webhooks at once, so one
///   slow receiver delays only its own events.
/// - The cursor moves only after a 2xx, in the database: a crash or restart resends at most the
///   event in flight (receivers deduplicate by `Cleanroom-Event-Id`).
/// - A failure is retried with exponential backoff (`retryDelay` doubling to `maxRetryDelay`, with
///   jitter); a webhook whose every attempt failed for `disableAfter` seconds is disabled (audited).
/// - Every attempt resolves the host again and checks the addresses (`WebhookTargetPolicy`), and the
///   connection is pinned to the address checked: no redirect, no proxy, no DNS rebinding.
public final class WebhookDispatcher: Sendable {
    /// Delivery settings (`--webhook-…` options).
    public struct Configuration: Sendable {
        public var target = WebhookTargetPolicy()
        /// Seconds before the first retry; each further one waits twice as long, up to `maxRetryDelay`.
        public var retryDelay: Double = 10
        public var maxRetryDelay: Double = 3600
        /// A webhook failing for this long (seconds) is disabled.
        public var disableAfter: Int64 = 3 * 86_400
        /// The whole exchange, connection included.
        public var timeout: Double = 10
        /// Webhooks served at once.
        public var concurrency = 4
        /// The CA bundle receivers' certificates are checked against, instead of the system's roots.
        public var caBundlePath: String?
        public init() {}
    }

    /// How one attempt ended.
    public struct AttemptResult: Sendable, Equatable {
        public var status: Int?
        public var error: String?
        public var durationMs: Int
        public var succeeded: Bool { error == nil }
    }

    let store: CleanRoomStore
    let configuration: Configuration
    let client: HTTPClient
    let logger: Logger
    private let wake = WakeSignal()
    private let state = Mutex<(task: Task<Void, Never>?, observer: AnyDatabaseCancellable?)>((nil, nil))

    public init(store: CleanRoomStore, configuration: Configuration = Configuration(), logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        var http = HTTPClient.Configuration()
        http.connectTimeout = min(5, configuration.timeout)
        http.totalTimeout = configuration.timeout
        http.maxConcurrentTransfers = configuration.concurrency + 1  // one more for pings
        http.caBundlePath = configuration.caBundlePath
        http.retry = .none
        client = HTTPClient(configuration: http)
    }

    /// Starts sending (and watching the audit log for new entries).
    public func start() {
        let wake = self.wake
        let observation = DatabaseRegionObservation(tracking: Table(AuditEntry.databaseTableName))
        let observer = observation.start(
            in: store.pool, onError: { [logger] in logger.error("webhook: watching the audit log failed: \($0)") },
            onChange: { _ in wake.signal() })
        let task = Task { await self.run() }
        state.withLock { $0 = (task, observer) }
    }

    /// Stops sending; an attempt in flight is abandoned (and sent again after the next start).
    public func stop() async {
        let (task, observer) = state.withLock { s in
            defer { s = (nil, nil) }
            return s
        }
        observer?.cancel()
        task?.cancel()
        wake.signal()
        await task?.value
    }

    private func run() async {
        while !Task.isCancelled {
            do {
                let now = store.currentTime
                let due = try await Self.blocking { [store] in try store.webhooksDue(at: now) }
                await withTaskGroup(of: Void.self) { group in
                    var pending = due.makeIterator()
                    for _ in 0..<configuration.concurrency {
                        guard let webhook = pending.next() else { break }
                        group.addTask { await self.drain(webhook.id) }
                    }
                    while await group.next() != nil {
                        guard let webhook = pending.next() else { continue }
                        group.addTask { await self.drain(webhook.id) }
                    }
                }
                let retry = try await Self.blocking { [store] in try store.nextWebhookRetry(after: now) }
                // Poll anyway now and then: a change the observation cannot see (another process) is not lost.
                let wait = retry.map { Double(max(0, $0 - store.currentTime)) + 0.05 } ?? 30
                await wake.wait(timeout: min(wait, 30))
            } catch {
                logger.error("webhook: reading what to send failed; trying again in 5 s: \(error)")
                await wake.wait(timeout: 5)
            }
        }
    }

    /// Sends one webhook's events until it is caught up, an attempt fails, or 100 were sent (so
    /// others get their turn).
    private func drain(_ webhookId: String) async {
        do {
            for _ in 0..<100 {
                guard !Task.isCancelled,
                    let (webhook, work) = try await Self.blocking({ [store] in try store.nextWebhookWork(webhookId: webhookId) })
                else { return }
                switch work {
                case .idle: return
                case .skip(let seq): try await Self.blocking { [store] in try store.advanceWebhookCursor(id: webhookId, to: seq) }
                case .deliver(let entry):
                    let event = WebhookEvent(entry: entry, webhookId: webhook.id)
                    let attempt = webhook.failures + 1
                    let result = await send(event, to: webhook, attempt: attempt)
                    guard !Task.isCancelled else { return }  // stopping: not the receiver's failure; sent again after the start
                    let outcome = self.outcome(of: result, event: event, webhook: webhook, attempt: attempt)
                    try await Self.blocking { [store] in try store.recordWebhookAttempt(outcome) }
                    guard result.succeeded else {
                        logger.warning(
                            "webhook delivery failed",
                            metadata: [
                                "webhook": "\(webhook.id)", "party": "\(webhook.partyId)", "event": "\(event.id)",
                                "attempt": "\(attempt)", "error": "\(result.error ?? "")",
                                "disabled": "\(outcome.disableReason != nil)",
                            ])
                        return
                    }
                }
            }
            wake.signal()  // more to send: come back after the others
        } catch {
            logger.error("webhook: recording a delivery failed: \(error)", metadata: ["webhook": "\(webhookId)"])
        }
    }

    /// What follows from an attempt: on failure the retry time, or disabling the webhook.
    func outcome(of result: AttemptResult, event: WebhookEvent, webhook: Webhook, attempt: Int) -> WebhookAttemptOutcome {
        let now = store.currentTime
        let delivery = WebhookDelivery(
            id: nil, webhookId: webhook.id, eventSeq: event.seq, eventId: event.id, eventType: event.type, attempt: attempt,
            time: now, durationMs: result.durationMs, status: result.status, error: result.error)
        guard !result.succeeded, event.seq != nil else { return WebhookAttemptOutcome(delivery: delivery) }
        let failingSince = webhook.failingSince ?? now
        if now - failingSince >= configuration.disableAfter {
            let days = Double(configuration.disableAfter) / 86_400
            return WebhookAttemptOutcome(
                delivery: delivery,
                disableReason:
                    "every delivery failed for \(days.formatted()) day(s), the last with: \(result.error ?? "?"); "
                    + "fix the receiver, then enable the webhook again (events since the failure are kept)")
        }
        let ceiling = min(configuration.maxRetryDelay, configuration.retryDelay * pow(2, Double(min(attempt - 1, 30))))
        let delay = Double.random(in: (ceiling / 2)...max(ceiling, 0.001))
        return WebhookAttemptOutcome(delivery: delivery, retryAt: now + Int64(delay.rounded(.up)))
    }

    /// Sends a ping to `webhook` now, records the attempt, and says how it went.
    public func ping(_ webhook: Webhook) async throws -> WebhookDelivery {
        let nonce = UUID().uuidString.lowercased()
        let event = WebhookEvent(pingFor: webhook.id, time: store.currentTime, nonce: nonce)
        let result = await send(event, to: webhook, attempt: 1)
        let outcome = self.outcome(of: result, event: event, webhook: webhook, attempt: 1)
        try await Self.blocking { [store] in try store.recordWebhookAttempt(outcome) }
        return outcome.delivery
    }

    /// One POST of `event`, with the target checked and pinned.
    func send(_ event: WebhookEvent, to webhook: Webhook, attempt: Int) async -> AttemptResult {
        let started = ContinuousClock.now
        func elapsed() -> Int {
            let d = ContinuousClock.now - started
            return Int(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
        }
        do {
            let policy = configuration.target
            let target = try await Self.blocking { try policy.resolve(try policy.validate(url: webhook.url)) }
            let time = store.currentTime
            var request = HTTPClientRequest(
                method: "POST", url: target.url.string,
                headers: try event.headers(
                    webhookId: webhook.id, secrets: webhook.signingSecrets(at: time), time: time, attempt: attempt),
                body: .bytes(event.body), idempotent: false)
            request.resolve = target.curlResolveEntries
            request.bypassProxy = true
            let response = try await client.send(request)
            _ = try? await response.body.collect(limit: 64 << 10)  // read (and drop) what the receiver says
            switch response.status {
            case 200..<300: return AttemptResult(status: response.status, error: nil, durationMs: elapsed())
            case 300..<400:
                return AttemptResult(
                    status: response.status,
                    error: "the receiver answered \(response.status), a redirect, which is not followed: register the final URL",
                    durationMs: elapsed())
            default:
                return AttemptResult(
                    status: response.status, error: "the receiver answered \(response.status)", durationMs: elapsed())
            }
        } catch let error as WebhookTargetError {
            return AttemptResult(status: nil, error: error.message, durationMs: elapsed())
        } catch let error as HTTPClientError {
            return AttemptResult(status: nil, error: "\(error.code.rawValue): \(error.message)", durationMs: elapsed())
        } catch {
            return AttemptResult(status: nil, error: "\(error)", durationMs: elapsed())
        }
    }

    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await GovernanceRoutes.blocking(body)
    }
}

/// A wake-up call that is never lost: a signal before the wait ends the next wait at once.
final class WakeSignal: Sendable {
    private let state = Mutex<(pending: Bool, waiter: CheckedContinuation<Void, Never>?, generation: Int)>((false, nil, 0))

    func signal() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let w = s.waiter else {
                s.pending = true
                return nil
            }
            s.waiter = nil
            return w
        }
        waiter?.resume()
    }

    /// Returns after a signal or `timeout` seconds, whichever comes first.
    func wait(timeout: Double) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let generation = state.withLock { s -> Int? in
                if s.pending {
                    s.pending = false
                    return nil
                }
                s.generation += 1
                s.waiter = continuation
                return s.generation
            }
            guard let generation else { return continuation.resume() }
            Task {
                try? await Task.sleep(nanoseconds: UInt64(max(0, timeout) * 1e9))
                let waiter = self.state.withLock { s -> CheckedContinuation<Void, Never>? in
                    guard s.generation == generation, let w = s.waiter else { return nil }
                    s.waiter = nil
                    return w
                }
                waiter?.resume()
            }
        }
    }
}
