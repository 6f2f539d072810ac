/// A failure to read, authenticate, decrypt or write an AWS Encryption SDK message.
///
/// Tests and callers compare `code`; `message` says what was wrong in words a user can act on.
/// Messages never contain key material or plaintext.
public struct EnvelopeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of failure. New kinds are new static values; compare with `==`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        // Format of the header.
        /// The input ended before a complete header (only from `MessageHeaderParser.parseComplete`).
        public static let truncatedHeader = Code("truncatedHeader")
        public static let unsupportedVersion = Code("unsupportedVersion")
        public static let unsupportedMessageType = Code("unsupportedMessageType")
        public static let unsupportedAlgorithmSuite = Code("unsupportedAlgorithmSuite")
        /// A suite that exists but is not allowed in this message format version, or by the caller.
        public static let algorithmSuiteNotAllowed = Code("algorithmSuiteNotAllowed")
        public static let malformedEncryptionContext = Code("malformedEncryptionContext")
        public static let duplicateEncryptionContextKey = Code("duplicateEncryptionContextKey")
        public static let invalidUTF8 = Code("invalidUTF8")
        public static let noEncryptedDataKeys = Code("noEncryptedDataKeys")
        public static let tooManyEncryptedDataKeys = Code("tooManyEncryptedDataKeys")
        public static let invalidContentType = Code("invalidContentType")
        public static let invalidReservedBytes = Code("invalidReservedBytes")
        public static let invalidIVLength = Code("invalidIVLength")
        public static let invalidFrameLength = Code("invalidFrameLength")
        public static let frameLengthExceedsLimit = Code("frameLengthExceedsLimit")
        public static let headerTooLarge = Code("headerTooLarge")

        // Authentication and body.
        public static let headerAuthenticationFailed = Code("headerAuthenticationFailed")
        public static let keyCommitmentMismatch = Code("keyCommitmentMismatch")
        public static let frameAuthenticationFailed = Code("frameAuthenticationFailed")
        public static let frameOutOfSequence = Code("frameOutOfSequence")
        public static let invalidFinalFrameLength = Code("invalidFinalFrameLength")
        public static let contentLengthExceedsLimit = Code("contentLengthExceedsLimit")
        /// The input ended before the message did (header, a frame or the footer is missing).
        public static let truncatedMessage = Code("truncatedMessage")
        /// Bytes follow the end of the message.
        public static let trailingData = Code("trailingData")
        public static let signatureInvalid = Code("signatureInvalid")
        public static let missingVerificationKey = Code("missingVerificationKey")
        public static let invalidVerificationKey = Code("invalidVerificationKey")

        // Keys and context.
        public static let noDecryptableDataKey = Code("noDecryptableDataKey")
        public static let encryptionContextMismatch = Code("encryptionContextMismatch")
        public static let reservedEncryptionContextKey = Code("reservedEncryptionContextKey")
        public static let invalidDataKey = Code("invalidDataKey")
        public static let keyringConfiguration = Code("keyringConfiguration")
        public static let keyManagementService = Code("keyManagementService")

        // Use of the API.
        public static let invalidArgument = Code("invalidArgument")
        public static let streamFinished = Code("streamFinished")
        public static let cryptoFailure = Code("cryptoFailure")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// True for failures of the message itself (format or authentication), as opposed to misuse of the API.
    public var isMessageFailure: Bool {
        code != .invalidArgument && code != .streamFinished && code != .keyringConfiguration
    }
}
