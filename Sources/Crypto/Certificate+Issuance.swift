import COpenSSL
import Foundation

/// A private key that can sign certificates.
public enum CertificateSigningKey: Sendable {
    case p256(P256.Signing.PrivateKey)
    case p384(P384.Signing.PrivateKey)

    var pkey: PKey {
        switch self {
        case .p256(let key): return key.key
        case .p384(let key): return key.key
        }
    }

    /// The SubjectPublicKeyInfo DER of the matching public key.
    public var subjectPublicKeyInfo: [UInt8] {
        get throws { try pkey.publicKeyDER() }
    }
}

extension Certificate {
    /// Who signs a certificate being issued.
    public enum Issuer: Sendable {
        /// Self-signed: issuer name = subject name, signed by this key (whose public key must be the subject's).
        case selfSigned(CertificateSigningKey)
        /// Signed by a CA certificate and its private key.
        case certificate(Certificate, key: CertificateSigningKey)
    }

    /// The basicConstraints extension of a certificate being issued (always marked critical).
    public enum BasicConstraintsSetting: Sendable, Equatable {
        /// `CA:TRUE`, with an optional pathLenConstraint.
        case certificateAuthority(pathLength: Int?)
        /// `CA:FALSE`.
        case endEntity
        /// No basicConstraints extension.
        case absent
    }

    /// Issues an X.509 v3 certificate (for tests and the development attestation CA).
    ///
    /// Adds basicConstraints and keyUsage (critical) as asked, a subjectKeyIdentifier (SHA-1 of
    /// the key) and, unless self-signed, an authorityKeyIdentifier. Signs with ECDSA and
    /// `signatureHash` (SHA-256 or SHA-384). `serialNumber` is 1–20 big-endian bytes, not all zero.
    public static func issue(
        subject: DistinguishedName,
        subjectPublicKeyInfo: [UInt8],
        serialNumber: [UInt8],
        notBefore: Date,
        notAfter: Date,
        issuer: Issuer,
        basicConstraints: BasicConstraintsSetting,
        keyUsage: KeyUsage?,
        signatureHash: HashFunction = .sha384
    ) throws -> Certificate {
        guard signatureHash == .sha256 || signatureHash == .sha384 || signatureHash == .sha512 else {
            throw CryptoError(.invalidArgument, "certificates are signed with SHA-256, SHA-384 or SHA-512")
        }
        guard (1...20).contains(serialNumber.count), serialNumber.contains(where: { $0 != 0 }) else {
            throw CryptoError(.invalidArgument, "a serial number is 1 to 20 bytes and not zero")
        }
        guard notBefore < notAfter else { throw CryptoError(.invalidArgument, "notBefore must precede notAfter") }
        guard !subject.attributes.isEmpty else { throw CryptoError(.invalidArgument, "empty subject name") }
        if case .certificateAuthority(let pathLength?) = basicConstraints, pathLength < 0 {
            throw CryptoError(.invalidArgument, "negative path length")
        }
        let subjectKey = try PKey.fromPublicKeyDER(subjectPublicKeyInfo)

        OpenSSLErrorQueue.clear()
        guard let x = X509_new() else { throw CryptoError.openSSL(.internalError, "X509_new") }
        defer { X509_free(x) }
        guard X509_set_version(x, 2) == 1 else { throw CryptoError.openSSL(.internalError, "X509_set_version") }

        // Serial number (positive INTEGER).
        guard let bn = BN_bin2bn(serialNumber, Int32(serialNumber.count), nil) else {
            throw CryptoError.openSSL(.internalError, "serial")
        }
        defer { BN_free(bn) }
        guard let serial = BN_to_ASN1_INTEGER(bn, nil) else { throw CryptoError.openSSL(.internalError, "serial") }
        defer { ASN1_INTEGER_free(serial) }
        guard X509_set_serialNumber(x, serial) == 1 else { throw CryptoError.openSSL(.internalError, "serial") }

        // Names.
        let subjectName = try makeName(subject)
        defer { X509_NAME_free(subjectName) }
        guard X509_set_subject_name(x, subjectName) == 1 else { throw CryptoError.openSSL(.internalError, "subject") }
        let signingKey: CertificateSigningKey
        let issuerX509: OpaquePointer
        switch issuer {
        case .selfSigned(let key):
            signingKey = key
            issuerX509 = x
            guard try key.subjectPublicKeyInfo == subjectKey.publicKeyDER() else {
                throw CryptoError(.invalidArgument, "a self-signed certificate's key must be the signing key")
            }
            guard X509_set_issuer_name(x, subjectName) == 1 else { throw CryptoError.openSSL(.internalError, "issuer") }
        case .certificate(let certificate, let key):
            signingKey = key
            issuerX509 = certificate.handle.pointer
            guard X509_check_private_key(issuerX509, key.pkey.pointer) == 1 else {
                OpenSSLErrorQueue.clear()
                throw CryptoError(.invalidArgument, "the issuer key does not match the issuer certificate")
            }
            guard X509_set_issuer_name(x, X509_get_subject_name(issuerX509)) == 1 else {
                throw CryptoError.openSSL(.internalError, "issuer")
            }
        }

        // Validity (UTCTime before 2050, GeneralizedTime after, as RFC 5280 requires).
        guard ASN1_TIME_set(X509_getm_notBefore(x), time_t(notBefore.timeIntervalSince1970.rounded(.down))) != nil,
            ASN1_TIME_set(X509_getm_notAfter(x), time_t(notAfter.timeIntervalSince1970.rounded(.down))) != nil
        else { throw CryptoError.openSSL(.internalError, "validity") }

        guard X509_set_pubkey(x, subjectKey.pointer) == 1 else { throw CryptoError.openSSL(.internalError, "pubkey") }

        // Extensions.
        var ctx = X509V3_CTX()
        X509V3_set_ctx(&ctx, issuerX509, x, nil, nil, 0)
        func add(_ nid: Int32, _ value: String) throws {
            guard let ext = X509V3_EXT_conf_nid(nil, &ctx, nid, value) else {
                throw CryptoError.openSSL(.internalError, "building extension \(value)")
            }
            defer { X509_EXTENSION_free(ext) }
            guard X509_add_ext(x, ext, -1) == 1 else { throw CryptoError.openSSL(.internalError, "adding extension") }
        }
        switch basicConstraints {
        case .certificateAuthority(let pathLength):
            try add(NID_basic_constraints, "critical,CA:TRUE" + (pathLength.map { ",pathlen:\($0)" } ?? ""))
        case .endEntity:
            try add(NID_basic_constraints, "critical,CA:FALSE")
        case .absent:
            break
        }
        if let keyUsage {
            guard !keyUsage.isEmpty else { throw CryptoError(.invalidArgument, "empty key usage") }
            try add(NID_key_usage, "critical," + keyUsage.names.joined(separator: ","))
        }
        try add(NID_subject_key_identifier, "hash")
        if case .certificate = issuer {
            try add(NID_authority_key_identifier, "keyid:always")
        }

        guard X509_sign(x, signingKey.pkey.pointer, signatureHash.evpMD) > 0 else {
            throw CryptoError.openSSL(.internalError, "signing the certificate")
        }
        var out: UnsafeMutablePointer<UInt8>? = nil
        let length = i2d_X509(x, &out)
        guard length > 0, let out else { throw CryptoError.openSSL(.internalError, "encoding the certificate") }
        defer { shim_OPENSSL_free(out) }
        return try Certificate(derEncoded: Array(UnsafeBufferPointer(start: out, count: Int(length))))
    }

