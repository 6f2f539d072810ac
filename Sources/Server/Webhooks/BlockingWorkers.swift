import Foundation
import Synchronization

/// A fixed number of threads for blocking calls that cannot be cancelled (`getaddrinfo`), so that
/// however many are asked for at once, they hold no more threads than this and never the shared
/// pool the database calls run on; a caller gives up waiting at its deadline.
final class BlockingWorkers: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []

    init(threads: Int, name: String) {
        for i in 0..<max(1, threads) {
            // Strong: a thread that starts after its pool's owner let go must still find it (its
            // loop never ends, so the pool lives as long as the process, as the threads do).
            let thread = Thread { [self] in
                Thread.current.name = "\(name)-\(i)"
                self.work()
            }
            thread.stackSize = 512 << 10
            thread.start()
        }
    }

    /// Runs `body` on one of the threads; throws `timedOut()` if it has not finished (or not
    /// started) within `deadline` seconds. A call that overruns finishes on its thread unobserved.
    func run<T: Sendable>(
        deadline: Double, timedOut: @escaping @Sendable () -> any Error, _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        let once = Once<T>()
        return try await withCheckedThrowingContinuation { continuation in
            once.set(continuation)
            condition.lock()
            jobs.append { once.finish(Result { try body() }) }
            condition.signal()
            condition.unlock()
            Task {
                try? await Task.sleep(nanoseconds: UInt64(deadline * 1e9))
                once.finish(.failure(timedOut()))
            }
        }
    }

    /// A continuation resumed by whichever comes first: the result or the deadline.
    private final class Once<T: Sendable>: Sendable {
        private let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)
        func set(_ c: CheckedContinuation<T, any Error>) { continuation.withLock { $0 = c } }
        func finish(_ result: Result<T, any Error>) {
            continuation.withLock { c in
                defer { c = nil }
                return c
            }?.resume(with: result)
        }
    }

    private func work() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}
