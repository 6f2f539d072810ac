import Crypto
import Foundation

/// The leaf must chain through the cabundle to one of the configured roots, every certificate on
/// the path valid at the verification time (AWS §3.2.3; RFC 5280 path validation by OpenSSL, with
/// no TLS/hostname/EKU policy since Nitro leaves have no SAN or EKU).
///
/// The cabundle is the path (AWS §3.2.3), so every certificate in it must be valid at the time.
/// Validity periods are checked here first so that expiry has its own error code; the rest
/// (signatures, CA flags, path length, key usage, anchoring) is `Crypto.CertificateChainVerifier`.
public struct CertificateChainPolicy: AttestationPolicy {
    public let roots: [TrustedRoot]
    /// Paths validated before (see ``AttestationCache``); nil validates every time.
    public let cache: AttestationCache?

    public init(roots: [TrustedRoot], cache: AttestationCache? = nil) {
        self.roots = roots
        self.cache = cache
    }

    public func evaluate(_ document: AttestationDocument, context: AttestationPolicyContext) -> AttestationPolicyResult
    {
        do throws(AttestationError) {
            _ = try chain(for: document, context: context)
            return .meetsPolicy
        } catch {
            return .failsToMeetPolicy(error)
        }
    }

    /// Verifies and returns the chain (leaf first) and the root that anchors it.
    func chain(
        for document: AttestationDocument,
        context: AttestationPolicyContext
    ) throws(AttestationError)
        -> (chain: VerifiedCertificateChain, root: TrustedRoot)
    {
        guard !roots.isEmpty else { throw AttestationError(.untrustedChain, "no trusted roots are configured") }
        let parsed: ParsedCertificates
        if let leaf = context.leafCertificate, let bundle = context.cabundleCertificates {
            parsed = ParsedCertificates(leaf: leaf, cabundle: bundle)
        } else {
            parsed = try ParsedCertificates.parse(document, cache: cache)
        }
        let time = context.verificationTime
        let date = Date(timeIntervalSince1970: Double(time.seconds))
        // Leaf first, then the bundle from the leaf's issuer up to the root.
        let path =
            [("leaf certificate", parsed.leaf)]
            + parsed.cabundle.enumerated().reversed().map { ("cabundle[\($0.offset)]", $0.element) }
        for (name, certificate) in path {
            if date < certificate.notBefore {
                throw AttestationError(
                    .certificateNotYetValid,
                    "\(name) (\(certificate.subject)) is not valid before \(certificate.notBefore), verification time \(time)"
                )
            }
            // notAfter is exclusive here, as in OpenSSL's X509_cmp_time, so both checks agree.
            if date >= certificate.notAfter {
                throw AttestationError(
                    .certificateExpired,
                    "\(name) (\(certificate.subject)) expired at \(certificate.notAfter), verification time \(time)"
                )
            }
        }
        let key = cache.map { _ in AttestationCache.chainKey(leaf: parsed.leaf, cabundle: parsed.cabundle, roots: roots)
        }
        let verified: VerifiedCertificateChain
        if let key, let cached = cache?.chain(key),
            cached.certificates.allSatisfy({ date >= $0.notBefore && date < $0.notAfter })
        {
            verified = cached
        } else {
            let verifier = CertificateChainVerifier(roots: roots.map(\.certificate))
            do {
                verified = try verifier.verify(leaf: parsed.leaf, intermediates: parsed.cabundle, at: date)
            } catch let error as CryptoError {
                throw Self.classify(error)
            } catch {
                throw AttestationError(.chainInvalid, "certificate chain: \(error)")
            }
            if let key { cache?.store(verified, key: key) }
        }
        guard let root = roots.first(where: { $0.certificate == verified.root }) else {
            throw AttestationError(.untrustedChain, "the chain ends at a certificate that is not a configured root")
        }
        return (verified, root)
    }

    /// Maps OpenSSL's verify reason (X509_verify_cert_error_string) to our codes.
    static func classify(_ error: CryptoError) -> AttestationError {
        let reason = (error.openSSLReasons.first ?? error.message).lowercased()
        if reason.contains("signature failure") || reason.contains("unable to decode issuer public key") {
            return AttestationError(.chainSignatureInvalid, "certificate chain: \(error.message)")
        }
        if reason.contains("unable to get local issuer") || reason.contains("unable to get issuer")
            || reason.contains("self-signed certificate in certificate chain")
            || reason.contains("self signed certificate in certificate chain") || reason.contains("untrusted")
        {
            return AttestationError(.untrustedChain, "certificate chain: \(error.message)")
        }
        if reason.contains("expired") {
            return AttestationError(.certificateExpired, "certificate chain: \(error.message)")
        }
        if reason.contains("not yet valid") {
            return AttestationError(.certificateNotYetValid, "certificate chain: \(error.message)")
        }
        return AttestationError(.chainInvalid, "certificate chain: \(error.message)")
    }
}

/// The document's certificates, parsed once per verification.
struct ParsedCertificates: Sendable {
    let leaf: Certificate
    let cabundle: [Certificate]

    static func parse(
        _ document: AttestationDocument,
        cache: AttestationCache? = nil
    ) throws(AttestationError)
        -> ParsedCertificates
    {
        func parse(_ der: [UInt8], _ name: String) throws(AttestationError) -> Certificate {
            if let cache { return try cache.certificate(der, name: name) }
            do {
                return try Certificate(derEncoded: der)
            } catch {
                throw AttestationError(.malformedCertificate, "\(name) is not a DER X.509 certificate: \(error)")
            }
        }
        let leaf = try parse(document.certificate, "the leaf certificate")
        var bundle: [Certificate] = []
        for (i, der) in document.cabundle.enumerated() { bundle.append(try parse(der, "cabundle[\(i)]")) }
        return ParsedCertificates(leaf: leaf, cabundle: bundle)
    }
}
