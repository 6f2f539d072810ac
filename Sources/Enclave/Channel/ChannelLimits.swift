/// Size and time limits of the enclave channel, in one place.
///
/// Every frame's declared length is checked against the limit for its type *before* any of its
/// payload is buffered, so a hostile peer cannot make either side allocate more than
/// `maxPayloadBytes(for:)` plus one read buffer.
public struct ChannelLimits: Sendable, Equatable {
    /// Largest payload of small control messages (begin, accepted, progress, error, cancel, ends).
    public var maxControlPayload: Int = 16 * 1024
    /// Largest hello payload (attestation document plus receipt public key).
    public var maxHelloPayload: Int = 64 * 1024
    /// Largest job specification payload (policy, approval bundle, manifests).
    public var maxSpecPayload: Int = 4 * 1024 * 1024
    /// Largest key-release payload (one CMS EnvelopedData blob).
    public var maxKeyReleasePayload: Int = 64 * 1024
    /// Largest data chunk payload (dataset ciphertext or output ciphertext).
    public var maxChunkPayload: Int = 1024 * 1024 + 64
    /// Largest receipt payload.
    public var maxReceiptPayload: Int = 4 * 1024 * 1024
    /// Largest sealed training checkpoint (either way).
    public var maxCheckpointPayload: Int = 32 * 1024 * 1024
    /// Largest string field (identifiers, messages), in UTF-8 bytes.
    public var maxStringBytes: Int = 4096
    /// Most datasets in one job specification.
    public var maxDatasets: Int = 64

    /// Size of the data chunks a sender cuts streams into.
    public var chunkSize: Int = 1024 * 1024

    public init() {}

    /// The default limits.
    public static let `default` = ChannelLimits()

    /// The largest payload accepted for a frame of `type`.
    public func maxPayloadBytes(for type: ChannelMessageType) -> Int {
        switch type {
        case .hello, .attestationDocument, .attestationRequest: maxHelloPayload
        case .jobSpec: maxSpecPayload
        case .keyRelease, .checkpointKey: maxKeyReleasePayload
        case .checkpointResume, .checkpoint: maxCheckpointPayload
        case .datasetChunk, .outputChunk: maxChunkPayload
        case .receipt: maxReceiptPayload
        case .begin, .accepted, .datasetBegin, .datasetEnd, .progress, .outputBegin, .outputEnd, .error, .cancel:
            maxControlPayload
        }
    }
}
