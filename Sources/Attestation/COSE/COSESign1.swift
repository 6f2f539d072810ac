/// A COSE_Sign1 message (RFC 9052 §4.2): protected header, unprotected header, payload, signature.
///
/// Parsing checks the shape only; nothing here is trusted until ``COSESign1/verify(with:)`` (or an
/// attestation verifier) has checked the signature over ``signatureStructure(externalAAD:)``.
/// The protected header is kept as the exact bytes received, since those are what was signed.
public struct COSESign1: Sendable, Hashable {
    /// CBOR tag of a tagged COSE_Sign1 (RFC 9052 §2).
    public static let tag: UInt64 = 18

    /// The serialized protected header map, exactly as received (may be empty: the empty map).
    public let protectedHeaderBytes: [UInt8]
    /// The decoded protected header map (integer or text labels).
    public let protectedHeader: [(label: CBOR, value: CBOR)]
    /// The unprotected header map.
    public let unprotectedHeader: [(label: CBOR, value: CBOR)]
    /// The payload, or nil when detached.
    public let payload: [UInt8]?
    /// The signature; for ECDSA the raw r ‖ s (RFC 9053 §2.1).
    public let signature: [UInt8]
    /// Whether the input carried tag 18.
    public let isTagged: Bool
    /// The algorithm named by the protected header.
    public let algorithm: COSEAlgorithm

    public static func == (lhs: COSESign1, rhs: COSESign1) -> Bool {
        lhs.protectedHeaderBytes == rhs.protectedHeaderBytes && lhs.payload == rhs.payload
            && lhs.signature == rhs.signature && lhs.isTagged == rhs.isTagged
            && CBOR.map(lhs.unprotectedHeader.map { ($0.label, $0.value) })
                == CBOR.map(rhs.unprotectedHeader.map { ($0.label, $0.value) })
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(protectedHeaderBytes)
        hasher.combine(payload)
        hasher.combine(signature)
    }

    /// Parses tagged or untagged COSE_Sign1 bytes.
    public init(bytes: [UInt8], limits: CBORDecoder.Limits = .default) throws(AttestationError) {
        let item: CBOR
        do {
            item = try CBORDecoder(limits: limits).decode(bytes)
        } catch {
            throw AttestationError.cbor(error, in: "COSE_Sign1")
        }
        try self.init(item: item)
    }

    /// Interprets an already decoded item as a COSE_Sign1.
    public init(item: CBOR) throws(AttestationError) {
        var message = item
        var tagged = false
        if case .tagged(let tag, let inner) = item {
            guard tag == Self.tag else {
                throw AttestationError(.unexpectedCOSETag, "tag \(tag) is not COSE_Sign1 (18)")
            }
            message = inner
            tagged = true
        }
        guard case .array(let parts) = message, parts.count == 4 else {
            throw AttestationError(.malformedCOSE, "COSE_Sign1 must be an array of 4, found \(message.typeName)")
        }
        guard case .bytes(let protectedBytes) = parts[0] else {
            throw AttestationError(
                .malformedCOSE,
                "the protected header must be a byte string, found \(parts[0].typeName)"
            )
        }
        guard case .map(let unprotected) = parts[1] else {
            throw AttestationError(.malformedCOSE, "the unprotected header must be a map, found \(parts[1].typeName)")
        }
        let payload: [UInt8]?
        switch parts[2] {
        case .bytes(let b): payload = b
        case .null: payload = nil
        default:
            throw AttestationError(
                .malformedCOSE,
                "the payload must be a byte string or null, found \(parts[2].typeName)"
            )
        }
        guard case .bytes(let signature) = parts[3] else {
            throw AttestationError(.malformedCOSE, "the signature must be a byte string, found \(parts[3].typeName)")
        }

        // RFC 9052 §3: a zero-length protected header stands for the empty map.
        var protected: [(key: CBOR, value: CBOR)] = []
        if !protectedBytes.isEmpty {
            let decoded: CBOR
            do {
                decoded = try CBORDecoder(limits: .init(maxInputBytes: 4096, maxDepth: 8, maxItems: 256)).decode(
                    protectedBytes
                )
            } catch {
                throw AttestationError(.malformedCOSEHeader, "protected header: \(error)", cborError: error)
            }
            guard case .map(let pairs) = decoded else {
                throw AttestationError(
                    .malformedCOSEHeader,
                    "the protected header must encode a map, found \(decoded.typeName)"
                )
            }
            protected = pairs
        }
        for pair in unprotected where protected.contains(where: { $0.key == pair.key }) {
            throw AttestationError(
                .malformedCOSEHeader,
                "header label \(pair.key.typeName) appears in both header buckets"
            )
        }
        if protected.contains(where: { $0.key == .unsigned(2) })
            || unprotected.contains(where: { $0.key == .unsigned(2) })
        {
            throw AttestationError(.unsupportedCriticalHeader, "critical header parameters (label 2) are not supported")
        }
        guard let algorithmItem = protected.first(where: { $0.key == .unsigned(1) })?.value else {
            throw AttestationError(.unsupportedAlgorithm, "the protected header names no algorithm (label 1)")
        }
        guard let value = algorithmItem.intValue, let algorithm = COSEAlgorithm(rawValue: value) else {
            throw AttestationError(
                .unsupportedAlgorithm,
                "algorithm \(algorithmItem.intValue.map(String.init) ?? algorithmItem.typeName) is not ES256 or ES384"
            )
        }
        self.protectedHeaderBytes = protectedBytes
        self.protectedHeader = protected.map { (label: $0.key, value: $0.value) }
        self.unprotectedHeader = unprotected.map { (label: $0.key, value: $0.value) }
        self.payload = payload
        self.signature = signature
        self.isTagged = tagged
        self.algorithm = algorithm
    }

