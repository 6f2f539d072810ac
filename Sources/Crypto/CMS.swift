import COpenSSL

/// Cryptographic Message Syntax (RFC 5652), the subset AWS KMS uses for `CiphertextForRecipient`.
public enum CMS {
    /// OIDs (DER contents) this module recognises.
    enum OID {
        static let envelopedData: [UInt8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03]
        static let data: [UInt8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01]
        static let rsaesOAEP: [UInt8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07]
        static let mgf1: [UInt8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08]
        static let pSpecified: [UInt8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x09]
        static let sha1: [UInt8] = [0x2b, 0x0e, 0x03, 0x02, 0x1a]
        static let sha256: [UInt8] = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]
        static let aes256CBC: [UInt8] = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a]
    }

    /// A CMS EnvelopedData (inside its ContentInfo) with KeyTransRecipientInfo recipients and
    /// AES-256-CBC content: the shape of AWS KMS `CiphertextForRecipient`.
    ///
    /// Parsing accepts BER (indefinite lengths, constructed OCTET STRINGs) up to 16 MiB; `encrypt`
    /// writes DER. Decryption supports RSA-OAEP with SHA-256 (and SHA-1, the RFC 8017 default)
    /// key transport. Other recipient kinds are skipped; other algorithms are `.unsupportedAlgorithm`.
    public struct EnvelopedData: Sendable {
        /// How a recipient is named.
        public enum RecipientIdentifier: Sendable, Equatable {
            /// `[0] SubjectKeyIdentifier` (what KMS uses).
            case subjectKeyIdentifier([UInt8])
            /// `IssuerAndSerialNumber`: the issuer Name as DER and the serial number's INTEGER contents.
            case issuerAndSerialNumber(issuer: [UInt8], serialNumber: [UInt8])
        }

        /// One KeyTransRecipientInfo.
        public struct KeyTransRecipient: Sendable {
            public let version: Int
            public let identifier: RecipientIdentifier
            /// The key-encryption algorithm, if we support it (nil: another algorithm).
            public let padding: RSA.Padding?
            /// The RSA-encrypted content-encryption key.
            public let encryptedKey: [UInt8]
        }

        /// EnvelopedData version.
        public let version: Int
        /// The key-transport recipients, in order (other recipient kinds are not listed).
        public let recipients: [KeyTransRecipient]
        /// The AES-256-CBC IV.
        public let initializationVector: [UInt8]
        /// The encrypted content (segments of a constructed OCTET STRING joined).
        public let encryptedContent: [UInt8]

        /// Parses a BER/DER ContentInfo holding an EnvelopedData.
        public init(berEncoded bytes: [UInt8]) throws {
            let root = try BERElement.parse(bytes)
            let contentInfo = try root.sequence("ContentInfo")
            guard contentInfo.count == 2 else { throw CryptoError(.invalidCMS, "ContentInfo must have 2 fields") }
            guard try contentInfo[0].objectIdentifier("ContentInfo.contentType") == OID.envelopedData else {
                throw CryptoError(.invalidCMS, "ContentInfo is not envelopedData")
            }
            guard contentInfo[1].isContext(0), contentInfo[1].isConstructed, contentInfo[1].children.count == 1 else {
                throw CryptoError(.invalidCMS, "ContentInfo.content must be [0] EXPLICIT")
            }
            var fields = try contentInfo[1].children[0].sequence("EnvelopedData")[...]
            guard let versionField = fields.popFirst() else { throw CryptoError(.invalidCMS, "EnvelopedData is empty") }
            version = try versionField.smallInteger("EnvelopedData.version")
            if let next = fields.first, next.isContext(0) { fields.removeFirst() }  // originatorInfo
            guard let recipientSet = fields.popFirst() else { throw CryptoError(.invalidCMS, "missing recipientInfos") }
            let infos = try recipientSet.set("recipientInfos")
            guard !infos.isEmpty, infos.count <= 64 else { throw CryptoError(.invalidCMS, "recipientInfos must hold 1 to 64 entries") }
            var recipients: [KeyTransRecipient] = []
            for info in infos where info.isUniversal(16) {  // ktri is the untagged SEQUENCE; others are [1]...[4]
                recipients.append(try Self.parseKeyTrans(info))
            }
            self.recipients = recipients
            guard let eci = fields.popFirst() else { throw CryptoError(.invalidCMS, "missing encryptedContentInfo") }
            if let rest = fields.first, !rest.isContext(1) || fields.count > 1 {
                throw CryptoError(.invalidCMS, "unexpected fields after encryptedContentInfo")
            }
            let parts = try eci.sequence("EncryptedContentInfo")
            guard parts.count == 3 else {
                throw CryptoError(.invalidCMS, "EncryptedContentInfo must carry contentType, algorithm and encryptedContent")
            }
            _ = try parts[0].objectIdentifier("EncryptedContentInfo.contentType")
            let algorithm = try parts[1].sequence("contentEncryptionAlgorithm")
            guard algorithm.count == 2, try algorithm[0].objectIdentifier("contentEncryptionAlgorithm") == OID.aes256CBC else {
                throw CryptoError(.unsupportedAlgorithm, "content encryption must be AES-256-CBC")
            }
            let iv = try algorithm[1].octets("AES-CBC IV")
            guard iv.count == AESCBC.ivByteCount else { throw CryptoError(.invalidCMS, "AES-CBC IV must be 16 bytes") }
            initializationVector = iv
            encryptedContent = try parts[2].octets("encryptedContent", implicitContextTag: 0)
        }

        private static func parseKeyTrans(_ info: BERElement) throws -> KeyTransRecipient {
            let fields = try info.sequence("KeyTransRecipientInfo")
            guard fields.count == 4 else { throw CryptoError(.invalidCMS, "KeyTransRecipientInfo must have 4 fields") }
            let version = try fields[0].smallInteger("KeyTransRecipientInfo.version")
            let identifier: RecipientIdentifier
            if fields[1].isContext(0) {
                identifier = .subjectKeyIdentifier(try fields[1].octets("subjectKeyIdentifier", implicitContextTag: 0))
            } else {
                let ias = try fields[1].sequence("IssuerAndSerialNumber")
                guard ias.count == 2, ias[0].isUniversal(16), ias[1].isUniversal(2), !ias[1].isConstructed else {
                    throw CryptoError(.invalidCMS, "IssuerAndSerialNumber is malformed")
                }
                identifier = .issuerAndSerialNumber(issuer: try reencodeName(ias[0]), serialNumber: Array(ias[1].content))
            }
            let padding = try parseKeyEncryptionAlgorithm(fields[2])
            let encryptedKey = try fields[3].octets("encryptedKey")
            guard (1...2048).contains(encryptedKey.count) else { throw CryptoError(.invalidCMS, "encryptedKey length out of range") }
            return KeyTransRecipient(version: version, identifier: identifier, padding: padding, encryptedKey: encryptedKey)
        }

        /// Names are compared as DER; rebuild the DER of a (possibly BER) Name.
        private static func reencodeName(_ element: BERElement) throws -> [UInt8] {
            func encode(_ e: BERElement) -> [UInt8] {
                let identifier = e.tagClass.rawValue << 6 | (e.isConstructed ? 0x20 : 0) | e.tagNumber
                if e.isConstructed { return DER.element(identifier, e.children.flatMap(encode)) }
                return DER.element(identifier, Array(e.content))
            }
            return encode(element)
        }

        /// Maps an AlgorithmIdentifier to RSA-OAEP padding; nil when it is another algorithm.
        private static func parseKeyEncryptionAlgorithm(_ element: BERElement) throws -> RSA.Padding? {
            let algorithm = try element.sequence("keyEncryptionAlgorithm")
            guard let first = algorithm.first else { throw CryptoError(.invalidCMS, "empty AlgorithmIdentifier") }
            guard try first.objectIdentifier("keyEncryptionAlgorithm") == OID.rsaesOAEP else { return nil }
            // RSAES-OAEP-params: [0] hash DEFAULT sha1, [1] MGF DEFAULT mgf1SHA1, [2] pSource DEFAULT empty.
            var hash = OID.sha1, mgfHash = OID.sha1
            if algorithm.count == 2, !algorithm[1].isUniversal(5) {
                for param in try algorithm[1].sequence("RSAES-OAEP-params") {
                    guard param.tagClass == .contextSpecific, param.isConstructed, param.children.count == 1 else {
                        throw CryptoError(.invalidCMS, "RSAES-OAEP-params field is malformed")
                    }
                    let inner = try param.children[0].sequence("OAEP parameter")
                    guard let oid = inner.first else { throw CryptoError(.invalidCMS, "empty OAEP parameter") }
                    switch param.tagNumber {
                    case 0:
                        hash = try oid.objectIdentifier("OAEP hash")
                    case 1:
                        guard try oid.objectIdentifier("OAEP MGF") == OID.mgf1, inner.count == 2 else {
                            throw CryptoError(.unsupportedAlgorithm, "OAEP mask generation must be MGF1")
                        }
                        guard let mgfOID = try inner[1].sequence("MGF1 hash").first else {
                            throw CryptoError(.invalidCMS, "empty MGF1 hash")
                        }
                        mgfHash = try mgfOID.objectIdentifier("MGF1 hash")
                    case 2:
                        guard try oid.objectIdentifier("OAEP pSource") == OID.pSpecified else {
                            throw CryptoError(.unsupportedAlgorithm, "OAEP pSource must be pSpecified")
                        }
                        if inner.count == 2, try !inner[1].octets("OAEP label").isEmpty {
                            throw CryptoError(.unsupportedAlgorithm, "OAEP labels are not supported")
                        }
                    default:
                        throw CryptoError(.invalidCMS, "unknown RSAES-OAEP-params field [\(param.tagNumber)]")
                    }
                }
            } else if algorithm.count > 2 {
                throw CryptoError(.invalidCMS, "AlgorithmIdentifier has extra fields")
            }
            switch (hash, mgfHash) {
            case (OID.sha256, OID.sha256): return .oaepSHA256
            case (OID.sha1, OID.sha1): return .oaepSHA1
            default: throw CryptoError(.unsupportedAlgorithm, "RSA-OAEP must use SHA-256 (or SHA-1) for both hash and MGF1")
            }
        }

        /// Decrypts the content with `privateKey`, trying each key-transport recipient in turn.
        /// Throws `.decryptionFailure` when no recipient opens with this key (without saying why).
        public func decrypt(with privateKey: RSA.PrivateKey) throws -> SecureBytes {
            let usable = recipients.filter { $0.padding != nil }
            guard !usable.isEmpty else {
                throw CryptoError(.unsupportedAlgorithm, "no RSA-OAEP key transport recipient in the EnvelopedData")
            }
            for recipient in usable {
                guard let contentKey = try? privateKey.decrypt(recipient.encryptedKey, padding: recipient.padding!) else {
                    continue
                }
                guard contentKey.count == AESCBC.keyByteCount else { continue }
                return try AESCBC.decrypt(encryptedContent, key: contentKey, iv: initializationVector)
            }
            throw CryptoError(.decryptionFailure, "no recipient of the EnvelopedData opens with this key")
        }

        /// Encrypts `content` for one recipient named by subject key identifier (as KMS does):
        /// a fresh AES-256 key and IV, RSA-OAEP-SHA256 key transport, DER ContentInfo out.
        public static func encrypt(
            _ content: SecureBytes, recipientKey: RSA.PublicKey, subjectKeyIdentifier: [UInt8]
        ) throws -> [UInt8] {
            guard !subjectKeyIdentifier.isEmpty else { throw CryptoError(.invalidArgument, "empty subject key identifier") }
            return try encrypt(
                content, recipientKey: recipientKey, rid: DER.contextPrimitive(0, subjectKeyIdentifier), version: 2)
        }

        /// Encrypts `content` for the holder of `certificate`'s RSA key, named by issuer and serial number.
        public static func encrypt(_ content: SecureBytes, recipientCertificate certificate: Certificate) throws -> [UInt8] {
            guard case .rsa(let key) = certificate.publicKey else {
                throw CryptoError(.wrongKeyType, "the recipient certificate must hold an RSA key")
            }
            guard let name = X509_get_issuer_name(certificate.handle.pointer),
                let serial = X509_get0_serialNumber(certificate.handle.pointer)
            else { throw CryptoError.openSSL(.internalError, "reading issuer and serial") }
            var out: UnsafeMutablePointer<UInt8>? = nil
            let length = i2d_X509_NAME(name, &out)
            guard length > 0, let out else { throw CryptoError.openSSL(.internalError, "encoding issuer") }
            defer { shim_OPENSSL_free(out) }
            let issuerDER = Array(UnsafeBufferPointer(start: out, count: Int(length)))
            var serialOut: UnsafeMutablePointer<UInt8>? = nil
            let serialLength = i2d_ASN1_INTEGER(serial, &serialOut)
            guard serialLength > 0, let serialOut else { throw CryptoError.openSSL(.internalError, "encoding serial") }
            defer { shim_OPENSSL_free(serialOut) }
            let serialDER = Array(UnsafeBufferPointer(start: serialOut, count: Int(serialLength)))
            return try encrypt(content, recipientKey: key, rid: DER.sequence(issuerDER, serialDER), version: 0)
        }

        private static func encrypt(_ content: SecureBytes, recipientKey: RSA.PublicKey, rid: [UInt8], version: Int)
            throws -> [UInt8]
        {
            let contentKey = try SecureBytes(randomCount: AESCBC.keyByteCount)
            let iv = try SecureRandom.bytes(count: AESCBC.ivByteCount)
            let ciphertext = try AESCBC.encrypt(content, key: contentKey, iv: iv)
            let encryptedKey = try recipientKey.encrypt(contentKey, padding: .oaepSHA256)
            let sha256 = DER.sequence(DER.oid(OID.sha256))
            let oaepParams = DER.sequence(
                DER.contextConstructed(0, sha256),
                DER.contextConstructed(1, DER.sequence(DER.oid(OID.mgf1), sha256)))
            let ktri = DER.sequence(
                DER.integer(version), rid, DER.sequence(DER.oid(OID.rsaesOAEP), oaepParams), DER.octetString(encryptedKey))
            let eci = DER.sequence(
                DER.oid(OID.data), DER.sequence(DER.oid(OID.aes256CBC), DER.octetString(iv)),
                DER.contextPrimitive(0, ciphertext))
            let envelopedData = DER.sequence(DER.integer(version == 2 ? 2 : 0), DER.set(ktri), eci)
            return DER.sequence(DER.oid(OID.envelopedData), DER.contextConstructed(0, envelopedData))
        }
    }
}
