/// A request to the Nitro Security Module, in the wire form of aws-nitro-enclaves-nsm-api
/// (`src/api/mod.rs`): serde's externally tagged enums in CBOR — a unit request is its name as a
/// text string, a struct request is a one-entry map from its name to its fields in declared order,
/// absent options are CBOR null.
public enum NSMRequest: Sendable, Hashable {
    /// `{"Attestation": {"user_data": …, "nonce": …, "public_key": …}}`.
    case attestation(userData: [UInt8]?, nonce: [UInt8]?, publicKey: [UInt8]?)
    /// `{"DescribePCR": {"index": n}}`.
    case describePCR(index: UInt16)
    /// `"GetRandom"`.
    case getRandom
    /// `"DescribeNSM"`.
    case describeNSM

    /// The NSM driver refuses requests larger than this (`NSM_REQUEST_MAX_SIZE`).
    public static let maxEncodedBytes = 0x1000
    /// The NSM accepts at most this many bytes each of user data, nonce and public key.
    public static let maxFieldBytes = 1024

    /// The CBOR bytes sent in the request iovec.
    public func encoded() -> [UInt8] {
        func optional(_ b: [UInt8]?) -> CBOR { b.map { .bytes($0) } ?? .null }
        let item: CBOR
        switch self {
        case .attestation(let userData, let nonce, let publicKey):
            item = .map([
                (
                    key: .text("Attestation"),
                    value: .map([
                        (key: .text("user_data"), value: optional(userData)),
                        (key: .text("nonce"), value: optional(nonce)),
                        (key: .text("public_key"), value: optional(publicKey)),
                    ])
                )
            ])
        case .describePCR(let index):
            item = .map([
                (key: .text("DescribePCR"), value: .map([(key: .text("index"), value: .unsigned(UInt64(index)))]))
            ])
        case .getRandom:
            item = .text("GetRandom")
        case .describeNSM:
            item = .text("DescribeNSM")
        }
        return CBOREncoder.encode(item)
    }

    /// The response variant name that answers this request.
    var responseName: String {
        switch self {
        case .attestation: return "Attestation"
        case .describePCR: return "DescribePCR"
        case .getRandom: return "GetRandom"
        case .describeNSM: return "DescribeNSM"
        }
    }

    /// Checks field sizes before anything reaches the device.
    func validate() throws(AttestationError) {
        if case .attestation(let userData, let nonce, let publicKey) = self {
            for (name, value) in [("user_data", userData), ("nonce", nonce), ("public_key", publicKey)] {
                if let value, value.count > Self.maxFieldBytes {
                    throw AttestationError(
                        .nsmInvalidRequest,
                        "\(name) is \(value.count) bytes, the NSM accepts at most \(Self.maxFieldBytes)"
                    )
                }
            }
        }
        let size = encoded().count
        if size > Self.maxEncodedBytes {
            throw AttestationError(.nsmInvalidRequest, "the request is \(size) bytes, at most \(Self.maxEncodedBytes)")
        }
    }
}

/// A decoded NSM response (only the variants our requests can produce, plus `Error`).
public enum NSMResponse: Sendable, Hashable {
    /// The COSE_Sign1 attestation document.
    case attestation(document: [UInt8])
    /// The PCR's value and whether it is locked.
    case describePCR(lock: Bool, data: [UInt8])
    /// Entropy from the NSM.
    case getRandom(random: [UInt8])
    /// The module's description.
    case describeNSM(NSMDescription)
    /// The NSM's error code name, e.g. `InvalidArgument`, `InputTooLarge`, `InternalError`.
    case error(String)

    /// The error code names aws-nitro-enclaves-nsm-api defines.
    public static let errorCodes: Set<String> = [
        "Success", "InvalidArgument", "InvalidIndex", "InvalidResponse", "ReadOnlyIndex", "InvalidOperation",
        "BufferTooSmall", "InputTooLarge", "InternalError",
    ]

