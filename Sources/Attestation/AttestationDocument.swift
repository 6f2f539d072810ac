/// An AWS Nitro attestation document as received: a COSE_Sign1 whose payload is the CBOR map
/// `module_id, digest, timestamp, pcrs, certificate, cabundle, public_key, user_data, nonce`.
///
/// **Unverified.** Decoding checks CBOR well-formedness and each field's CBOR type only; the
/// values are claims until ``AttestationVerifier`` turns this into a ``VerifiedAttestationDocument``.
/// Optional fields are present as CBOR null in real documents and decode to nil here.
public struct AttestationDocument: Sendable, Hashable {
    /// Limits applied to the outer COSE message.
    public static let decoderLimits = CBORDecoder.Limits(maxInputBytes: 64 * 1024, maxDepth: 4, maxItems: 512)
    /// Limits applied to the payload.
    public static let payloadLimits = CBORDecoder.Limits(maxInputBytes: 64 * 1024, maxDepth: 3, maxItems: 512)

    /// The nine payload keys, in the order AWS writes them.
    public static let fieldNames = [
        "module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce",
    ]

    /// The signed envelope.
    public let cose: COSESign1
    /// The raw payload bytes (what was signed, inside the Sig_structure).
    public let payload: [UInt8]
    /// Issuing Nitro module, e.g. `i-0123…-enc0123…`; development documents say `development`.
    public let moduleID: String
    /// Digest function of the PCRs; must be "SHA384".
    public let digest: String
    /// Milliseconds since the Unix epoch when the NSM made the document.
    public let timestamp: UInt64
    /// PCR index → value.
    public let pcrs: [Int: [UInt8]]
    /// The DER leaf certificate whose key signed the document.
    public let certificate: [UInt8]
    /// DER certificates, root first, leading from the root to the leaf's issuer.
    public let cabundle: [[UInt8]]
    /// The enclave's public key (DER SPKI for ours), if it asked for one.
    public let publicKey: [UInt8]?
    /// Application data the enclave bound into the document, if any.
    public let userData: [UInt8]?
    /// The requester's nonce, if any.
    public let nonce: [UInt8]?

    /// Decodes raw COSE_Sign1 bytes (tagged or untagged).
    public init(bytes: [UInt8]) throws(AttestationError) {
        try self.init(cose: COSESign1(bytes: bytes, limits: Self.decoderLimits))
    }

    /// Decodes the payload of an already parsed COSE_Sign1.
    public init(cose: COSESign1) throws(AttestationError) {
        guard let payload = cose.payload else {
            throw AttestationError(.detachedPayload, "the attestation document has no payload")
        }
        let item: CBOR
        do {
            item = try CBORDecoder(limits: Self.payloadLimits).decode(payload)
        } catch {
            throw AttestationError.cbor(error, in: "attestation payload")
        }
        guard case .map(let pairs) = item else {
            throw AttestationError(.payloadNotMap, "the payload must be a map, found \(item.typeName)")
        }
        var fields: [String: CBOR] = [:]
        for pair in pairs {
            guard case .text(let name) = pair.key, Self.fieldNames.contains(name) else {
                let shown = pair.key.textValue.map { "\"\($0.prefix(40))\"" } ?? pair.key.typeName
                throw AttestationError(.unexpectedField, "unexpected payload key \(shown)")
            }
            fields[name] = pair.value
        }
        func field(_ name: String) throws(AttestationError) -> CBOR {
            guard let value = fields[name] else {
                throw AttestationError(.missingField, "the payload has no \"\(name)\"")
            }
            return value
        }
        func wrongType(_ name: String, _ value: CBOR, _ expected: String) -> AttestationError {
            AttestationError(.wrongFieldType, "\"\(name)\" must be \(expected), found \(value.typeName)")
        }
        func bytes(_ name: String) throws(AttestationError) -> [UInt8] {
            let value = try field(name)
            guard case .bytes(let b) = value else { throw wrongType(name, value, "a byte string") }
            return b
        }
        func optionalBytes(_ name: String) throws(AttestationError) -> [UInt8]? {
            let value = try field(name)
            switch value {
            case .bytes(let b): return b
            case .null: return nil
            default: throw wrongType(name, value, "a byte string or null")
            }
        }
        func text(_ name: String) throws(AttestationError) -> String {
            let value = try field(name)
            guard case .text(let s) = value else { throw wrongType(name, value, "a text string") }
            return s
        }

        let moduleID = try text("module_id")
        let digest = try text("digest")
        let timestampItem = try field("timestamp")
        guard case .unsigned(let timestamp) = timestampItem else {
            throw wrongType("timestamp", timestampItem, "an unsigned integer")
        }
        let pcrsItem = try field("pcrs")
        guard case .map(let pcrPairs) = pcrsItem else { throw wrongType("pcrs", pcrsItem, "a map") }
        var pcrs: [Int: [UInt8]] = [:]
        for pair in pcrPairs {
            guard case .unsigned(let index) = pair.key, index < 32 else {
                let shown = pair.key.intValue.map(String.init) ?? pair.key.typeName
                throw AttestationError(.invalidPCRIndex, "PCR index \(shown) is not in 0...31")
            }
            guard case .bytes(let value) = pair.value else {
                throw wrongType("pcrs[\(index)]", pair.value, "a byte string")
            }
            pcrs[Int(index)] = value
        }
        let certificate = try bytes("certificate")
        let bundleItem = try field("cabundle")
        guard case .array(let bundleItems) = bundleItem else { throw wrongType("cabundle", bundleItem, "an array") }
        var cabundle: [[UInt8]] = []
        for (i, entry) in bundleItems.enumerated() {
            guard case .bytes(let der) = entry else { throw wrongType("cabundle[\(i)]", entry, "a byte string") }
            cabundle.append(der)
        }
        self.cose = cose
        self.payload = payload
        self.moduleID = moduleID
        self.digest = digest
        self.timestamp = timestamp
        self.pcrs = pcrs
        self.certificate = certificate
        self.cabundle = cabundle
        self.publicKey = try optionalBytes("public_key")
        self.userData = try optionalBytes("user_data")
        self.nonce = try optionalBytes("nonce")
    }

    /// The payload map for these values, in AWS's key order (nil fields as CBOR null).
    static func payloadItem(
        moduleID: String,
        digest: String,
        timestamp: UInt64,
        pcrs: [Int: [UInt8]],
        certificate: [UInt8],
        cabundle: [[UInt8]],
        publicKey: [UInt8]?,
        userData: [UInt8]?,
        nonce: [UInt8]?
    ) -> CBOR {
        func optional(_ b: [UInt8]?) -> CBOR { b.map { .bytes($0) } ?? .null }
        return .map([
            (key: .text("module_id"), value: .text(moduleID)),
            (key: .text("digest"), value: .text(digest)),
            (key: .text("timestamp"), value: .unsigned(timestamp)),
            (key: .text("pcrs"), value: .map(pcrs.keys.sorted().map { (key: .int($0), value: .bytes(pcrs[$0]!)) })),
            (key: .text("certificate"), value: .bytes(certificate)),
            (key: .text("cabundle"), value: .array(cabundle.map { .bytes($0) })),
            (key: .text("public_key"), value: optional(publicKey)),
            (key: .text("user_data"), value: optional(userData)),
            (key: .text("nonce"), value: optional(nonce)),
        ])
    }

    /// True when PCR0 is present and all zeros: the NSM reports this for enclaves run in debug mode.
    public var isDebugMode: Bool {
        guard let pcr0 = pcrs[0] else { return false }
        return pcr0.allSatisfy { $0 == 0 }
    }
}
