import Crypto

/// Something that produces attestation documents for an enclave: the NSM inside a real Nitro
/// Enclave, the ``DevelopmentAttestor`` in local mode. The enclave asks with the three values it
/// wants bound (its RSA public key for KMS, the user data, the server's nonce; each ≤ 1024 bytes)
/// and gets back COSE_Sign1 bytes in the Nitro format.
///
/// The seam in local mode: the **launcher** (the server process that starts `cleanroom-enclave`)
/// holds the ``DevelopmentAttestor`` and measures the executable it launched; the enclave child
/// sends its (public_key, user_data, nonce) over its channel and receives the document. So the
/// enclave cannot choose its own PCR0 — as on Nitro, where the hypervisor measures the image.
/// Inside a real enclave the same request goes to ``NSMDevice`` instead.
public protocol Attestor: Sendable {
    /// A fresh attestation document binding these values.
    func attestationDocument(
        publicKey: [UInt8]?,
        userData: [UInt8]?,
        nonce: [UInt8]?
    ) throws(AttestationError) -> [UInt8]
}

extension NSMDevice: Attestor {
    public func attestationDocument(
        publicKey: [UInt8]?,
        userData: [UInt8]?,
        nonce: [UInt8]?
    )
        throws(AttestationError) -> [UInt8]
    {
        try attestation(userData: userData, nonce: nonce, publicKey: publicKey)
    }
}

/// Issues Nitro-format documents signed by the ``DevelopmentCA`` for local mode: same COSE_Sign1
/// (ES384, protected header `a1 01 38 22`, empty unprotected header), same nine payload keys in
/// AWS's order with nulls for absent values, sixteen 48-byte PCRs with PCR0 = SHA-384 of the
/// enclave executable, cabundle `[root, intermediate]`, and a module id that says "development".
/// Only a verifier configured with the development root accepts them.
public struct DevelopmentAttestor: Attestor {
    /// The CA whose leaf signs.
    public let ca: DevelopmentCA
    /// What the documents report.
    public let measurements: DevelopmentMeasurements
    /// The document timestamp source.
    public let clock: @Sendable () -> UnixTime

    public init(
        ca: DevelopmentCA,
        measurements: DevelopmentMeasurements,
        clock: @escaping @Sendable () -> UnixTime = { UnixTime.now() }
    ) {
        self.ca = ca
        self.measurements = measurements
        self.clock = clock
    }

    /// Opens (or creates) the CA under `dataDirectory` and measures `enclaveExecutable`.
    public static func open(
        dataDirectory: String,
        enclaveExecutable: String,
        pcr1: [UInt8]? = nil,
        pcr2: [UInt8]? = nil
    ) throws(AttestationError) -> DevelopmentAttestor {
        DevelopmentAttestor(
            ca: try DevelopmentCA.openOrCreate(dataDirectory: dataDirectory),
            measurements: try DevelopmentMeasurements(executableAt: enclaveExecutable, pcr1: pcr1, pcr2: pcr2)
        )
    }

    /// The root to configure verifiers with (marked development).
    public var trustedRoot: TrustedRoot { ca.trustedRoot }

    /// `development-enc` followed by the leaf's serial number.
    public var moduleID: String { "development-enc" + ca.leaf.serialNumberHex }

    public func attestationDocument(
        publicKey: [UInt8]?,
        userData: [UInt8]?,
        nonce: [UInt8]?
    )
        throws(AttestationError) -> [UInt8]
    {
        for (name, value) in [("public_key", publicKey), ("user_data", userData), ("nonce", nonce)] {
            if let value, value.count > StructurePolicy.maxOptionalFieldBytes {
                throw AttestationError(
                    .nsmInvalidRequest,
                    "\(name) is \(value.count) bytes, at most \(StructurePolicy.maxOptionalFieldBytes)"
                )
            }
        }
        if let publicKey, publicKey.isEmpty {
            throw AttestationError(.nsmInvalidRequest, "public_key is empty; pass nil for none")
        }
        let payload = AttestationDocument.payloadItem(
            moduleID: moduleID,
            digest: "SHA384",
            timestamp: clock().milliseconds,
            pcrs: measurements.pcrs,
            certificate: ca.leaf.derRepresentation,
            cabundle: [ca.root.derRepresentation, ca.intermediate.derRepresentation],
            publicKey: publicKey,
            userData: userData,
            nonce: nonce
        )
        do {
            return try COSESign1.sign(payload: CBOREncoder.encode(payload), with: .p384(ca.leafKey)).encoded()
        } catch {
            throw AttestationError(.developmentCAInvalid, "signing with the development leaf failed: \(error)")
        }
    }
}