    /// Builds an unsigned message's parts; used by ``COSESign1/sign(payload:algorithm:signer:tagged:)``.
    init(
        protectedHeaderBytes: [UInt8],
        algorithm: COSEAlgorithm,
        unprotectedHeader: [(label: CBOR, value: CBOR)],
        payload: [UInt8],
        signature: [UInt8],
        tagged: Bool
    ) {
        self.protectedHeaderBytes = protectedHeaderBytes
        self.protectedHeader = [(label: .unsigned(1), value: .int(algorithm.rawValue))]
        self.unprotectedHeader = unprotectedHeader
        self.payload = payload
        self.signature = signature
        self.isTagged = tagged
        self.algorithm = algorithm
    }

    /// The bytes to sign or verify (RFC 9052 §4.4): the CBOR array
    /// `["Signature1", protected, external_aad, payload]`.
    public func signatureStructure(externalAAD: [UInt8] = []) -> [UInt8] {
        Self.signatureStructure(
            protectedHeaderBytes: protectedHeaderBytes,
            externalAAD: externalAAD,
            payload: payload ?? []
        )
    }

    /// Sig_structure for a given protected header and payload.
    public static func signatureStructure(
        protectedHeaderBytes: [UInt8],
        externalAAD: [UInt8] = [],
        payload: [UInt8]
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(protectedHeaderBytes.count + externalAAD.count + payload.count + 32)
        CBOREncoder.appendHead(major: 4, 4, to: &out)
        CBOREncoder().append(.text("Signature1"), to: &out)
        CBOREncoder.appendHead(major: 2, UInt64(protectedHeaderBytes.count), to: &out)
        out += protectedHeaderBytes
        CBOREncoder.appendHead(major: 2, UInt64(externalAAD.count), to: &out)
        out += externalAAD
        CBOREncoder.appendHead(major: 2, UInt64(payload.count), to: &out)
        out += payload
        return out
    }

    /// The serialized message, untagged unless it was parsed from (or created as) a tagged one.
    public func encoded() -> [UInt8] {
        let parts: CBOR = .array([
            .bytes(protectedHeaderBytes),
            .map(unprotectedHeader.map { (key: $0.label, value: $0.value) }),
            payload.map { .bytes($0) } ?? .null,
            .bytes(signature),
        ])
        return CBOREncoder.encode(isTagged ? .tagged(Self.tag, parts) : parts)
    }
}

/// The COSE signature algorithms this project accepts (RFC 9053 §2.1).
public enum COSEAlgorithm: Int, Sendable, Hashable, CaseIterable {
    /// ECDSA P-256 with SHA-256.
    case es256 = -7
    /// ECDSA P-384 with SHA-384 (Nitro attestation documents).
    case es384 = -35

    /// Length of a raw r ‖ s signature.
    public var signatureLength: Int { self == .es256 ? 64 : 96 }

    /// The serialized protected header `{1: alg}` in the form AWS writes it (e.g. `a1 01 38 22`).
    public var protectedHeaderBytes: [UInt8] {
        CBOREncoder.encode(.map([(key: .unsigned(1), value: .int(rawValue))]))
    }
}