    /// Decodes response bytes (the filled part of the response iovec).
    public init(decoding data: [UInt8]) throws(AttestationError) {
        let item: CBOR
        do {
            item = try CBORDecoder(limits: .init(maxInputBytes: NSMDevice.responseCapacity, maxDepth: 4, maxItems: 256))
                .decode(data)
        } catch {
            throw AttestationError(.nsmMalformedResponse, "NSM response: \(error)", cborError: error)
        }
        func malformed(_ why: String) -> AttestationError { AttestationError(.nsmMalformedResponse, why) }
        guard case .map(let outer) = item, outer.count == 1, case .text(let name) = outer[0].key else {
            throw malformed("an NSM response must be a one-entry map from a variant name, found \(item.typeName)")
        }
        let body = outer[0].value
        func field(_ key: String) throws(AttestationError) -> CBOR {
            guard let value = body[text: key] else { throw malformed("\(name) response has no \"\(key)\"") }
            return value
        }
        func bytes(_ key: String) throws(AttestationError) -> [UInt8] {
            guard case .bytes(let b) = try field(key) else { throw malformed("\(name).\(key) must be a byte string") }
            return b
        }
        func uint16(_ key: String) throws(AttestationError) -> UInt16 {
            guard case .unsigned(let v) = try field(key), v <= UInt64(UInt16.max) else {
                throw malformed("\(name).\(key) must be an unsigned 16-bit integer")
            }
            return UInt16(v)
        }
        switch name {
        case "Error":
            guard case .text(let code) = body, Self.errorCodes.contains(code) else {
                throw malformed("an NSM error must be one of the known error code names")
            }
            self = .error(code)
        case "Attestation":
            self = .attestation(document: try bytes("document"))
        case "GetRandom":
            self = .getRandom(random: try bytes("random"))
        case "DescribePCR":
            guard case .bool(let lock) = try field("lock") else {
                throw malformed("DescribePCR.lock must be a boolean")
            }
            self = .describePCR(lock: lock, data: try bytes("data"))
        case "DescribeNSM":
            guard case .text(let moduleID) = try field("module_id") else {
                throw malformed("DescribeNSM.module_id must be a text string")
            }
            guard case .text(let digest) = try field("digest") else {
                throw malformed("DescribeNSM.digest must be a text string")
            }
            guard case .array(let lockedItems) = try field("locked_pcrs") else {
                throw malformed("DescribeNSM.locked_pcrs must be an array")
            }
            var locked: [UInt16] = []
            for entry in lockedItems {
                guard case .unsigned(let v) = entry, v <= UInt64(UInt16.max) else {
                    throw malformed("DescribeNSM.locked_pcrs entries must be unsigned 16-bit integers")
                }
                locked.append(UInt16(v))
            }
            self = .describeNSM(
                NSMDescription(
                    versionMajor: try uint16("version_major"),
                    versionMinor: try uint16("version_minor"),
                    versionPatch: try uint16("version_patch"),
                    moduleID: moduleID,
                    maxPCRs: try uint16("max_pcrs"),
                    lockedPCRs: locked,
                    digest: digest
                )
            )
        default:
            throw malformed("unknown NSM response variant \"\(name.prefix(32))\"")
        }
    }

    /// The bytes the NSM would send for this response (used by tests and the fake transport).
    public func encoded() -> [UInt8] {
        func variant(_ name: String, _ fields: [(String, CBOR)]) -> CBOR {
            .map([(key: .text(name), value: .map(fields.map { (key: .text($0.0), value: $0.1) }))])
        }
        switch self {
        case .attestation(let document):
            return CBOREncoder.encode(variant("Attestation", [("document", .bytes(document))]))
        case .getRandom(let random): return CBOREncoder.encode(variant("GetRandom", [("random", .bytes(random))]))
        case .describePCR(let lock, let data):
            return CBOREncoder.encode(variant("DescribePCR", [("lock", .bool(lock)), ("data", .bytes(data))]))
        case .describeNSM(let d):
            return CBOREncoder.encode(
                variant(
                    "DescribeNSM",
                    [
                        ("version_major", .unsigned(UInt64(d.versionMajor))),
                        ("version_minor", .unsigned(UInt64(d.versionMinor))),
                        ("version_patch", .unsigned(UInt64(d.versionPatch))), ("module_id", .text(d.moduleID)),
                        ("max_pcrs", .unsigned(UInt64(d.maxPCRs))),
                        ("locked_pcrs", .array(d.lockedPCRs.map { .unsigned(UInt64($0)) })),
                        ("digest", .text(d.digest)),
                    ]
                )
            )
        case .error(let code): return CBOREncoder.encode(.map([(key: .text("Error"), value: .text(code))]))
        }
    }
}

/// What `DescribeNSM` reports about the module.
public struct NSMDescription: Sendable, Hashable {
    public var versionMajor: UInt16
    public var versionMinor: UInt16
    public var versionPatch: UInt16
    public var moduleID: String
    public var maxPCRs: UInt16
    public var lockedPCRs: [UInt16]
    public var digest: String

    public init(
        versionMajor: UInt16,
        versionMinor: UInt16,
        versionPatch: UInt16,
        moduleID: String,
        maxPCRs: UInt16,
        lockedPCRs: [UInt16],
        digest: String
    ) {
        self.versionMajor = versionMajor
        self.versionMinor = versionMinor
        self.versionPatch = versionPatch
        self.moduleID = moduleID
        self.maxPCRs = maxPCRs
        self.lockedPCRs = lockedPCRs
        self.digest = digest
    }
}
