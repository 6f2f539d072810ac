import Crypto

/// The keys of one message, derived from its data key as the suite says
/// (specification: framework/algorithm-suites.md, "Key Derivation" and "Key Commitment").
struct ContentKeys {
    /// The AES-GCM key for the header tag and the body.
    let contentKey: SecureBytes
    /// The commitment value (format 2 only; empty otherwise). Public: it is written in the header.
    let commitment: [UInt8]

    static let deriveKeyLabel = Array("DERIVEKEY".utf8)
    static let commitKeyLabel = Array("COMMITKEY".utf8)

    init(suite: AlgorithmSuite, dataKey: SecureBytes, messageID: [UInt8]) throws {
        guard dataKey.count == suite.keyLength else {
            throw EnvelopeError(
                .invalidDataKey, "the data key has \(dataKey.count) bytes; suite \(suite) needs \(suite.keyLength)")
        }
        var suiteID: [UInt8] = []
        suiteID.appendUInt16(suite.id)
        do {
            switch suite.keyDerivation {
            case .identity:
                contentKey = dataKey
                commitment = []
            case .hkdfSHA256, .hkdfSHA384:
                // Format 1: no salt, info = suite id ‖ message id.
                contentKey = try HKDF.deriveKey(
                    inputKeyMaterial: dataKey, salt: [], info: suiteID + messageID, outputByteCount: suite.keyLength,
                    hash: suite.keyDerivation == .hkdfSHA256 ? .sha256 : .sha384)
                commitment = []
            case .hkdfSHA512Commit:
                // Format 2: salt = message id; the encryption key and the commitment key come from
                // the same pseudorandom key with different labels.
                let prk = try HKDF.extract(inputKeyMaterial: dataKey, salt: messageID, hash: .sha512)
                contentKey = try HKDF.expand(
                    pseudoRandomKey: prk, info: suiteID + Self.deriveKeyLabel, outputByteCount: suite.keyLength,
                    hash: .sha512)
                commitment = try HKDF.expand(
                    pseudoRandomKey: prk, info: Self.commitKeyLabel, outputByteCount: 32, hash: .sha512
                ).copyBytes()
            }
        } catch let error as EnvelopeError {
            throw error
        } catch {
            throw EnvelopeError(.cryptoFailure, "key derivation failed: \(error)")
        }
    }
}
