import Foundation

/// A task executor with one thread of its own, for the enclave session.
///
/// The session blocks: it waits on the channel socket, on the digest thread's backlog and on the
/// parse workers. On the Swift concurrency pool (one thread per core, two in an enclave) that
/// would hold a pool thread for the whole job, and anything else awaiting on the pool would get by
/// only because nothing else runs there. `run` makes that a rule: the session's nonisolated async
/// code runs on this thread, and the pool's threads stay free.
public final class SessionThread: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopping = false

    private init(name: String) {
        // Named from inside: on Linux a thread named before it starts keeps its creator's name.
        let thread = Thread { [self] in
            Thread.current.name = name
            loop()
        }
        thread.start()
    }

    /// Runs `operation` with this thread as its task executor (nonisolated async functions it
    /// calls run there), then ends the thread.
    public static func run<T, Failure: Error>(
        name: String, isolation: isolated (any Actor)? = #isolation, _ operation: () async throws(Failure) -> T
    ) async throws(Failure) -> T {
        let executor = SessionThread(name: name)
        defer { executor.stop() }
        return try await withTaskExecutorPreference(executor, isolation: isolation, operation: operation)
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.withLock {
            jobs.append(job)
            condition.signal()
        }
    }

    private func stop() {
        condition.withLock {
            stopping = true
            condition.signal()
        }
    }

    private func loop() {
        while true {
            let next: UnownedJob? = condition.withLock {
                while jobs.isEmpty, !stopping { condition.wait() }
                return jobs.isEmpty ? nil : jobs.removeFirst()
            }
            guard let next else { return }
            next.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
