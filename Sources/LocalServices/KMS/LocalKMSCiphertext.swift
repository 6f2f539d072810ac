import Crypto

/// The local KMS's ciphertext blob:
/// `"CRK1" | u8 len | key id | u32 version | 12-byte nonce | ciphertext | 16-byte tag`,
/// AES-256-GCM under the key version's material, with AAD = the header (magic through version)
/// followed by the encryption context (pairs sorted by key bytes, each length-prefixed).
/// Changing the key id, version, context or any byte fails authentication.
enum LocalKMSCiphertext {
    static let magic: [UInt8] = Array("CRK1".utf8)
    static let maxBlobBytes = 6144

    struct Header {
        let keyId: String
        let version: Int
        let headerLength: Int
    }

    static func contextBytes(_ context: [String: String]) -> [UInt8] {
        var out: [UInt8] = []
        for (k, v) in context.sorted(by: { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }) {
            for s in [k, v] {
                let b = Array(s.utf8)
                out += [UInt8(truncatingIfNeeded: b.count >> 24), UInt8(truncatingIfNeeded: b.count >> 16),
                        UInt8(truncatingIfNeeded: b.count >> 8), UInt8(truncatingIfNeeded: b.count)]
                out += b
            }
        }
        return out
    }

    static func header(keyId: String, version: Int) -> [UInt8] {
        let id = Array(keyId.utf8)
        return magic + [UInt8(id.count)] + id
            + [UInt8(truncatingIfNeeded: version >> 24), UInt8(truncatingIfNeeded: version >> 16),
               UInt8(truncatingIfNeeded: version >> 8), UInt8(truncatingIfNeeded: version)]
    }

    static func seal(_ plaintext: SecureBytes, keyId: String, version: Int, material: SecureBytes, context: [String: String]) throws -> [UInt8] {
        let h = header(keyId: keyId, version: version)
        let nonce = try SecureRandom.bytes(count: AESGCM.nonceByteCount)
        let box = try AESGCM.seal(plaintext, key: material, nonce: nonce, authenticating: h + contextBytes(context))
        return h + nonce + box.ciphertext + box.tag
    }

    static func parseHeader(_ blob: [UInt8]) -> Header? {
        guard blob.count <= maxBlobBytes, blob.count > 5, Array(blob[0..<4]) == magic else { return nil }
        let idLen = Int(blob[4])
        let end = 5 + idLen + 4
        guard idLen > 0, blob.count >= end + AESGCM.nonceByteCount + AESGCM.tagByteCount,
            let id = String(bytes: blob[5..<(5 + idLen)], encoding: .utf8)
        else { return nil }
        let v = blob[(5 + idLen)..<end].reduce(0) { $0 << 8 | Int($1) }
        guard v >= 1 else { return nil }
        return Header(keyId: id, version: v, headerLength: end)
    }

    static func open(_ blob: [UInt8], header: Header, material: SecureBytes, context: [String: String]) throws -> SecureBytes {
        let h = Array(blob[0..<header.headerLength])
        let nonce = Array(blob[header.headerLength..<(header.headerLength + AESGCM.nonceByteCount)])
        let body = Array(blob[(header.headerLength + AESGCM.nonceByteCount)..<(blob.count - AESGCM.tagByteCount)])
        let tag = Array(blob[(blob.count - AESGCM.tagByteCount)...])
        return try AESGCM.openSecret(body, tag: tag, key: material, nonce: nonce, authenticating: h + contextBytes(context))
    }
}
