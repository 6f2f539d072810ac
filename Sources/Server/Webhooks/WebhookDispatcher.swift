import AWS
import CleanRoom
import Foundation
import GRDB
import Logging
import Synchronization

/// Sends every party's webhook events (DESIGN §8): the audit entries of its collaborations, in
/// order, at least once, each signed (`WebhookEvent`).
///
/// - Woken by every commit that appends to the audit log (a GRDB region observation), by each
///   finished turn, and by a timer for retries; so an event leaves within milliseconds of its
///   transaction when a slot is free.
/// - One webhook's events go one at a time, in order. Up to `concurrency` webhooks are served at
///   once, at most one per party, each for a turn of at most 20 events or 2 seconds: one party's
///   slow receivers (or many webhooks) delay only that party's events.
/// - The cursor moves only after a 2xx, in the database: a crash or restart resends at most the
///   event in flight (receivers deduplicate by `Cleanroom-Event-Id`).
/// - A failure is retried with exponential backoff (`retryDelay` doubling to `maxRetryDelay`, with
///   jitter); a webhook whose every attempt failed for `disableAfter` seconds is disabled (audited).
/// - Every attempt resolves the host again on threads of its own, within `timeout`, checks the
///   addresses (`WebhookTargetPolicy`) and pins the connection to the address checked: no redirect,
///   no proxy, no DNS rebinding. Pings use their own connections, one per party at a time.
public final class WebhookDispatcher: Sendable {
    /// Delivery settings (`--webhook-…` options).
    public struct Configuration: Sendable {
        public var target = WebhookTargetPolicy()
        /// Seconds before the first retry (jittered down to half); each further one waits up to twice
        /// as long, up to `maxRetryDelay`.
        public var retryDelay: Double = 10
        public var maxRetryDelay: Double = 3600
        /// A webhook failing for this long (seconds) is disabled.
        public var disableAfter: Int64 = 3 * 86_400
        /// Resolving the host, and then the whole exchange, connection included (each).
        public var timeout: Double = 10
        /// Webhooks served at once (at most one per party).
        public var concurrency = 4
        /// The CA bundle receivers' certificates are checked against (Debian's libcurl also keeps
        /// the system's /etc/ssl/certs beside it).
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

    /// Events sent in one turn of a webhook at most, and the time after which it gives its slot up.
    static let turnEvents = 20
    static let turnSeconds = 2.0

    let store: CleanRoomStore
    let configuration: Configuration
    let client: HTTPClient
    let pingClient: HTTPClient
    let resolver: BlockingWorkers
    let logger: Logger
    private let wake = WakeSignal()
    private let state = Mutex<State>(State())

    private struct State {
        var loop: Task<Void, Never>?
        var observer: AnyDatabaseCancellable?
        /// The turns under way: webhook id → its party and task.
        var turns: [String: (party: String, task: Task<Void, Never>)] = [:]
        /// Parties with a ping under way.
        var pinging: Set<String> = []
    }

    public init(store: CleanRoomStore, configuration: Configuration = Configuration(), logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        var http = HTTPClient.Configuration()
        http.connectTimeout = min(5, configuration.timeout)
        http.totalTimeout = configuration.timeout
        http.maxConcurrentTransfers = configuration.concurrency  // one per turn: a turn never waits for a thread
        http.caBundlePath = configuration.caBundlePath
        http.retry = .none
        client = HTTPClient(configuration: http)
        http.maxConcurrentTransfers = 2
        pingClient = HTTPClient(configuration: http)
        resolver = BlockingWorkers(threads: configuration.concurrency + 2, name: "webhook-dns")
    }

    /// Starts sending (and watching the audit log for new entries).
    public func start() {
        let wake = self.wake
        let observation = DatabaseRegionObservation(tracking: Table(AuditEntry.databaseTableName))
        let observer = observation.start(
            in: store.pool, onError: { [logger] in logger.error("webhook: watching the audit log failed: \($0)") },
            onChange: { _ in wake.signal() })
        let loop = Task { await self.run() }
        state.withLock {
            $0.loop = loop
            $0.observer = observer
        }
    }

