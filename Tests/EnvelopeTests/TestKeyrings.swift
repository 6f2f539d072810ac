import Crypto
import Foundation

@testable import Envelope

/// A keyring that hands out a fixed data key: for AWS's vectors, whose data keys are published
/// (KMS-wrapped EDKs we cannot unwrap offline), and for layer tests.
struct StaticKeyring: Keyring {
    let dataKey: [UInt8]

    func onEncrypt(_ materials: EncryptionMaterials) async throws -> EncryptionMaterials {
        var result = materials
        result.plaintextDataKey = SecureBytes(dataKey)
        result.encryptedDataKeys.append(EncryptedDataKey(providerID: "static", providerInfo: [], ciphertext: [0]))
        return result
    }

    func onDecrypt(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) async throws
        -> DecryptionMaterials
    {
        var result = materials
        result.plaintextDataKey = SecureBytes(dataKey)
        return result
    }
}

/// The raw keys of ../shared/vectors/esdk/keys.json.
enum VectorKeys {
    static func material(_ name: String) throws -> String {
        let keys = try VectorFiles.json("keys.json")["keys"] as? [String: [String: Any]]
        guard let material = keys?[name]?["material"] as? String else {
            throw EnvelopeError(.invalidArgument, "keys.json has no key \(name)")
        }
        return material
    }

    static func aes256() throws -> SecureBytes { SecureBytes(VectorFiles.base64(try material("aes-256"))!) }
    static func rsaPrivate() throws -> RSA.PrivateKey { try RSA.PrivateKey(pemRepresentation: try material("rsa-4096-private")) }
    static func rsaPublic() throws -> RSA.PublicKey { try RSA.PublicKey(pemRepresentation: try material("rsa-4096-public")) }

    /// The keyring a manifest master-key entry describes.
    static func keyring(for entry: [String: Any]) throws -> any Keyring {
        let namespace = entry["provider-id"] as? String ?? ""
        let name = entry["key"] as? String ?? ""
        switch entry["encryption-algorithm"] as? String {
        case "aes":
            return try RawAESKeyring(keyNamespace: namespace, keyName: name, wrappingKey: try aes256())
        case "rsa":
            let padding: RSA.Padding
            switch (entry["padding-algorithm"] as? String, entry["padding-hash"] as? String) {
            case ("oaep-mgf1", "sha256"): padding = .oaepSHA256
            case ("oaep-mgf1", "sha1"): padding = .oaepSHA1
            default: padding = .pkcs1v15
            }
            return try RawRSAKeyring(
                keyNamespace: namespace, keyName: name, privateKey: try rsaPrivate(), decryptionPaddings: [padding])
        default:
            throw EnvelopeError(.invalidArgument, "unknown master key \(entry)")
        }
    }
}

/// Feeds `message` to a fresh decryptor in the given chunk sizes; returns plaintext and result.
func decryptInChunks(
    _ message: [UInt8], keyring: any Keyring, chunks: [Int], policy: DecryptionPolicy = .init(),
    limits: MessageLimits = .default
) async throws -> ([UInt8], VerifiedMessage) {
    let decryptor = MessageDecryptor(keyring: keyring, limits: limits, policy: policy)
    var plaintext: [UInt8] = []
    var offset = 0
    for size in chunks where offset < message.count {
        let end = min(message.count, offset + size)
        plaintext += try await decryptor.update(Array(message[offset..<end])).bytes
        offset = end
    }
    if offset < message.count { plaintext += try await decryptor.update(Array(message[offset...])).bytes }
    return (plaintext, try decryptor.finish())
}

func errorCode(_ body: () async throws -> Void) async -> EnvelopeError.Code? {
    do {
        try await body()
        return nil
    } catch let error as EnvelopeError {
        return error.code
    } catch {
        return EnvelopeError.Code("unexpected: \(error)")
    }
}
