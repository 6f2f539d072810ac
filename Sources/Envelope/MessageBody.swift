/// The message body's framing constants and per-frame AAD
/// (specification: data-format/message-body.md and message-body-aad.md).
enum MessageBody {
    /// The sequence-number value that marks the final frame.
    static let finalFrameMarker: UInt32 = 0xFFFF_FFFF
    static let frameContent = Array("AWSKMSEncryptionClient Frame".utf8)
    static let finalFrameContent = Array("AWSKMSEncryptionClient Final Frame".utf8)
    static let singleBlockContent = Array("AWSKMSEncryptionClient Single Block".utf8)

    enum Kind { case frame, finalFrame, singleBlock }

    /// Message ID ‖ body AAD content ‖ sequence number (4) ‖ content length (8).
    static func aad(messageID: [UInt8], kind: Kind, sequenceNumber: UInt32, contentLength: UInt64) -> [UInt8] {
        var out = messageID
        out.reserveCapacity(messageID.count + 35 + 12)
        switch kind {
        case .frame: out += frameContent
        case .finalFrame: out += finalFrameContent
        case .singleBlock: out += singleBlockContent
        }
        out.appendUInt32(sequenceNumber)
        out.appendUInt64(contentLength)
        return out
    }

    /// The IV the encryptor uses for a frame: the sequence number, big-endian, left-padded to 12 bytes.
    /// (Readers take the IV from the frame: some SDKs wrote random IVs.)
    static func iv(sequenceNumber: UInt32) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 8)
        out.appendUInt32(sequenceNumber)
        return out
    }
}

extension UnsafeRawBufferPointer {
    func uint16(at offset: Int) -> UInt16 { UInt16(self[offset]) << 8 | UInt16(self[offset + 1]) }
    func uint32(at offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 << 8 | UInt32(self[offset + $1]) }
    }
    func uint64(at offset: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 << 8 | UInt64(self[offset + $1]) }
    }
    func slice(_ range: Range<Int>) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: self[range]) }
}