    /// Stops sending; attempts in flight are abandoned (and sent again after the next start).
    public func stop() async {
        let (loop, observer) = state.withLock { s in
            defer { (s.loop, s.observer) = (nil, nil) }
            return (s.loop, s.observer)
        }
        observer?.cancel()
        loop?.cancel()
        wake.signal()
        await loop?.value
    }

    private func run() async {
        while !Task.isCancelled {
            do {
                let now = store.currentTime
                let due = try await Self.blocking { [store] in try store.webhooksDue(at: now) }
                startTurns(due)
                let retry = try await Self.blocking { [store] in try store.nextWebhookRetry(after: now) }
                // Poll anyway now and then: a change the observation cannot see (another process) is not lost.
                let wait = retry.map { Double(max(0, $0 - store.currentTime)) + 0.05 } ?? 30
                await wake.wait(timeout: min(wait, 30))
            } catch {
                logger.error("webhook: reading what to send failed; trying again in 5 s: \(error)")
                await wake.wait(timeout: 5)
            }
        }
        let turns = state.withLock { s in
            defer { s.turns = [:] }
            return s.turns.values.map(\.task)
        }
        for turn in turns { turn.cancel() }
        for turn in turns { await turn.value }
    }

    /// Starts a turn for each due webhook whose party has none under way, while slots are free.
    private func startTurns(_ due: [Webhook]) {
        state.withLock { s in
            for webhook in due where s.turns.count < configuration.concurrency {
                guard s.turns[webhook.id] == nil, !s.turns.values.contains(where: { $0.party == webhook.partyId }) else { continue }
                let id = webhook.id
                let task = Task {
                    await self.turn(id)
                    self.state.withLock { _ = $0.turns.removeValue(forKey: id) }
                    self.wake.signal()
                }
                s.turns[id] = (webhook.partyId, task)
            }
        }
    }

    /// Sends one webhook's events until it is caught up, an attempt fails, or its turn is over.
    private func turn(_ webhookId: String) async {
        let started = ContinuousClock.now
        do {
            for _ in 0..<Self.turnEvents where ContinuousClock.now - started < .seconds(Self.turnSeconds) {
                guard !Task.isCancelled,
                    let (webhook, work) = try await Self.blocking({ [store] in try store.nextWebhookWork(webhookId: webhookId) })
                else { return }
                switch work {
                case .idle: return
                case .skip(let seq): try await Self.blocking { [store] in try store.advanceWebhookCursor(id: webhookId, to: seq) }
                case .deliver(let entry):
                    let event = WebhookEvent(entry: entry, webhookId: webhook.id)
                    let attempt = webhook.failures + 1
                    let result = await send(event, to: webhook, attempt: attempt, using: client)
                    guard !Task.isCancelled else { return }  // stopping: not the receiver's failure; sent again after the start
                    try await record(result, of: event, to: webhook, attempt: attempt)
                    guard result.succeeded else {
                        logger.warning(
                            "webhook delivery failed",
                            metadata: [
                                "webhook": "\(webhook.id)", "party": "\(webhook.partyId)", "event": "\(event.id)",
                                "attempt": "\(attempt)", "error": "\(result.error ?? "")",
                            ])
                        return
                    }
                }
            }
        } catch {
            logger.error("webhook: recording a delivery failed: \(error)", metadata: ["webhook": "\(webhookId)"])
        }
    }

