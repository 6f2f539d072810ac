import Foundation
import HTTPServer
import Synchronization

/// Writes access-log lines (one JSON object each) to stdout or a file without blocking event
/// loops: lines are appended to a buffer and a background thread writes it out every 200 ms
/// (or sooner when it passes 64 KiB).
public final class AccessLogWriter: Sendable {
    private let fd: Int32
    private let ownsFD: Bool
    private let buffer = Mutex<[UInt8]>([])
    private let stopped = Atomic<Bool>(false)
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    /// `-` for stdout, or a file path (appended, created 0600).
    public init(destination: String) throws {
        if destination == "-" {
            fd = 1
            ownsFD = false
        } else {
            fd = open(destination, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw ConfigurationError("cannot open access log \(destination)") }
            ownsFD = true
        }
        let thread = Thread { [self] in
            Thread.current.name = "access-log"  // named from inside: on Linux a name set before start is lost
            while !stopped.load(ordering: .relaxed) {
                _ = wake.wait(timeout: .now() + .milliseconds(200))
                writeOut()
            }
            writeOut()
            finished.signal()
        }
        thread.start()
    }

    /// Queues one entry (called on event-loop threads; never blocks on I/O).
    public func record(_ entry: AccessLogEntry) {
        var line = Array(entry.jsonLine.utf8)
        line.append(0x0A)
        let big = buffer.withLock { b -> Bool in
            b.append(contentsOf: line)
            return b.count > 64 * 1024
        }
        if big { wake.signal() }
    }

    /// Writes everything queued and stops the writer thread.
    public func close() {
        if stopped.exchange(true, ordering: .relaxed) { return }
        wake.signal()
        finished.wait()
        if ownsFD { Glibc.close(fd) }
    }

    private func writeOut() {
        let bytes = buffer.withLock { b -> [UInt8] in
            let out = b
            b.removeAll(keepingCapacity: true)
            return out
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n <= 0 { return }
            offset += n
        }
    }
}
