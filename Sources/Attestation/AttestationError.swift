/// Why a COSE message or an attestation document was rejected: one stable ``Code`` per way to
/// fail (tests and the key-release gate compare codes), a message for people, and where in our
/// source the failure was raised. Messages name fields and sizes, never secret values.
public struct AttestationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable identifier of the failed check.
    public struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        // Encoding: CBOR and COSE_Sign1 (RFC 9052).
        /// The bytes are not one well-formed CBOR item within the limits (see ``AttestationError/cborError``).
        public static let malformedCBOR = Code(rawValue: "attestation.malformed_cbor")
        /// The input is neither CBOR nor base64 of CBOR (CLI and other text entry points).
        public static let malformedEncoding = Code(rawValue: "attestation.malformed_encoding")
        /// Not a COSE_Sign1 array of four, or a part has the wrong type.
        public static let malformedCOSE = Code(rawValue: "cose.malformed")
        /// Tagged with a tag other than 18 (COSE_Sign1).
        public static let unexpectedCOSETag = Code(rawValue: "cose.unexpected_tag")
        /// The protected header is not a serialized map, or a header label appears in both buckets.
        public static let malformedCOSEHeader = Code(rawValue: "cose.malformed_header")
        /// The protected header names no algorithm, or one we do not accept here.
        public static let unsupportedAlgorithm = Code(rawValue: "cose.unsupported_algorithm")
        /// The header marks parameters critical (label 2); we understand none.
        public static let unsupportedCriticalHeader = Code(rawValue: "cose.unsupported_critical_header")
        /// The payload is detached (nil); Nitro documents always carry it.
        public static let detachedPayload = Code(rawValue: "cose.detached_payload")
        /// The signature has the wrong length for the algorithm.
        public static let malformedSignature = Code(rawValue: "cose.malformed_signature")
        /// The signature does not verify with the given key.
        public static let signatureInvalid = Code(rawValue: "cose.signature_invalid")

        // Structure of the Nitro payload.
        /// The payload is not a map.
        public static let payloadNotMap = Code(rawValue: "attestation.payload_not_map")
        /// One of the nine required keys is missing.
        public static let missingField = Code(rawValue: "attestation.missing_field")
        /// A key has the wrong CBOR type (or null where null is not allowed).
        public static let wrongFieldType = Code(rawValue: "attestation.wrong_field_type")
        /// A key that is not one of the nine.
        public static let unexpectedField = Code(rawValue: "attestation.unexpected_field")
        /// `module_id` is empty.
        public static let invalidModuleID = Code(rawValue: "attestation.invalid_module_id")
        /// `digest` is not "SHA384".
        public static let unsupportedDigest = Code(rawValue: "attestation.unsupported_digest")
        /// `timestamp` is zero.
        public static let invalidTimestamp = Code(rawValue: "attestation.invalid_timestamp")
        /// `pcrs` is empty or has more than 32 entries.
        public static let invalidPCRCount = Code(rawValue: "attestation.invalid_pcr_count")
        /// A PCR index outside 0...31 (or not an unsigned integer).
        public static let invalidPCRIndex = Code(rawValue: "attestation.invalid_pcr_index")
        /// A PCR value that is not 48 bytes (SHA-384).
        public static let invalidPCRLength = Code(rawValue: "attestation.invalid_pcr_length")
        /// `certificate` is empty or longer than 1024 bytes.
        public static let invalidCertificateSize = Code(rawValue: "attestation.invalid_certificate_size")
        /// `cabundle` is empty, or an entry is empty or longer than 1024 bytes.
        public static let invalidCABundle = Code(rawValue: "attestation.invalid_cabundle")
        /// `public_key` is present but empty or longer than 1024 bytes.
        public static let invalidPublicKeySize = Code(rawValue: "attestation.invalid_public_key_size")
        /// `user_data` is longer than 1024 bytes.
        public static let invalidUserDataSize = Code(rawValue: "attestation.invalid_user_data_size")
        /// `nonce` is longer than 1024 bytes.
        public static let invalidNonceSize = Code(rawValue: "attestation.invalid_nonce_size")

        // Signature and chain.
        /// The leaf certificate (or a cabundle entry) is not a parseable X.509 certificate.
        public static let malformedCertificate = Code(rawValue: "attestation.malformed_certificate")
        /// The leaf certificate's key is not an EC P-384 key (ES384 needs one).
        public static let unsupportedLeafKey = Code(rawValue: "attestation.unsupported_leaf_key")
        /// No path leads from the leaf through the cabundle to a configured root.
        public static let untrustedChain = Code(rawValue: "attestation.untrusted_chain")
        /// A certificate on the path is not valid yet at the verification time.
        public static let certificateNotYetValid = Code(rawValue: "attestation.certificate_not_yet_valid")
        /// A certificate on the path has expired at the verification time.
        public static let certificateExpired = Code(rawValue: "attestation.certificate_expired")
        /// A certificate's signature does not verify with its issuer's key.
        public static let chainSignatureInvalid = Code(rawValue: "attestation.chain_signature_invalid")
        /// Another RFC 5280 path rule failed (CA flag, key usage, path length, names).
        public static let chainInvalid = Code(rawValue: "attestation.chain_invalid")

        // The caller's expectations.
        /// The PCRs match none of the allowed measurement sets.
        public static let pcrMismatch = Code(rawValue: "attestation.pcr_mismatch")
        /// PCR0 is all zeros (debug-mode enclave) and debug is not allowed.
        public static let debugModeRefused = Code(rawValue: "attestation.debug_mode_refused")
        /// The document is older than the freshness window.
        public static let documentTooOld = Code(rawValue: "attestation.document_too_old")
        /// The document's timestamp lies further in the future than the allowed clock skew.
        public static let documentFromFuture = Code(rawValue: "attestation.document_from_future")
        /// `nonce` is absent or differs from the expected one.
        public static let nonceMismatch = Code(rawValue: "attestation.nonce_mismatch")
        /// `user_data` is absent or differs from the expected value.
        public static let userDataMismatch = Code(rawValue: "attestation.user_data_mismatch")
        /// `public_key` is absent (a key release needs one) or differs from the expected key.
        public static let publicKeyMismatch = Code(rawValue: "attestation.public_key_mismatch")

        // The NSM device.
        /// `/dev/nsm` could not be opened or the ioctl failed.
        public static let nsmUnavailable = Code(rawValue: "nsm.unavailable")
        /// The NSM answered with an error code.
        public static let nsmError = Code(rawValue: "nsm.error")
        /// The NSM answered something we cannot decode, or a response to another request.
        public static let nsmMalformedResponse = Code(rawValue: "nsm.malformed_response")
        /// A request argument is out of the NSM's range (e.g. user data over 1024 bytes).
        public static let nsmInvalidRequest = Code(rawValue: "nsm.invalid_request")

        // The development attestor.
        /// The development CA in the data directory is missing pieces, unreadable or inconsistent.
        public static let developmentCAInvalid = Code(rawValue: "development.ca_invalid")
        /// The enclave executable to measure could not be read.
        public static let measurementFailed = Code(rawValue: "development.measurement_failed")
    }

    /// The failed check.
    public let code: Code
    /// A human-readable explanation.
    public let message: String
    /// For ``Code/malformedCBOR``: the decoder's own error.
    public let cborError: CBORError?
    /// Where in our source the failure was raised (for debugging; not part of equality).
    public let file: String
    public let line: Int

    public init(
        _ code: Code,
        _ message: String,
        cborError: CBORError? = nil,
        file: String = #fileID,
        line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.cborError = cborError
        self.file = file
        self.line = line
    }

    /// Wraps a CBOR decoding failure of `what`.
    static func cbor(
        _ error: CBORError,
        in what: String,
        file: String = #fileID,
        line: Int = #line
    )
        -> AttestationError
    {
        AttestationError(.malformedCBOR, "\(what): \(error)", cborError: error, file: file, line: line)
    }

    public var description: String { "\(code): \(message)" }

    public static func == (lhs: AttestationError, rhs: AttestationError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.cborError == rhs.cborError
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
    }
}
