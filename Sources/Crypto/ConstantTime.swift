import COpenSSL

/// Comparison whose running time does not depend on where the inputs differ (`CRYPTO_memcmp`).
/// Use it for MACs, tags, commitments and tokens.
public enum ConstantTime {
    /// True when `a` and `b` hold the same bytes. Lengths are compared openly first.
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { x in b.withUnsafeBytes { y in equals(x, y) } }
    }

    /// True when `a` and `b` hold the same bytes. Lengths are compared openly first.
    public static func equals(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        guard a.count > 0, let x = a.baseAddress, let y = b.baseAddress else { return true }
        return CRYPTO_memcmp(x, y, a.count) == 0
    }

    /// True when the secret `a` equals `b`.
    public static func equals(_ a: SecureBytes, _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { x in b.withUnsafeBytes { y in equals(x, y) } }
    }
}
