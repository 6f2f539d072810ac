import Crypto

/// SHA-256 and HMAC-SHA256 for SigV4, over the `Crypto` module.
enum AWSHash {
    static func sha256(_ bytes: [UInt8]) -> [UInt8] { SHA256.hash(bytes) }

    static func sha256Hex(_ bytes: [UInt8]) -> String { hex(sha256(bytes)) }

    static func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        do {
            return try HMAC.authenticate(data, key: SecureBytes(key), hash: .sha256)
        } catch {
            // Only an OpenSSL installation without HMAC gets here; nothing can be signed then.
            fatalError("HMAC-SHA256 unavailable: \(error)")
        }
    }

    /// Incremental SHA-256 for payloads that arrive in pieces.
    final class Stream: @unchecked Sendable {
        private var state = SHA256()
        func update(_ bytes: UnsafeRawBufferPointer) { state.update(bytes) }
        func update(_ bytes: [UInt8]) { state.update(bytes) }
        func finalize() -> [UInt8] { state.finalize() }
    }
}

/// Lower-case hex of bytes.
func hex(_ bytes: some Sequence<UInt8>) -> String { Hex.encode(Array(bytes)) }
