/// The life of a job: `pending → attesting → running → delivering → succeeded | failed | cancelled`.
/// Every transition is persisted and audited by the `JobEventSink`.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case pending, attesting, running, delivering, succeeded, failed, cancelled

    /// Whether the job has ended.
    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .cancelled }

    /// Whether `next` may follow this state.
    public func canMove(to next: JobState) -> Bool {
        switch (self, next) {
        case (.pending, .attesting), (.attesting, .running), (.running, .delivering), (.delivering, .succeeded):
            true
        case (let from, .failed), (let from, .cancelled):
            !from.isTerminal
        default:
            false
        }
    }
}

/// Why a job failed: a stable code and a message safe to show every member party (no data values,
/// no key material).
public struct JobFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
