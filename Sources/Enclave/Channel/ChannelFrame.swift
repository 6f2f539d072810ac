/// The type tag of a channel frame. Server-to-enclave tags are below 0x40, enclave-to-server
/// tags from 0x40, and 0x7F (error) goes both ways.
public enum ChannelMessageType: UInt8, Sendable, CaseIterable {
    // server → enclave
    case begin = 0x01
    case jobSpec = 0x02
    case keyRelease = 0x03
    case datasetBegin = 0x04
    case datasetChunk = 0x05
    case datasetEnd = 0x06
    case cancel = 0x07
    /// Local mode only: the development attestor's document, answering `attestationRequest`.
    case attestationDocument = 0x08
    /// The checkpoint data key as KMS released it to the enclave (CMS, like a key release).
    case checkpointKey = 0x09
    /// A sealed checkpoint of an earlier run of the same collaboration and policy, to resume from.
    case checkpointResume = 0x0A
    // enclave → server
    case hello = 0x41
    case accepted = 0x42
    case progress = 0x43
    case outputBegin = 0x44
    case outputChunk = 0x45
    case outputEnd = 0x46
    case receipt = 0x47
    /// Local mode only: asks the launcher's development attestor for a document.
    case attestationRequest = 0x48
    /// A sealed training checkpoint for the server to store.
    case checkpoint = 0x49
    // both ways
    case error = 0x7F
}

/// One frame of the enclave channel: a fixed 8-byte header and a payload.
///
/// ```
/// frame   = magic version type reserved length payload
/// magic   = %xC7            ; one byte
/// version = %x01            ; ChannelFrame.version
/// type    = OCTET           ; ChannelMessageType
/// reserved= %x00
/// length  = 4OCTET          ; payload length, big-endian, ≤ ChannelLimits.maxPayloadBytes(for: type)
/// payload = length OCTET
/// ```
public struct ChannelFrame: Sendable, Equatable {
    /// The first byte of every frame.
    public static let magic: UInt8 = 0xC7
    /// The protocol version this build speaks.
    public static let version: UInt8 = 1
    /// Length of the fixed header.
    public static let headerLength = 8

    public var type: ChannelMessageType
    public var payload: [UInt8]

    public init(type: ChannelMessageType, payload: [UInt8]) {
        self.type = type
        self.payload = payload
    }

    /// The frame's bytes: header followed by payload.
    public func encoded() -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(Self.headerLength + payload.count)
        Self.appendHeader(type: type, payloadLength: payload.count, to: &bytes)
        bytes.append(contentsOf: payload)
        return bytes
    }

    /// Appends a frame header for a payload of `payloadLength` bytes.
    public static func appendHeader(type: ChannelMessageType, payloadLength: Int, to bytes: inout [UInt8]) {
        precondition(payloadLength >= 0 && payloadLength <= Int(UInt32.max), "payload length out of range")
        let length = UInt32(payloadLength)
        bytes.append(contentsOf: [
            magic, version, type.rawValue, 0,
            UInt8(truncatingIfNeeded: length >> 24), UInt8(truncatingIfNeeded: length >> 16),
            UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length),
        ])
    }
}
