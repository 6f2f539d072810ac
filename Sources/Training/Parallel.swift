import Dispatch

/// The engine's thread budget: work is split into this many parts (the enclave has two cores).
public enum Parallel {
    /// Threads used by training and prediction.
    public static let threads = 2

    /// Runs `body(part)` for `part` in `0..<parts` on up to `threads` threads and waits for all.
    static func run(_ parts: Int, _ body: (Int) -> Void) {
        if parts <= 1 {
            if parts == 1 { body(0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: parts) { part in box.value(part) }
        }
    }

    /// Splits `0..<count` into `parts` contiguous ranges of nearly equal size.
    static func ranges(_ count: Int, parts: Int = threads) -> [Range<Int>] {
        let parts = max(1, min(parts, count))
        return (0..<parts).map { part in (count * part / parts)..<(count * (part + 1) / parts) }
    }
}

/// Carries a non-Sendable value into `concurrentPerform`; callers make sure the parts touch
/// disjoint memory.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
