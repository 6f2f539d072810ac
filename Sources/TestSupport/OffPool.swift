import Foundation

/// Runs blocking work (child processes, blocking socket reads) on a thread of its own, so a test
/// never blocks a thread of the concurrency pool that an in-process server may need.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
}
