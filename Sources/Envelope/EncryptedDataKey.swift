/// One encrypted copy of the message's data key, as written in the header.
///
/// `providerID` names the keyring family (`aws-kms`, or a raw keyring's key namespace);
/// `providerInfo` is keyring-specific (the KMS key ARN, the raw key name, the raw AES IV, …).
public struct EncryptedDataKey: Sendable, Equatable {
    public let providerID: String
    public let providerInfo: [UInt8]
    public let ciphertext: [UInt8]

    public init(providerID: String, providerInfo: [UInt8], ciphertext: [UInt8]) {
        self.providerID = providerID
        self.providerInfo = providerInfo
        self.ciphertext = ciphertext
    }

    /// The provider info read as UTF-8 (KMS key ARN, raw RSA key name), when it is valid UTF-8.
    public var providerInfoText: String? { String(validating: providerInfo, as: UTF8.self) }

    func serialize(into out: inout [UInt8]) throws {
        try out.appendLengthPrefixed16(Array(providerID.utf8), "a key provider id")
        try out.appendLengthPrefixed16(providerInfo, "a key provider info")
        try out.appendLengthPrefixed16(ciphertext, "an encrypted data key")
    }
}
