import COpenSSL
import Foundation

/// A certificate chain that verified: `leaf` first, the trusted root last.
/// Only `CertificateChainVerifier` makes one, so holding one means the path check passed.
public struct VerifiedCertificateChain: Sendable {
    /// The certificates from leaf to root.
    public let certificates: [Certificate]
    /// The time the chain was checked at.
    public let verificationTime: Date
    public var leaf: Certificate { certificates[0] }
    public var root: Certificate { certificates[certificates.count - 1] }
}

/// Verifies certificate chains with OpenSSL's RFC 5280 path validation (`X509_verify_cert`):
/// signatures, validity at a caller-given time, CA flags, path lengths and key usage of issuers.
///
/// Only the caller's roots are trusted (no system store, no partial chains: an intermediate
/// is never a trust anchor). There is no hostname, extended-key-usage or purpose policy, which
/// is what AWS Nitro attestation leaves (no SAN, no EKU) need.
public struct CertificateChainVerifier: Sendable {
    /// The trust anchors.
    public let roots: [Certificate]

    public init(roots: [Certificate]) {
        self.roots = roots
    }

    /// Verifies `leaf` up to one of the roots through `intermediates` (any order), at `time`.
    /// Throws `.chainVerificationFailure` with OpenSSL's verify reason (e.g. "certificate has expired").
    public func verify(leaf: Certificate, intermediates: [Certificate], at time: Date) throws -> VerifiedCertificateChain {
        guard !roots.isEmpty else { throw CryptoError(.chainVerificationFailure, "no trusted roots given") }
        OpenSSLErrorQueue.clear()
        guard let store = X509_STORE_new() else { throw CryptoError.openSSL(.internalError, "X509_STORE_new") }
        defer { X509_STORE_free(store) }
        for root in roots {
            guard X509_STORE_add_cert(store, root.handle.pointer) == 1 else {
                // A duplicate root is harmless; anything else is not.
                let reasons = OpenSSLErrorQueue.drain()
                if reasons.contains(where: { $0.contains("already in hash table") }) { continue }
                throw CryptoError(.internalError, "adding a root", openSSLReasons: reasons)
            }
        }
        guard let untrusted = shim_sk_X509_new_null() else { throw CryptoError.openSSL(.internalError, "sk_X509") }
        defer { shim_sk_X509_free(untrusted) }  // frees the stack only; the certificates stay ours
        for certificate in intermediates {
            guard shim_sk_X509_push(untrusted, certificate.handle.pointer) > 0 else {
                throw CryptoError.openSSL(.internalError, "sk_X509_push")
            }
        }
        guard let ctx = X509_STORE_CTX_new() else { throw CryptoError.openSSL(.internalError, "X509_STORE_CTX_new") }
        defer { X509_STORE_CTX_free(ctx) }
        guard X509_STORE_CTX_init(ctx, store, leaf.handle.pointer, untrusted) == 1 else {
            throw CryptoError.openSSL(.internalError, "X509_STORE_CTX_init")
        }
        // Check validity at the given time (sets X509_V_FLAG_USE_CHECK_TIME). Partial chains stay off.
        X509_STORE_CTX_set_time(ctx, 0, time_t(time.timeIntervalSince1970.rounded(.down)))
        let result = X509_verify_cert(ctx)
        guard result == 1 else {
            let code = X509_STORE_CTX_get_error(ctx)
            let depth = X509_STORE_CTX_get_error_depth(ctx)
            let reason = X509_verify_cert_error_string(Int(code)).map { String(cString: $0) } ?? "unknown"
            var reasons = OpenSSLErrorQueue.drain()
            reasons.insert(reason, at: 0)
            throw CryptoError(
                .chainVerificationFailure, "certificate chain does not verify at depth \(depth): \(reason)",
                openSSLReasons: reasons,
                chainFailure: ChainFailure(openSSLCode: Int(code), depth: Int(depth)))
        }
        guard let chain = X509_STORE_CTX_get1_chain(ctx) else {
            throw CryptoError.openSSL(.internalError, "X509_STORE_CTX_get1_chain")
        }
        defer { shim_sk_X509_pop_free(chain) }
        var certificates: [Certificate] = []
        let candidates = [leaf] + intermediates + roots
        for index in 0..<shim_sk_X509_num(chain) {
            guard let x = shim_sk_X509_value(chain, index) else { continue }
            if let match = candidates.first(where: { X509_cmp($0.handle.pointer, x) == 0 }) {
                certificates.append(match)
            }
        }
        OpenSSLErrorQueue.clear()
        return VerifiedCertificateChain(certificates: certificates, verificationTime: time)
    }
}

/// Why a certificate chain did not verify, from OpenSSL's `X509_V_ERR_*` code. Carried by
/// `CryptoError.chainFailure` on `.chainVerificationFailure` errors, so callers branch on a
/// reason instead of matching message text.
public struct ChainFailure: Sendable, Equatable {
    /// The broad reason.
    public enum Reason: Sendable, Equatable {
        /// A certificate's notAfter is before the verification time.
        case expired
        /// A certificate's notBefore is after the verification time.
        case notYetValid
        /// The path does not reach a given root (missing intermediate, wrong root, partial chain).
        case untrusted
        /// A signature on the path does not verify, or an issuer key cannot be decoded.
        case signatureInvalid
        /// An issuer is not a CA (basicConstraints) or its keyUsage forbids certificate signing.
        case issuerNotAuthorized
        /// A pathLenConstraint is exceeded.
        case pathLengthExceeded
        /// A certificate field is malformed (e.g. a bad validity time).
        case malformed
        /// Any other OpenSSL verify error; see `openSSLCode`.
        case other
    }

    public let reason: Reason
    /// OpenSSL's `X509_V_ERR_*` value.
    public let openSSLCode: Int
    /// Depth of the failing certificate: 0 is the leaf.
    public let depth: Int

    public init(openSSLCode: Int, depth: Int) {
        self.openSSLCode = openSSLCode
        self.depth = depth
        switch Int32(openSSLCode) {
        case X509_V_ERR_CERT_HAS_EXPIRED: reason = .expired
        case X509_V_ERR_CERT_NOT_YET_VALID: reason = .notYetValid
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
            X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
            X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_CERT_UNTRUSTED, X509_V_ERR_CERT_REJECTED:
            reason = .untrusted
        case X509_V_ERR_CERT_SIGNATURE_FAILURE, X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE,
            X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
            reason = .signatureInvalid
        case X509_V_ERR_INVALID_CA, X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
            reason = .issuerNotAuthorized
        case X509_V_ERR_PATH_LENGTH_EXCEEDED:
            reason = .pathLengthExceeded
        case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD, X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD,
            X509_V_ERR_INVALID_EXTENSION, X509_V_ERR_INVALID_NON_CA:
            reason = .malformed
        default:
            reason = .other
        }
    }
}