    /// Records an attempt; a failed event is retried after the backoff (or the webhook disabled, as
    /// the store decides on the webhook as it is then).
    /// A ping's attempt only joins the record.
    @discardableResult
    private func record(_ result: AttemptResult, of event: WebhookEvent, to webhook: Webhook, attempt: Int) async throws
        -> WebhookDelivery
    {
        let delivery = WebhookDelivery(
            webhookId: webhook.id, eventSeq: event.seq, eventId: event.id, eventType: event.type, attempt: attempt,
            time: store.currentTime, durationMs: result.durationMs, status: result.status, error: result.error)
        let retryAt = result.succeeded || event.seq == nil ? nil : delivery.time + retryDelay(attempt: attempt)
        let disableAfter = configuration.disableAfter
        try await Self.blocking { [store] in
            try store.recordWebhookAttempt(delivery, url: webhook.url, retryAt: retryAt, disableAfter: disableAfter)
        }
        return delivery
    }

    /// Seconds before retry number `attempt` (1-based): up to `retryDelay · 2^(attempt−1)`, capped at
    /// `maxRetryDelay`, jittered down to half.
    func retryDelay(attempt: Int) -> Int64 {
        let ceiling = min(configuration.maxRetryDelay, configuration.retryDelay * pow(2, Double(min(max(attempt, 1) - 1, 30))))
        return Int64(Double.random(in: (ceiling / 2)...max(ceiling, 0.001)).rounded(.up))
    }

    /// A ping is refused while another of the same party is under way (each may take `timeout` twice).
    public struct PingInProgress: Error {}

    /// Sends a ping to `webhook` now, records the attempt, and says how it went.
    public func ping(_ webhook: Webhook) async throws -> WebhookDelivery {
        guard state.withLock({ $0.pinging.insert(webhook.partyId).inserted }) else { throw PingInProgress() }
        defer { _ = state.withLock { $0.pinging.remove(webhook.partyId) } }
        let event = WebhookEvent(pingFor: webhook.id, time: store.currentTime, nonce: UUID().uuidString.lowercased())
        let result = await send(event, to: webhook, attempt: 1, using: pingClient)
        return try await record(result, of: event, to: webhook, attempt: 1)
    }

    /// The URL's form checked, its host resolved (on the resolver's threads, within `timeout`) and
    /// every address allowed.
    func checkedTarget(_ url: String) async throws -> ResolvedWebhookTarget {
        let policy = configuration.target
        let parsed = try policy.validate(url: url)
        let timeout = configuration.timeout
        return try await resolver.run(
            deadline: timeout,
            timedOut: { WebhookTargetError(.unresolvable, "resolving \(parsed.host) took longer than \(Int(timeout)) s") }
        ) { try policy.resolve(parsed) }
    }

    /// One POST of `event`, with the target checked and pinned.
    func send(_ event: WebhookEvent, to webhook: Webhook, attempt: Int, using client: HTTPClient) async -> AttemptResult {
        let started = ContinuousClock.now
        func elapsed() -> Int {
            let d = ContinuousClock.now - started
            return Int(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
        }
        do {
            let target = try await checkedTarget(webhook.url)
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

/// A wake-up call that is never lost: a signal before the wait ends the next wait at once. A
/// signal also cancels the waiting timer, so frequent signals leave no sleeping tasks behind.
final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
        var timer: Task<Void, Never>?
    }

    private let state = Mutex<State>(State())

    func signal() {
        let (waiter, timer) = state.withLock { s -> (CheckedContinuation<Void, Never>?, Task<Void, Never>?) in
            guard let w = s.waiter else {
                s.pending = true
                return (nil, nil)
            }
            defer { (s.waiter, s.timer) = (nil, nil) }
            return (w, s.timer)
        }
        timer?.cancel()
        waiter?.resume()
    }

    /// Returns after a signal or `timeout` seconds, whichever comes first.
    func wait(timeout: Double) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            state.withLock { s in
                if s.pending {
                    s.pending = false
                    return continuation.resume()
                }
                s.waiter = continuation
                s.timer = Task { [weak self] in
                    try? await Task.sleep(nanoseconds: UInt64(max(0, timeout) * 1e9))
                    guard !Task.isCancelled else { return }
                    self?.signal()
                }
            }
        }
    }
}
