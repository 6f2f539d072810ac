import Crypto
import Dispatch

/// The SHA-256 of a stream, computed on its own thread: the session thread hands each ciphertext
/// chunk over and goes on decrypting (hashing was a third of its work, and it feeds the parsers).
/// At most `backlog` chunks wait to be hashed, so memory stays bounded.
final class BackgroundDigest: @unchecked Sendable {
    private let queue = DispatchQueue(label: "cleanroom.enclave.ciphertext-digest")
    private let slots: DispatchSemaphore
    /// Touched only on `queue`.
    private var hash = SHA256()

    init(backlog: Int = 8) {
        slots = DispatchSemaphore(value: backlog)
    }

    func update(_ bytes: [UInt8]) {
        slots.wait()
        queue.async { [self] in
            hash.update(bytes)
            slots.signal()
        }
    }

    /// The digest of everything handed over (after waiting for it to be hashed).
    func finalize() -> [UInt8] {
        queue.sync { hash.finalize() }
    }
}
