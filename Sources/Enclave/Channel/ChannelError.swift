/// A failure of the enclave channel: a malformed or oversized frame, a message out of order,
/// a timeout, a closed peer, or an error the peer reported.
///
/// Messages never carry secret material or dataset values; tests compare `code`.
public struct ChannelError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable, machine-readable failure code.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The first byte of a frame is not the channel magic.
        public static let badMagic = Code(rawValue: "channel.bad_magic")
        /// The frame's protocol version is not one this build speaks.
        public static let unsupportedVersion = Code(rawValue: "channel.unsupported_version")
        /// The frame's type tag names no known message.
        public static let unknownType = Code(rawValue: "channel.unknown_type")
        /// A reserved header byte is not zero.
        public static let reservedBits = Code(rawValue: "channel.reserved_bits")
        /// The frame's declared length exceeds the limit for its type.
        public static let frameTooLarge = Code(rawValue: "channel.frame_too_large")
        /// The stream ended inside a frame.
        public static let truncated = Code(rawValue: "channel.truncated")
        /// A payload field is missing, too long, or not what its type requires.
        public static let malformedPayload = Code(rawValue: "channel.malformed_payload")
        /// A message arrived that the protocol does not allow at this point.
        public static let unexpectedMessage = Code(rawValue: "channel.unexpected_message")
        /// The peer did not answer within the configured time.
        public static let timeout = Code(rawValue: "channel.timeout")
        /// The peer closed the connection.
        public static let closed = Code(rawValue: "channel.closed")
        /// A socket call failed.
        public static let io = Code(rawValue: "channel.io")
        /// The peer sent an error message.
        public static let peerError = Code(rawValue: "channel.peer_error")
        /// The job was cancelled.
        public static let cancelled = Code(rawValue: "channel.cancelled")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
