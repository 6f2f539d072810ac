/// One AWS Encryption SDK algorithm suite: the content cipher, how the content key is derived,
/// whether the key is committed, and the signature algorithm of the footer.
///
/// `AlgorithmSuite.all` lists every suite this module reads; only `.aes256GCMHKDFSHA512Commit`
/// (0x0478, the default) and `.aes256GCMHKDFSHA512CommitECDSAP384` (0x0578) are written.
public struct AlgorithmSuite: Sendable, Hashable, CustomStringConvertible {
    /// How the content encryption key is obtained from the data key.
    public enum KeyDerivation: Sendable, Hashable {
        /// The data key is the content key (legacy suites 0x0014, 0x0046, 0x0078).
        case identity
        /// HKDF without salt, info = suite id ‖ message id (message format 1).
        case hkdfSHA256, hkdfSHA384
        /// HKDF-SHA512 with the message id as salt and a committed key (message format 2).
        case hkdfSHA512Commit
    }

    /// The footer signature algorithm.
    public enum Signature: Sendable, Hashable {
        case none
        /// ECDSA over P-256 with SHA-256.
        case ecdsaP256SHA256
        /// ECDSA over P-384 with SHA-384.
        case ecdsaP384SHA384
    }

    /// The two-byte identifier written in the header.
    public let id: UInt16
    /// The message format version this suite belongs to.
    public let messageFormat: MessageFormatVersion
    /// Length of the AES-GCM content key and of the data key, in bytes (16, 24 or 32).
    public let keyLength: Int
    public let keyDerivation: KeyDerivation
    public let signature: Signature
    /// AES-GCM IV length in bytes (12 for every suite).
    public let ivLength: Int = 12
    /// AES-GCM tag length in bytes (16 for every suite).
    public let tagLength: Int = 16

    /// Whether the header carries a key-commitment value that must be checked.
    public var isCommitting: Bool { keyDerivation == .hkdfSHA512Commit }
    /// Whether the message ends with a signed footer.
    public var isSigned: Bool { signature != .none }
    /// Length of the algorithm-suite data field of a format-2 header (the commitment key).
    public var suiteDataLength: Int { isCommitting ? 32 : 0 }
    /// Length of the message id.
    public var messageIDLength: Int { messageFormat == .v2 ? 32 : 16 }

    public var description: String { "0x" + hex4(id) }

    public static let aes128GCMIV12Tag16 = AlgorithmSuite(
        id: 0x0014, messageFormat: .v1, keyLength: 16, keyDerivation: .identity, signature: .none)
    public static let aes192GCMIV12Tag16 = AlgorithmSuite(
        id: 0x0046, messageFormat: .v1, keyLength: 24, keyDerivation: .identity, signature: .none)
    public static let aes256GCMIV12Tag16 = AlgorithmSuite(
        id: 0x0078, messageFormat: .v1, keyLength: 32, keyDerivation: .identity, signature: .none)
    public static let aes128GCMHKDFSHA256 = AlgorithmSuite(
        id: 0x0114, messageFormat: .v1, keyLength: 16, keyDerivation: .hkdfSHA256, signature: .none)
    public static let aes192GCMHKDFSHA256 = AlgorithmSuite(
        id: 0x0146, messageFormat: .v1, keyLength: 24, keyDerivation: .hkdfSHA256, signature: .none)
    public static let aes256GCMHKDFSHA256 = AlgorithmSuite(
        id: 0x0178, messageFormat: .v1, keyLength: 32, keyDerivation: .hkdfSHA256, signature: .none)
    public static let aes128GCMHKDFSHA256ECDSAP256 = AlgorithmSuite(
        id: 0x0214, messageFormat: .v1, keyLength: 16, keyDerivation: .hkdfSHA256, signature: .ecdsaP256SHA256)
    public static let aes192GCMHKDFSHA384ECDSAP384 = AlgorithmSuite(
        id: 0x0346, messageFormat: .v1, keyLength: 24, keyDerivation: .hkdfSHA384, signature: .ecdsaP384SHA384)
    public static let aes256GCMHKDFSHA384ECDSAP384 = AlgorithmSuite(
        id: 0x0378, messageFormat: .v1, keyLength: 32, keyDerivation: .hkdfSHA384, signature: .ecdsaP384SHA384)
    /// 0x0478: AES-256-GCM, HKDF-SHA512, key commitment. The default for encryption.
    public static let aes256GCMHKDFSHA512Commit = AlgorithmSuite(
        id: 0x0478, messageFormat: .v2, keyLength: 32, keyDerivation: .hkdfSHA512Commit, signature: .none)
    /// 0x0578: as 0x0478, plus an ECDSA P-384 footer signature.
    public static let aes256GCMHKDFSHA512CommitECDSAP384 = AlgorithmSuite(
        id: 0x0578, messageFormat: .v2, keyLength: 32, keyDerivation: .hkdfSHA512Commit,
        signature: .ecdsaP384SHA384)

    /// Every suite this module can decrypt.
    public static let all: [AlgorithmSuite] = [
        .aes128GCMIV12Tag16, .aes192GCMIV12Tag16, .aes256GCMIV12Tag16,
        .aes128GCMHKDFSHA256, .aes192GCMHKDFSHA256, .aes256GCMHKDFSHA256,
        .aes128GCMHKDFSHA256ECDSAP256, .aes192GCMHKDFSHA384ECDSAP384, .aes256GCMHKDFSHA384ECDSAP384,
        .aes256GCMHKDFSHA512Commit, .aes256GCMHKDFSHA512CommitECDSAP384,
    ]

    /// The suites this module writes.
    public static let encryptable: [AlgorithmSuite] = [.aes256GCMHKDFSHA512Commit, .aes256GCMHKDFSHA512CommitECDSAP384]

    /// The suite with this identifier, or nil when the identifier is unknown.
    public static func suite(id: UInt16) -> AlgorithmSuite? { all.first { $0.id == id } }

    /// Parses a hex suite id such as "0x0478" or "0478"; nil when malformed or unknown.
    public static func suite(named text: String) -> AlgorithmSuite? {
        var hex = Substring(text)
        if hex.hasPrefix("0x") || hex.hasPrefix("0X") { hex = hex.dropFirst(2) }
        guard !hex.isEmpty, hex.count <= 4, let id = UInt16(hex, radix: 16) else { return nil }
        return suite(id: id)
    }
}

/// The version byte that starts every message.
public enum MessageFormatVersion: UInt8, Sendable, Hashable {
    /// Version 1.0 (legacy suites, 16-byte message id, header IV, `Type` byte).
    case v1 = 1
    /// Version 2.0 (committing suites, 32-byte message id, commitment key in the header).
    case v2 = 2
}

func hex4(_ value: UInt16) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}
