import COpenSSL
import Foundation

/// A parsed X.509 certificate (DER or PEM). Fields are read once at parse time; the value is
/// immutable and thread-safe. Parsing rejects trailing bytes and malformed extensions.
public struct Certificate: Sendable, Equatable, CustomStringConvertible {
    final class Handle: @unchecked Sendable {
        let pointer: OpaquePointer
        init(taking pointer: OpaquePointer) { self.pointer = pointer }
        deinit { X509_free(pointer) }
    }

    /// The public key of a certificate, by algorithm.
    public enum PublicKey: Sendable {
        case p256(P256.Signing.PublicKey)
        case p384(P384.Signing.PublicKey)
        case rsa(RSA.PublicKey)
        /// Another algorithm or curve, or an RSA key outside 2048...16384 bits; the SPKI DER is kept.
        case other(subjectPublicKeyInfo: [UInt8])
    }

    /// The basicConstraints extension.
    public struct BasicConstraints: Sendable, Equatable {
        public let isCertificateAuthority: Bool
        /// pathLenConstraint, if present.
        public let pathLengthConstraint: Int?
        public let isCritical: Bool
    }

    /// The keyUsage extension's bits.
    public struct KeyUsage: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let digitalSignature = KeyUsage(rawValue: UInt32(KU_DIGITAL_SIGNATURE))
        public static let nonRepudiation = KeyUsage(rawValue: UInt32(KU_NON_REPUDIATION))
        public static let keyEncipherment = KeyUsage(rawValue: UInt32(KU_KEY_ENCIPHERMENT))
        public static let dataEncipherment = KeyUsage(rawValue: UInt32(KU_DATA_ENCIPHERMENT))
        public static let keyAgreement = KeyUsage(rawValue: UInt32(KU_KEY_AGREEMENT))
        public static let keyCertSign = KeyUsage(rawValue: UInt32(KU_KEY_CERT_SIGN))
        public static let cRLSign = KeyUsage(rawValue: UInt32(KU_CRL_SIGN))
        public static let encipherOnly = KeyUsage(rawValue: UInt32(KU_ENCIPHER_ONLY))
        public static let decipherOnly = KeyUsage(rawValue: UInt32(KU_DECIPHER_ONLY))
    }

    let handle: Handle

    /// The DER encoding, exactly as parsed or issued.
    public let derRepresentation: [UInt8]
    public let subject: DistinguishedName
    public let issuer: DistinguishedName
    /// The serial number's big-endian magnitude bytes (no sign padding).
    public let serialNumber: [UInt8]
    public let notBefore: Date
    public let notAfter: Date
    /// The subject's public key.
    public let publicKey: PublicKey
    /// The SubjectPublicKeyInfo DER of the subject's key.
    public let subjectPublicKeyInfo: [UInt8]
    /// The basicConstraints extension, if present.
    public let basicConstraints: BasicConstraints?
    /// The keyUsage extension, if present.
    public let keyUsage: KeyUsage?
    /// The subjectKeyIdentifier extension, if present.
    public let subjectKeyIdentifier: [UInt8]?
    /// The signature algorithm's short name, e.g. `ecdsa-with-SHA384`.
    public let signatureAlgorithm: String
    /// X.509 version number as written (1, 2 or 3).
    public let version: Int

    /// The serial number as lowercase hex.
    public var serialNumberHex: String { Hex.encode(serialNumber) }

    /// PEM `CERTIFICATE` text.
    public var pemRepresentation: String { PEM.encode(label: "CERTIFICATE", der: derRepresentation) }

    /// Whether subject and issuer are the same name.
    public var isSelfIssued: Bool { subject == issuer }

    public static let maximumDERLength = 1 << 20

    /// Parses one DER certificate; trailing bytes are an error.
    public init(derEncoded der: [UInt8]) throws {
        guard !der.isEmpty, der.count <= Self.maximumDERLength else {
            throw CryptoError(.invalidCertificate, "certificate DER must be 1 byte to 1 MiB")
        }
        OpenSSLErrorQueue.clear()
        let parsed: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var p: UnsafePointer<UInt8>? = buffer.baseAddress
            guard let cert = d2i_X509(nil, &p, buffer.count) else { return nil }
            if p != buffer.baseAddress! + buffer.count {
                X509_free(cert)
                return nil
            }
            return cert
        }
        guard let cert = parsed else {
            throw CryptoError.openSSL(.invalidCertificate, "not a DER X.509 certificate (or trailing bytes)")
        }
        try self.init(handle: Handle(taking: cert), der: der)
    }

    /// Parses one PEM `CERTIFICATE` block.
    public init(pemEncoded pem: String) throws {
        try self.init(derEncoded: PEM.decodeSingle(pem, labels: ["CERTIFICATE"]).der)
    }

    /// Parses every `CERTIFICATE` block of a PEM bundle, in order.
    public static func parseMultiplePEM(_ pem: String) throws -> [Certificate] {
        try PEM.decode(pem).map { block in
            guard block.label == "CERTIFICATE" else {
                throw CryptoError(.invalidPEM, "unexpected PEM label \(block.label) in certificate bundle")
            }
            return try Certificate(derEncoded: block.der)
        }
    }

    init(handle: Handle, der: [UInt8]) throws {
        let x = handle.pointer
        self.handle = handle
        derRepresentation = der
        // Cache and validate extensions; EXFLAG_INVALID marks malformed or duplicate ones.
        _ = X509_check_purpose(x, -1, 0)
        let flags = X509_get_extension_flags(x)
        guard flags & UInt32(EXFLAG_INVALID) == 0 else {
            throw CryptoError.openSSL(.invalidCertificate, "certificate has malformed or duplicate extensions")
        }
        version = Int(X509_get_version(x)) + 1
        guard let subjectName = X509_get_subject_name(x), let issuerName = X509_get_issuer_name(x) else {
            throw CryptoError.openSSL(.invalidCertificate, "certificate without names")
        }
        subject = try Self.readName(subjectName)
        issuer = try Self.readName(issuerName)
        serialNumber = try Self.readSerial(x)
        guard let before = X509_get0_notBefore(x), let after = X509_get0_notAfter(x) else {
            throw CryptoError.openSSL(.invalidCertificate, "certificate without validity")
        }
        notBefore = try Self.readTime(before)
        notAfter = try Self.readTime(after)

        guard let pkey = X509_get_pubkey(x) else {
            throw CryptoError.openSSL(.invalidCertificate, "certificate public key cannot be decoded")
        }
        let key = PKey(taking: pkey)
        subjectPublicKeyInfo = try key.publicKeyDER()
        if key.baseID == EVP_PKEY_EC, key.groupName == P256.groupName {
            publicKey = .p256(try P256.Signing.PublicKey(checking: key))
        } else if key.baseID == EVP_PKEY_EC, key.groupName == P384.groupName {
            publicKey = .p384(try P384.Signing.PublicKey(checking: key))
        } else if key.baseID == EVP_PKEY_RSA, let rsa = try? RSA.PublicKey(checking: key) {
            publicKey = .rsa(rsa)
        } else {
            // Other algorithms, other curves, and RSA keys outside the sizes we accept.
            publicKey = .other(subjectPublicKeyInfo: subjectPublicKeyInfo)
        }

        if flags & UInt32(EXFLAG_BCONS) != 0 {
            let pathLength = X509_get_pathlen(x)
            let critical = Self.isCritical(x, nid: NID_basic_constraints)
            basicConstraints = BasicConstraints(
                isCertificateAuthority: flags & UInt32(EXFLAG_CA) != 0,
                pathLengthConstraint: pathLength >= 0 ? Int(pathLength) : nil, isCritical: critical)
        } else {
            basicConstraints = nil
        }
        if flags & UInt32(EXFLAG_KUSAGE) != 0 {
            keyUsage = KeyUsage(rawValue: X509_get_key_usage(x))
        } else {
            keyUsage = nil
        }
        if let ski = X509_get0_subject_key_id(x) {
            subjectKeyIdentifier = Array(
                UnsafeBufferPointer(start: ASN1_STRING_get0_data(ski), count: Int(ASN1_STRING_length(ski))))
        } else {
            subjectKeyIdentifier = nil
        }
        let nid = X509_get_signature_nid(x)
        signatureAlgorithm = OBJ_nid2ln(nid).map { String(cString: $0) } ?? "unknown"
        OpenSSLErrorQueue.clear()
    }

    private static func isCritical(_ x: OpaquePointer, nid: Int32) -> Bool {
        let index = X509_get_ext_by_NID(x, nid, -1)
        guard index >= 0, let ext = X509_get_ext(x, index) else { return false }
        return X509_EXTENSION_get_critical(ext) == 1
    }

    static func readName(_ name: OpaquePointer) throws -> DistinguishedName {
        var attributes: [DistinguishedName.Attribute] = []
        let count = X509_NAME_entry_count(name)
        for index in 0..<count {
            guard let entry = X509_NAME_get_entry(name, index), let object = X509_NAME_ENTRY_get_object(entry),
                let data = X509_NAME_ENTRY_get_data(entry)
            else { throw CryptoError.openSSL(.invalidCertificate, "bad name entry") }
            let nid = OBJ_obj2nid(object)
            var type: String
            if nid != NID_undef, let short = OBJ_nid2sn(nid) {
                type = String(cString: short)
            } else {
                var buffer = [CChar](repeating: 0, count: 128)
                let length = OBJ_obj2txt(&buffer, Int32(buffer.count), object, 1)
                type = String(decoding: buffer.prefix(Int(max(length, 0))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            if type == "emailAddress" { type = "E" }
            var utf8: UnsafeMutablePointer<UInt8>? = nil
            let length = ASN1_STRING_to_UTF8(&utf8, data)
            guard length >= 0, let utf8 else { throw CryptoError.openSSL(.invalidCertificate, "bad name string") }
            defer { shim_OPENSSL_free(utf8) }
            let value = String(decoding: UnsafeBufferPointer(start: utf8, count: Int(length)), as: UTF8.self)
            attributes.append(.init(type: type, value: value))
        }
        return DistinguishedName(attributes)
    }

    private static func readSerial(_ x: OpaquePointer) throws -> [UInt8] {
        guard let serial = X509_get0_serialNumber(x), let bn = ASN1_INTEGER_to_BN(serial, nil) else {
            throw CryptoError.openSSL(.invalidCertificate, "bad serial number")
        }
        defer { BN_free(bn) }
        let count = (Int(BN_num_bits(bn)) + 7) / 8
        var out = [UInt8](repeating: 0, count: max(count, 1))
        if count > 0 { _ = BN_bn2bin(bn, &out) }
        return out
    }

    static func readTime(_ time: UnsafePointer<ASN1_TIME>) throws -> Date {
        var parts = tm()
        guard ASN1_TIME_to_tm(time, &parts) == 1 else {
            throw CryptoError.openSSL(.invalidCertificate, "bad validity time")
        }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&parts)))
    }

    public static func == (lhs: Certificate, rhs: Certificate) -> Bool {
        lhs.derRepresentation == rhs.derRepresentation
    }

    public var description: String {
        "Certificate(subject: \(subject), issuer: \(issuer), serial: \(serialNumberHex))"
    }

    /// Whether this certificate's signature verifies under `issuer`'s public key (no other checks).
    public func isSignedBy(_ issuer: Certificate) -> Bool {
        OpenSSLErrorQueue.clear()
        defer { OpenSSLErrorQueue.clear() }
        guard let key = X509_get0_pubkey(issuer.handle.pointer) else { return false }
        return X509_verify(handle.pointer, key) == 1
    }
}
