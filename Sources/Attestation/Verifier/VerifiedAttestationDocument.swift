import Crypto

/// An attestation document that passed every policy of an ``AttestationVerifier``. Only the
/// verifier creates one, so code that takes this type cannot be handed unverified claims.
public struct VerifiedAttestationDocument: Sendable {
    /// The underlying decoded document.
    public let document: AttestationDocument
    /// The configured root the chain ends at.
    public let trustedRoot: TrustedRoot
    /// The verified path, leaf first, root last. Its `verificationTime` is when OpenSSL validated the
    /// path, which may be earlier than ``verificationTime`` when the verifier's cache served it.
    public let chain: VerifiedCertificateChain
    /// When (by the verifier's clock) the checks were made.
    public let verificationTime: UnixTime

    init(
        document: AttestationDocument,
        trustedRoot: TrustedRoot,
        chain: VerifiedCertificateChain,
        verificationTime: UnixTime
    ) {
        self.document = document
        self.trustedRoot = trustedRoot
        self.chain = chain
        self.verificationTime = verificationTime
    }

    /// True when the document chains to a development root (local mode): mark every output.
    public var isDevelopment: Bool { trustedRoot.isDevelopment }
    public var moduleID: String { document.moduleID }
    /// Milliseconds since the epoch.
    public var timestamp: UInt64 { document.timestamp }
    public var pcrs: [Int: [UInt8]] { document.pcrs }
    /// PCR `index` as lowercase hex (the form of `kms:RecipientAttestation:PCRn` and `ImageSha384` = PCR0).
    public func pcrHex(_ index: Int) -> String? { document.pcrs[index].map { Hex.encode($0) } }
    public var publicKey: [UInt8]? { document.publicKey }
    public var userData: [UInt8]? { document.userData }
    public var nonce: [UInt8]? { document.nonce }
    /// True when PCR0 is all zeros.
    public var isDebugMode: Bool { document.isDebugMode }
}
