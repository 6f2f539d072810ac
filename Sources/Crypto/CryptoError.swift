import COpenSSL

/// The one error type of the `Crypto` module: a stable `code` for programs and tests, a short
/// `message` saying what failed, and OpenSSL's own reason text when OpenSSL reported one.
///
/// Messages never contain key material, plaintext or other secrets.
public struct CryptoError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable, extensible error code; tests compare codes, never messages.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// An argument had the wrong size or value (key length, nonce length, output length).
        public static let invalidArgument = Code(rawValue: "invalid-argument")
        /// A key could not be decoded, or is not on its curve / not of the expected size.
        public static let invalidKey = Code(rawValue: "invalid-key")
        /// A key decoded fine but is of another type or curve than the caller asked for.
        public static let wrongKeyType = Code(rawValue: "wrong-key-type")
        /// PEM text had no block, a bad base64 body, or an unexpected label.
        public static let invalidPEM = Code(rawValue: "invalid-pem")
        /// DER/BER bytes were truncated, over-long, or not the expected structure.
        public static let invalidDER = Code(rawValue: "invalid-der")
        /// A signature could not be decoded (bad DER, wrong raw length).
        public static let invalidSignature = Code(rawValue: "invalid-signature")
        /// Authenticated decryption failed: wrong key, nonce, AAD or tag, or tampered data.
        public static let authenticationFailure = Code(rawValue: "authentication-failure")
        /// Decryption failed (RSA padding, CBC padding, CMS recipient did not match).
        public static let decryptionFailure = Code(rawValue: "decryption-failure")
        /// A certificate could not be parsed or has malformed extensions.
        public static let invalidCertificate = Code(rawValue: "invalid-certificate")
        /// A certificate chain did not verify; the message holds OpenSSL's verify reason.
        public static let chainVerificationFailure = Code(rawValue: "chain-verification-failure")
        /// A CMS structure was malformed or used an algorithm we do not support.
        public static let invalidCMS = Code(rawValue: "invalid-cms")
        /// A CMS structure is well formed but uses an algorithm or shape we do not support.
        public static let unsupportedAlgorithm = Code(rawValue: "unsupported-algorithm")
        /// The random generator failed.
        public static let randomFailure = Code(rawValue: "random-failure")
        /// An operation was used out of order (e.g. update after finalize).
        public static let invalidState = Code(rawValue: "invalid-state")
        /// OpenSSL failed where it should not (allocation, internal error).
        public static let internalError = Code(rawValue: "internal-error")
    }

    /// What went wrong.
    public let code: Code
    /// What we were doing, in a few words (never secret material).
    public let message: String
    /// OpenSSL's reason strings for this failure (from `ERR_get_error`), oldest first; may be empty.
    public let openSSLReasons: [String]
    /// For `.chainVerificationFailure`: why and where the path check failed.
    public let chainFailure: ChainFailure?

    public init(_ code: Code, _ message: String, openSSLReasons: [String] = []) {
        self.init(code, message, openSSLReasons: openSSLReasons, chainFailure: nil)
    }

    public init(_ code: Code, _ message: String, openSSLReasons: [String], chainFailure: ChainFailure?) {
        self.code = code
        self.message = message
        self.openSSLReasons = openSSLReasons
        self.chainFailure = chainFailure
    }

    public var description: String {
        if openSSLReasons.isEmpty { return "\(code): \(message)" }
        return "\(code): \(message) (OpenSSL: \(openSSLReasons.joined(separator: "; ")))"
    }

    /// Builds an error and drains OpenSSL's thread-local error queue into it.
    static func openSSL(_ code: Code, _ message: String) -> CryptoError {
        CryptoError(code, message, openSSLReasons: OpenSSLErrorQueue.drain())
    }
}

/// OpenSSL's per-thread error queue.
enum OpenSSLErrorQueue {
    /// Removes every queued error and returns their reason strings, oldest first.
    static func drain() -> [String] {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if reasons.count < 8 { reasons.append(text) }
        }
        return reasons
    }

    /// Forgets stale errors before an operation, so a failure reports only its own reasons.
    static func clear() { ERR_clear_error() }
}
