import Crypto

/// Verifies Nitro attestation documents: the whole AWS procedure, as a list of small policies.
///
/// Configure it once with the trusted roots (the AWS Nitro Enclaves root in production, the
/// development root in local mode — never both unless you mean it) and a clock; then each call
/// checks structure → ES384 signature with the leaf key → chain to a root at the clock's time →
/// the caller's ``AttestationExpectations``. The first failing policy's error is thrown; only a
/// document that passed every policy comes back, as a ``VerifiedAttestationDocument``.
public struct AttestationVerifier: Sendable {
    /// The trust anchors.
    public let trustedRoots: [TrustedRoot]
    /// The injected clock; certificates and freshness are judged at its time.
    public let clock: @Sendable () -> UnixTime
    /// Parsed certificates and validated paths, shared by copies of this verifier (nil: none).
    public let cache: AttestationCache?

    /// A verifier with its own ``AttestationCache``.
    public init(trustedRoots: [TrustedRoot], clock: @escaping @Sendable () -> UnixTime = { UnixTime.now() }) {
        self.init(trustedRoots: trustedRoots, clock: clock, cache: AttestationCache())
    }

    /// A verifier with the given cache (nil: parse and validate everything on every call).
    public init(trustedRoots: [TrustedRoot], clock: @escaping @Sendable () -> UnixTime, cache: AttestationCache?) {
        self.trustedRoots = trustedRoots
        self.clock = clock
        self.cache = cache
    }

    /// A verifier that checks at a fixed time (tests, `cleanroom attestation verify --at`).
    public init(trustedRoots: [TrustedRoot], at time: UnixTime) {
        self.init(trustedRoots: trustedRoots, clock: { time }, cache: AttestationCache())
    }

    /// A verifier that checks at a fixed time with the given cache.
    public init(trustedRoots: [TrustedRoot], at time: UnixTime, cache: AttestationCache?) {
        self.init(trustedRoots: trustedRoots, clock: { time }, cache: cache)
    }

    /// The policies run for `expectations`, in order.
    public func policies(for expectations: AttestationExpectations) -> [any AttestationPolicy] {
        var policies: [any AttestationPolicy] = [
            StructurePolicy(), SignaturePolicy(), CertificateChainPolicy(roots: trustedRoots, cache: cache),
            DebugModePolicy(allowDebug: expectations.allowDebug),
        ]
        if let sets = expectations.allowedPCRSets { policies.append(PCRPolicy(allowedSets: sets)) }
        if let maxAge = expectations.maxAgeMilliseconds {
            policies.append(
                FreshnessPolicy(
                    maxAgeMilliseconds: maxAge,
                    maxFutureSkewMilliseconds: expectations.maxFutureSkewMilliseconds
                )
            )
        }
        if let nonce = expectations.nonce { policies.append(FieldPolicy(.nonce, equals: nonce)) }
        if let userData = expectations.userData { policies.append(FieldPolicy(.userData, equals: userData)) }
        if let publicKey = expectations.publicKey { policies.append(FieldPolicy(.publicKey, equals: publicKey)) }
        if expectations.requirePublicKey { policies.append(PublicKeyPresentPolicy()) }
        return policies + expectations.additionalPolicies
    }

    /// Decodes and verifies raw COSE_Sign1 bytes.
    public func verify(
        _ bytes: [UInt8],
        expectations: AttestationExpectations = AttestationExpectations()
    )
        throws(AttestationError) -> VerifiedAttestationDocument
    {
        try verify(AttestationDocument(bytes: bytes), expectations: expectations)
    }

    /// Verifies an already decoded document.
    public func verify(
        _ document: AttestationDocument,
        expectations: AttestationExpectations = AttestationExpectations()
    )
        throws(AttestationError) -> VerifiedAttestationDocument
    {
        var context = AttestationPolicyContext(verificationTime: clock())
        if let error = StructurePolicy.check(document) { throw error }
        let parsed = try ParsedCertificates.parse(document, cache: cache)
        context.leafCertificate = parsed.leaf
        context.cabundleCertificates = parsed.cabundle

        var root: TrustedRoot?
        var chain: VerifiedCertificateChain?
        for policy in policies(for: expectations) {
            if let chainPolicy = policy as? CertificateChainPolicy {
                (chain, root) = try chainPolicy.chain(for: document, context: context)
                continue
            }
            if case .failsToMeetPolicy(let error) = policy.evaluate(document, context: context) { throw error }
        }
        guard let root, let chain else {
            throw AttestationError(.untrustedChain, "the chain policy did not run")
        }
        return VerifiedAttestationDocument(
            document: document,
            trustedRoot: root,
            chain: chain,
            verificationTime: context.verificationTime
        )
    }
}

/// What the caller requires of a document beyond authenticity. The defaults refuse debug-mode
/// enclaves and documents older than five minutes, and constrain nothing else.
public struct AttestationExpectations: Sendable {
    /// The PCRs must match one of these sets; nil accepts any measurement (e.g. for inspection).
    public var allowedPCRSets: [PCRSet]?
    /// Accept a debug-mode enclave (PCR0 all zeros).
    public var allowDebug: Bool
    /// Oldest acceptable document relative to the verifier's clock; nil skips the freshness check.
    public var maxAgeMilliseconds: UInt64?
    /// How far the document's timestamp may run ahead of the verifier's clock.
    public var maxFutureSkewMilliseconds: UInt64
    /// The nonce the document must carry.
    public var nonce: [UInt8]?
    /// The user data the document must carry.
    public var userData: [UInt8]?
    /// The exact public key the document must carry.
    public var publicKey: [UInt8]?
    /// Require some public key (a key release encrypts to it).
    public var requirePublicKey: Bool
    /// Further rules, run last.
    public var additionalPolicies: [any AttestationPolicy]

    public init(
        allowedPCRSets: [PCRSet]? = nil,
        allowDebug: Bool = false,
        maxAgeMilliseconds: UInt64? = 300_000,
        maxFutureSkewMilliseconds: UInt64 = 60_000,
        nonce: [UInt8]? = nil,
        userData: [UInt8]? = nil,
        publicKey: [UInt8]? = nil,
        requirePublicKey: Bool = false,
        additionalPolicies: [any AttestationPolicy] = []
    ) {
        self.allowedPCRSets = allowedPCRSets
        self.allowDebug = allowDebug
        self.maxAgeMilliseconds = maxAgeMilliseconds
        self.maxFutureSkewMilliseconds = maxFutureSkewMilliseconds
        self.nonce = nonce
        self.userData = userData
        self.publicKey = publicKey
        self.requirePublicKey = requirePublicKey
        self.additionalPolicies = additionalPolicies
    }
}
