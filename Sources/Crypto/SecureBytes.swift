import COpenSSL

/// Secret bytes (keys, derived keys, decrypted data keys) in memory that is zeroed with
/// `OPENSSL_cleanse` when the last copy is released.
///
/// A value type with shared immutable storage: copies are cheap and never duplicate the
/// secret. `description` never shows the contents, so it is safe to log. Equality is
/// constant-time. Get the bytes out with `withUnsafeBytes`; `copyBytes()` makes an ordinary
/// array the caller then owns (and should not keep).
public struct SecureBytes: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    final class Storage: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
        let count: Int

        init(count: Int) {
            self.count = count
            pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 16)
            pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(count, 1))
        }

        deinit {
            OPENSSL_cleanse(pointer, max(count, 1))
            pointer.deallocate()
        }
    }

    let storage: Storage

    /// Copies `bytes`. The caller should zero or drop its own copy.
    public init(_ bytes: [UInt8]) {
        let storage = Storage(count: bytes.count)
        bytes.withUnsafeBytes { source in
            if let base = source.baseAddress, source.count > 0 {
                storage.pointer.copyMemory(from: base, byteCount: source.count)
            }
        }
        self.storage = storage
    }

    /// Copies raw memory.
    public init(copying bytes: UnsafeRawBufferPointer) {
        storage = Storage(count: bytes.count)
        if let base = bytes.baseAddress, bytes.count > 0 {
            storage.pointer.copyMemory(from: base, byteCount: bytes.count)
        }
    }

    /// `count` bytes from the secure random generator.
    public init(randomCount count: Int) throws {
        storage = Storage(count: count)
        try SecureRandom.fill(UnsafeMutableRawBufferPointer(start: storage.pointer, count: count))
    }

    /// Allocates `capacity` zeroed bytes and lets `body` fill them; `body` returns how many it used.
    init(unsafeUninitializedCapacity capacity: Int, initializingWith body: (UnsafeMutableRawBufferPointer) throws -> Int)
        rethrows
    {
        let full = Storage(count: capacity)
        let used = try body(UnsafeMutableRawBufferPointer(start: full.pointer, count: capacity))
        precondition(used >= 0 && used <= capacity)
        if used == capacity {
            storage = full
        } else {
            storage = Storage(count: used)
            if used > 0 { storage.pointer.copyMemory(from: full.pointer, byteCount: used) }
        }
    }

    /// The number of bytes.
    public var count: Int { storage.count }
    public var isEmpty: Bool { storage.count == 0 }

    /// Borrows the bytes; do not let the pointer escape.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// An ordinary array copy of the secret. Prefer `withUnsafeBytes`; whoever calls this owns
    /// a copy that will not be zeroed automatically.
    public func copyBytes() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// Constant-time comparison (lengths are compared openly).
    public static func == (lhs: SecureBytes, rhs: SecureBytes) -> Bool {
        lhs.withUnsafeBytes { a in rhs.withUnsafeBytes { b in ConstantTime.equals(a, b) } }
    }

    public var description: String { "SecureBytes(\(count) bytes)" }
    public var debugDescription: String { description }
}
