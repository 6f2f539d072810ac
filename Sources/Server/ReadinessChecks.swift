import Synchronization

/// Named readiness conditions for `GET /readyz`. The server is ready when every check passes
/// and it is not draining for shutdown.
public final class ReadinessChecks: Sendable {
    public typealias Check = @Sendable () async -> String?  // nil = ready, else why not

    private let checks = Mutex<[(name: String, check: Check)]>([])
    private let draining = Atomic<Bool>(false)

    public init() {}

    /// Adds a check; it returns nil when ready, or a short reason (no secrets) when not.
    public func add(_ name: String, _ check: @escaping Check) { checks.withLock { $0.append((name, check)) } }

    /// Marks the server as draining (shutdown has begun): `/readyz` answers 503 from now on.
    public func beginDraining() { draining.store(true, ordering: .relaxed) }

    /// The failed checks as `name: reason`, empty when ready.
    public func failures() async -> [String] {
        var out: [String] = []
        if draining.load(ordering: .relaxed) { out.append("server: shutting down") }
        for (name, check) in checks.withLock({ $0 }) {
            if let reason = await check() { out.append("\(name): \(reason)") }
        }
        return out
    }
}