    private static func makeName(_ name: DistinguishedName) throws -> OpaquePointer {
        guard let x509Name = X509_NAME_new() else { throw CryptoError.openSSL(.internalError, "X509_NAME_new") }
        for attribute in name.attributes {
            let value = Array(attribute.value.utf8)
            let ok = X509_NAME_add_entry_by_txt(x509Name, attribute.type, MBSTRING_UTF8, value, Int32(value.count), -1, 0)
            guard ok == 1 else {
                X509_NAME_free(x509Name)
                throw CryptoError.openSSL(.invalidArgument, "bad name attribute \(attribute.type)")
            }
        }
        return x509Name
    }
}

extension Certificate.KeyUsage {
    /// OpenSSL configuration names of the set bits.
    var names: [String] {
        let all: [(Certificate.KeyUsage, String)] = [
            (.digitalSignature, "digitalSignature"), (.nonRepudiation, "nonRepudiation"),
            (.keyEncipherment, "keyEncipherment"), (.dataEncipherment, "dataEncipherment"),
            (.keyAgreement, "keyAgreement"), (.keyCertSign, "keyCertSign"), (.cRLSign, "cRLSign"),
            (.encipherOnly, "encipherOnly"), (.decipherOnly, "decipherOnly"),
        ]
        return all.filter { contains($0.0) }.map(\.1)
    }
}
