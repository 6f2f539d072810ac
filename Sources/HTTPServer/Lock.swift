import Synchronization

/// A small lock-protected box for state shared between an event-loop thread and handler tasks.
final class Locked<Value: ~Copyable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: consuming sending Value) { mutex = Mutex(value) }
    func withLock<R, E: Error>(_ body: (inout sending Value) throws(E) -> sending R) throws(E) -> sending R {
        try mutex.withLock(body)
    }
}
