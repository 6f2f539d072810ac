import Crypto

/// A keyring with a local RSA key pair: the data key is RSA-encrypted to the public key.
///
/// Provider id = key namespace, provider info = key name (UTF-8), ciphertext = the RSA output.
/// New EDKs use RSA-OAEP with SHA-256 (MGF1-SHA-256). On decrypt the keyring tries the
/// paddings in `decryptionPaddings`, in order (OAEP-SHA-1 and PKCS#1 v1.5 exist for old messages).
public struct RawRSAKeyring: Keyring {
    public let keyNamespace: String
    public let keyName: String
    public let publicKey: RSA.PublicKey?
    public let privateKey: RSA.PrivateKey?
    public let encryptionPadding: RSA.Padding
    public let decryptionPaddings: [RSA.Padding]

    /// Either key may be absent (encrypt-only or decrypt-only); at least one is required.
    public init(
        keyNamespace: String, keyName: String, publicKey: RSA.PublicKey? = nil, privateKey: RSA.PrivateKey? = nil,
        encryptionPadding: RSA.Padding = .oaepSHA256, decryptionPaddings: [RSA.Padding]? = nil
    ) throws {
        try validateRawKeyringNames(keyNamespace: keyNamespace, keyName: keyName)
        guard publicKey != nil || privateKey != nil else {
            throw EnvelopeError(.keyringConfiguration, "a raw RSA keyring needs a public or a private key")
        }
        guard encryptionPadding != .pkcs1v15 else {
            throw EnvelopeError(.keyringConfiguration, "PKCS#1 v1.5 padding is accepted on decrypt only")
        }
        self.keyNamespace = keyNamespace
        self.keyName = keyName
        self.publicKey = try publicKey ?? privateKey?.publicKey
        self.privateKey = privateKey
        self.encryptionPadding = encryptionPadding
        self.decryptionPaddings = decryptionPaddings ?? [encryptionPadding]
    }

    public func onEncrypt(_ materials: EncryptionMaterials) async throws -> EncryptionMaterials {
        guard let publicKey else {
            throw EnvelopeError(.keyringConfiguration, "the raw RSA keyring \(keyName) has no public key")
        }
        var result = materials
        let dataKey = try materials.plaintextDataKey ?? SecureBytes(randomCount: materials.suite.keyLength)
        result.plaintextDataKey = dataKey
        let ciphertext: [UInt8]
        do {
            ciphertext = try publicKey.encrypt(dataKey, padding: encryptionPadding)
        } catch {
            throw EnvelopeError(.cryptoFailure, "RSA encryption of the data key failed: \(error)")
        }
        result.encryptedDataKeys.append(
            EncryptedDataKey(providerID: keyNamespace, providerInfo: Array(keyName.utf8), ciphertext: ciphertext))
        return result
    }

    public func onDecrypt(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) async throws
        -> DecryptionMaterials
    {
        try requireNoDataKey(materials)
        guard let privateKey else {
            throw EnvelopeError(.keyringConfiguration, "the raw RSA keyring \(keyName) has no private key")
        }
        for key in encryptedDataKeys
        where key.providerID == keyNamespace && key.providerInfo.elementsEqual(keyName.utf8) {
            for padding in decryptionPaddings {
                guard let dataKey = try? privateKey.decrypt(key.ciphertext, padding: padding),
                    dataKey.count == materials.suite.keyLength
                else { continue }
                var result = materials
                result.plaintextDataKey = dataKey
                return result
            }
        }
        throw EnvelopeError(
            .noDecryptableDataKey,
            "no encrypted data key for raw RSA key \(keyNamespace)/\(keyName) could be decrypted")
    }
}

func validateRawKeyringNames(keyNamespace: String, keyName: String) throws {
    guard !keyNamespace.isEmpty, !keyName.isEmpty else {
        throw EnvelopeError(.keyringConfiguration, "a raw keyring needs a key namespace and a key name")
    }
    guard !keyNamespace.hasPrefix(KMSKeyring.providerID) else {
        throw EnvelopeError(.keyringConfiguration, "the key namespace \"aws-kms\" is reserved for KMS keyrings")
    }
}
