import Crypto

/// A keyring with a local AES wrapping key (16, 24 or 32 bytes): the data key is AES-GCM
/// encrypted with a random 12-byte IV and the serialized encryption context as AAD.
///
/// Provider id = key namespace; provider info = key name ‖ tag length in bits (UInt32, 128) ‖
/// IV length (UInt32, 12) ‖ IV; ciphertext = encrypted data key ‖ 16-byte tag
/// (specification: framework/raw-aes-keyring.md).
public struct RawAESKeyring: Keyring {
    public let keyNamespace: String
    public let keyName: String
    private let wrappingKey: SecureBytes

    static let tagLength = 16
    static let ivLength = 12

    public init(keyNamespace: String, keyName: String, wrappingKey: SecureBytes) throws {
        try validateRawKeyringNames(keyNamespace: keyNamespace, keyName: keyName)
        guard [16, 24, 32].contains(wrappingKey.count) else {
            throw EnvelopeError(
                .keyringConfiguration, "a raw AES wrapping key has 16, 24 or 32 bytes, not \(wrappingKey.count)")
        }
        self.keyNamespace = keyNamespace
        self.keyName = keyName
        self.wrappingKey = wrappingKey
    }

    public func onEncrypt(_ materials: EncryptionMaterials) async throws -> EncryptionMaterials {
        var result = materials
        let dataKey = try materials.plaintextDataKey ?? SecureBytes(randomCount: materials.suite.keyLength)
        result.plaintextDataKey = dataKey
        let aad = try materials.encryptionContext.serialized()
        let iv = try SecureRandom.bytes(count: Self.ivLength)
        let cipher = try ContentCipher(key: wrappingKey)
        var ciphertext = [UInt8](repeating: 0, count: dataKey.count + Self.tagLength)
        var tag = [UInt8](repeating: 0, count: Self.tagLength)
        try ciphertext.withUnsafeMutableBytes { out in
            try dataKey.withUnsafeBytes { plain in
                try cipher.seal(iv: iv, aad: aad, plaintext: plain, into: out.baseAddress, tag: &tag)
            }
        }
        ciphertext.replaceSubrange(dataKey.count..., with: tag)
        var info = Array(keyName.utf8)
        info.appendUInt32(UInt32(Self.tagLength * 8))
        info.appendUInt32(UInt32(Self.ivLength))
        info += iv
        result.encryptedDataKeys.append(EncryptedDataKey(providerID: keyNamespace, providerInfo: info, ciphertext: ciphertext))
        return result
    }

    public func onDecrypt(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) async throws
        -> DecryptionMaterials
    {
        try requireNoDataKey(materials)
        let aad = try materials.encryptionContext.serialized()
        let name = Array(keyName.utf8)
        let cipher = try ContentCipher(key: wrappingKey)
        for key in encryptedDataKeys where key.providerID == keyNamespace {
            let info = key.providerInfo
            guard info.count == name.count + 8 + Self.ivLength, info.starts(with: name) else { continue }
            var cursor = ByteCursor(info[name.count...])
            guard cursor.readUInt32() == UInt32(Self.tagLength * 8), cursor.readUInt32() == UInt32(Self.ivLength),
                let iv = cursor.read(Self.ivLength)
            else { continue }
            let keyLength = key.ciphertext.count - Self.tagLength
            guard keyLength == materials.suite.keyLength else { continue }
            let tag = Array(key.ciphertext[keyLength...])
            var plain = [UInt8](repeating: 0, count: keyLength)
            defer { plain.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
            let ok = key.ciphertext.withUnsafeBytes { raw in
                plain.withUnsafeMutableBytes { out in
                    cipher.open(
                        iv: Array(iv), aad: aad, ciphertext: UnsafeRawBufferPointer(rebasing: raw[0..<keyLength]),
                        tag: tag, into: out.baseAddress)
                }
            }
            guard ok else { continue }
            let opened = SecureBytes(plain)
            var result = materials
            result.plaintextDataKey = opened
            return result
        }
        throw EnvelopeError(
            .noDecryptableDataKey, "no encrypted data key for raw AES key \(keyNamespace)/\(keyName) could be decrypted")
    }
}
