import Crypto
import Foundation
import Synchronization

/// Remembers parsed certificates and certificate paths that already passed OpenSSL's path
/// validation, so that documents from an enclave the verifier has seen before (same leaf, same
/// cabundle — the NSM reuses its leaf for about three hours) cost one ES384 check instead of five.
///
/// Sound because path validation here depends only on the certificates, the trusted roots and
/// the time: no revocation or other outside state. A cached path is reused only for the same
/// leaf, cabundle and roots, and only at times inside every certificate's validity period (the
/// chain policy still checks those periods on each call). Bounded: when full it starts over.
public final class AttestationCache: Sendable {
    /// Most parsed certificates kept.
    public let maxCertificates: Int
    /// Most validated paths kept.
    public let maxChains: Int

    private struct State {
        var certificates: [[UInt8]: Certificate] = [:]
        var chains: [[UInt8]: VerifiedCertificateChain] = [:]
        var chainHits = 0
    }

    private let state = Mutex(State())
    /// How many path questions were answered from the cache.
    var chainHits: Int { state.withLock { $0.chainHits } }

    public init(maxCertificates: Int = 1024, maxChains: Int = 256) {
        self.maxCertificates = maxCertificates
        self.maxChains = maxChains
    }

    /// The parsed certificate for `der`, parsing it on first sight.
    func certificate(_ der: [UInt8], name: String) throws(AttestationError) -> Certificate {
        let key = HashFunction.sha256.hash(der)
        if let cached = state.withLock({ $0.certificates[key] }) { return cached }
        let parsed: Certificate
        do {
            parsed = try Certificate(derEncoded: der)
        } catch {
            throw AttestationError(.malformedCertificate, "\(name) is not a DER X.509 certificate: \(error)")
        }
        state.withLock {
            if $0.certificates.count >= maxCertificates { $0.certificates.removeAll(keepingCapacity: true) }
            $0.certificates[key] = parsed
        }
        return parsed
    }

    /// The cache key of a path question: roots, leaf and bundle, each length-prefixed.
    static func chainKey(leaf: Certificate, cabundle: [Certificate], roots: [TrustedRoot]) -> [UInt8] {
        var hasher = IncrementalHash(.sha256)
        for der in roots.map(\.certificate.derRepresentation) + [leaf.derRepresentation]
            + cabundle.map(\.derRepresentation)
        {
            var length = UInt32(der.count).bigEndian
            withUnsafeBytes(of: &length) { hasher.update($0) }
            hasher.update(der)
        }
        return hasher.finalize()
    }

    func chain(_ key: [UInt8]) -> VerifiedCertificateChain? {
        state.withLock {
            let found = $0.chains[key]
            if found != nil { $0.chainHits += 1 }
            return found
        }
    }

    func store(_ chain: VerifiedCertificateChain, key: [UInt8]) {
        state.withLock {
            if $0.chains.count >= maxChains { $0.chains.removeAll(keepingCapacity: true) }
            $0.chains[key] = chain
        }
    }

    /// Forgets everything.
    public func removeAll() {
        state.withLock {
            $0.certificates.removeAll()
            $0.chains.removeAll()
        }
    }
}
