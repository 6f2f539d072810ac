import COpenSSL

/// SHA-256 and HMAC-SHA256 for SigV4. Temporary bridge over OpenSSL until the `Crypto`
/// module's digests land; the rest of the module calls only these three entry points.
enum AWSHash {
    static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        bytes.withUnsafeBufferPointer { buf in
            out.withUnsafeMutableBufferPointer { o in
                var len: UInt32 = 32
                _ = EVP_Digest(buf.baseAddress, buf.count, o.baseAddress, &len, EVP_sha256(), nil)
            }
        }
        return out
    }

    static func sha256Hex(_ bytes: [UInt8]) -> String { hex(sha256(bytes)) }

    static func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var len: UInt32 = 32
        key.withUnsafeBufferPointer { k in
            data.withUnsafeBufferPointer { d in
                out.withUnsafeMutableBufferPointer { o in
                    _ = HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), d.baseAddress, d.count, o.baseAddress, &len)
                }
            }
        }
        return out
    }

    /// Incremental SHA-256 for payloads that arrive in pieces.
    final class Stream {
        private let ctx: OpaquePointer
        init() {
            ctx = EVP_MD_CTX_new()
            EVP_DigestInit_ex(ctx, EVP_sha256(), nil)
        }
        deinit { EVP_MD_CTX_free(ctx) }
        func update(_ bytes: UnsafeRawBufferPointer) { EVP_DigestUpdate(ctx, bytes.baseAddress, bytes.count) }
        func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }
        func finalize() -> [UInt8] {
            var out = [UInt8](repeating: 0, count: 32)
            var len: UInt32 = 0
            out.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(ctx, $0.baseAddress, &len) }
            return out
        }
    }
}

/// Lower-case hex of bytes.
func hex(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}
