import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A full disk for a file a test's code under test has just created: while `mode` is `.full`,
/// `apply(to:)` puts `/dev/full` in the place of the descriptor (`dup2`), so every real `write` to it
/// fails with the kernel's ENOSPC, as on a full file system; `.unwritable` puts a read-only
/// descriptor there instead (EBADF: a write failure that is not a full disk).
public final class FullDisk: @unchecked Sendable {
    public enum Mode: Sendable { case off, full, unwritable }
    private let lock = NSLock()
    private var current = Mode.off

    public init() {}

    public var mode: Mode {
        get { lock.withLock { current } }
        set { lock.withLock { current = newValue } }
    }

    public func apply(to descriptor: Int32) {
        let (device, flags): (String, Int32)
        switch mode {
        case .off: return
        case .full: (device, flags) = ("/dev/full", O_WRONLY)
        case .unwritable: (device, flags) = ("/dev/null", O_RDONLY)
        }
        let other = open(device, flags | O_CLOEXEC)
        precondition(other >= 0, "cannot open \(device)")
        precondition(dup2(other, descriptor) == descriptor, "cannot replace descriptor \(descriptor)")
        close(other)
    }
}
