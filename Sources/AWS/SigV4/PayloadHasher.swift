/// Incremental SHA-256 of a payload (`x-amz-content-sha256`, object digests), fed in chunks.
public struct PayloadHasher: @unchecked Sendable {
    private let stream = AWSHash.Stream()
    public init() {}
    public func update(_ bytes: [UInt8]) { stream.update(bytes) }
    public func update(_ bytes: UnsafeRawBufferPointer) { stream.update(bytes) }
    /// The digest; the hasher must not be used afterwards.
    public func finalize() -> [UInt8] { stream.finalize() }
    /// The digest as lower-case hex.
    public func finalizeHex() -> String { hex(stream.finalize()) }
    /// SHA-256 of bytes in memory, lower-case hex.
    public static func hexDigest(_ bytes: [UInt8]) -> String { AWSHash.sha256Hex(bytes) }
}
