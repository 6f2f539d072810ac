import Enclave
import Foundation

/// One event of a job's live feed: a state change or an enclave progress report.
public enum JobEvent: Sendable, Equatable {
    case state(JobState, JobFailure?)
    case progress(ProgressEvent)

    /// The Server-Sent Events frame for this event (`event: state|progress`, JSON `data`).
    public func serverSentEvent(id: Int) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let name: String
        let data: Data
        switch self {
        case .state(let state, let failure):
            name = "state"
            struct Body: Encodable {
                var state: String
                var error: [String: String]?
            }
            data =
                (try? encoder.encode(
                    Body(state: state.rawValue, error: failure.map { ["code": $0.code, "message": $0.message] })))
                ?? Data()
        case .progress(let event):
            name = "progress"
            data = (try? encoder.encode(event)) ?? Data()
        }
        // JSON never contains a raw newline, so one data line suffices.
        return "id: \(id)\nevent: \(name)\ndata: \(String(decoding: data, as: UTF8.self))\n\n"
    }

    /// The event without a training loss (for a party not granted the metrics).
    public var withoutLoss: JobEvent {
        guard case .progress(var event) = self, event.loss != nil else { return self }
        event.loss = nil
        return .progress(event)
    }

    var isTerminal: Bool {
        if case .state(let state, _) = self { return state.isTerminal }
        return false
    }
}

/// Fans a job's events out to any number of subscribers (SSE connections), replaying what
/// happened before they subscribed. Memory per job is bounded: the replay keeps every state
/// change and the latest `progressHistory` progress events.
public final class JobProgressHub: @unchecked Sendable {
    private struct Feed {
        var events: [(Int, JobEvent)] = []
        var nextID = 1
        var subscribers: [UUID: AsyncStream<(Int, JobEvent)>.Continuation] = [:]
        var finished = false
        /// How many of `events` are progress events.
        var progressCount = 0

        /// Numbers and records `event`, dropping the oldest progress event past `progressHistory`;
        /// returns its id and the subscribers to deliver it to (a terminal event ends the feed).
        mutating func record(
            _ event: JobEvent, progressHistory: Int
        ) -> (id: Int, subscribers: [AsyncStream<(Int, JobEvent)>.Continuation]) {
            let id = nextID
            nextID += 1
            events.append((id, event))
            if case .progress = event {
                progressCount += 1
                if progressCount > progressHistory,
                    let first = events.firstIndex(where: { if case .progress = $0.1 { true } else { false } })
                {
                    events.remove(at: first)
                    progressCount -= 1
                }
            }
            let receivers = Array(subscribers.values)
            if event.isTerminal {
                finished = true
                subscribers = [:]
            }
            return (id, receivers)
        }
    }

    private let lock = NSLock()
    private var feeds: [String: Feed] = [:]
    private let progressHistory: Int

    public init(progressHistory: Int = 64) {
        self.progressHistory = progressHistory
    }

    /// Publishes an event; a terminal state ends every subscription after delivery.
    public func publish(jobID: String, _ event: JobEvent) {
        // Recorded in place in the dictionary: a feed taken out and put back would copy its events.
        let delivery = lock.withLock {
            feeds[jobID]?.finished == true ? nil : feeds[jobID, default: Feed()].record(event, progressHistory: progressHistory)
        }
        guard let (id, subscribers) = delivery else { return }
        for continuation in subscribers {
            continuation.yield((id, event))
            if event.isTerminal { continuation.finish() }
        }
    }

    /// The job's latest progress while this server runs it (nil once it ended, or before any).
    public func latestProgress(jobID: String) -> ProgressEvent? {
        lock.withLock {
            guard let feed = feeds[jobID], !feed.finished else { return nil }
            for (_, event) in feed.events.reversed() { if case .progress(let progress) = event { return progress } }
            return nil
        }
    }

    /// The job's events so far, then live ones until the job ends.
    public func subscribe(jobID: String) -> AsyncStream<(Int, JobEvent)> {
        subscribe(jobID: jobID, createFeed: true)!
    }

    /// Like `subscribe`, but nil when the hub has no feed for the job (it ended before the
    /// replay was forgotten, or before this server started): the caller answers from the store.
    public func subscribeIfKnown(jobID: String) -> AsyncStream<(Int, JobEvent)>? {
        subscribe(jobID: jobID, createFeed: false)
    }

    private func subscribe(jobID: String, createFeed: Bool) -> AsyncStream<(Int, JobEvent)>? {
        lock.lock()
        defer { lock.unlock() }
        guard var feed = feeds[jobID] ?? (createFeed ? Feed() : nil) else { return nil }
        let (stream, continuation) = AsyncStream<(Int, JobEvent)>.makeStream(bufferingPolicy: .bufferingNewest(1024))
        let key = UUID()
        for event in feed.events { continuation.yield(event) }
        if feed.finished {
            continuation.finish()
        } else {
            feed.subscribers[key] = continuation
            continuation.onTermination = { [weak self] _ in
                guard let self else { return }
                self.lock.withLock { _ = self.feeds[jobID]?.subscribers.removeValue(forKey: key) }
            }
        }
        feeds[jobID] = feed
        return stream
    }

    /// Forgets a finished job's replay.
    public func forget(jobID: String) {
        lock.withLock { _ = feeds.removeValue(forKey: jobID) }
    }
}
