/// Limits applied to messages from outside, so hostile input costs bounded memory and time.
///
/// The defaults admit everything AWS's SDKs write with their defaults and the frame lengths the
/// clean room uses, while bounding what one decryptor buffers (one frame, or one non-framed body).
public struct MessageLimits: Sendable, Equatable {
    /// Most encrypted data keys a header may carry (the spec's "maximum encrypted data keys").
    public var maxEncryptedDataKeys: Int
    /// Largest header, in bytes, including the header authentication.
    public var maxHeaderLength: Int
    /// Largest frame length a framed message may declare, in bytes.
    public var maxFrameLength: Int
    /// Largest non-framed body, in bytes (a non-framed body is authenticated only as a whole,
    /// so the decryptor holds all of it before releasing any plaintext).
    public var maxNonFramedContentLength: Int
    /// Largest footer signature, in bytes.
    public var maxSignatureLength: Int

    public init(
        maxEncryptedDataKeys: Int = 64, maxHeaderLength: Int = 256 * 1024, maxFrameLength: Int = 4 * 1024 * 1024,
        maxNonFramedContentLength: Int = 16 * 1024 * 1024, maxSignatureLength: Int = 256
    ) {
        self.maxEncryptedDataKeys = maxEncryptedDataKeys
        self.maxHeaderLength = maxHeaderLength
        self.maxFrameLength = maxFrameLength
        self.maxNonFramedContentLength = maxNonFramedContentLength
        self.maxSignatureLength = maxSignatureLength
    }

    public static let `default` = MessageLimits()
}
