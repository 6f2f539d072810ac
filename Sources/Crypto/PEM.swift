import COpenSSL

/// PEM (RFC 7468) text: labelled base64 blocks such as `-----BEGIN CERTIFICATE-----`.
public enum PEM {
    /// One decoded block.
    public struct Block: Sendable, Equatable {
        /// The label between `BEGIN ` and the dashes, e.g. `CERTIFICATE`, `PUBLIC KEY`.
        public let label: String
        /// The decoded DER bytes.
        public let der: [UInt8]
    }

    /// Every block in `text`, in order. Text between blocks is ignored. Throws `.invalidPEM`
    /// when there is no block, a body is not valid base64, or a block has encryption headers.
    public static func decode(_ text: String) throws -> [Block] {
        try decodeSecret(text).map { Block(label: $0.label, der: $0.der.copyBytes()) }
    }

    /// The single block of `text`, whose label must be one of `labels`.
    public static func decodeSingle(_ text: String, labels: Set<String>) throws -> Block {
        let block = try decodeSingleSecret(text, labels: labels)
        return Block(label: block.label, der: block.der.copyBytes())
    }

    /// PEM text for `der` under `label`, with 64-column lines and a final newline.
    public static func encode(label: String, der: [UInt8]) -> String {
        der.withUnsafeBytes { String(decoding: encodeBytes(label: label, der: $0), as: UTF8.self) }
    }

    // MARK: internals (secret-aware)

    struct SecretBlock {
        let label: String
        let der: SecureBytes
    }

    static let maximumTextLength = 1 << 24

    static func decodeSecret(_ text: String) throws -> [SecretBlock] {
        var bytes = Array(text.utf8)
        guard bytes.count <= maximumTextLength else { throw CryptoError(.invalidPEM, "PEM text larger than 16 MiB") }
        OpenSSLErrorQueue.clear()
        // The text may hold a private key: keep OpenSSL's copy in cleansed memory and wipe ours.
        let bio = try MemoryBIO(bytes, secret: true)
        bytes.withUnsafeMutableBytes { if let b = $0.baseAddress { OPENSSL_cleanse(b, $0.count) } }
        var blocks: [SecretBlock] = []
        while true {
            var name: UnsafeMutablePointer<CChar>? = nil
            var header: UnsafeMutablePointer<CChar>? = nil
            var data: UnsafeMutablePointer<UInt8>? = nil
            var length = 0
            let ok = PEM_read_bio(bio.pointer, &name, &header, &data, &length)
            defer {
                if let data {
                    OPENSSL_cleanse(data, length)
                    shim_OPENSSL_free(data)
                }
                if let name { shim_OPENSSL_free(name) }
                if let header { shim_OPENSSL_free(header) }
            }
            if ok != 1 {
                let errorCode = ERR_peek_last_error()
                let noMoreBlocks = ERR_GET_REASON(errorCode) == PEM_R_NO_START_LINE
                if noMoreBlocks && !blocks.isEmpty {
                    OpenSSLErrorQueue.clear()
                    return blocks
                }
                throw CryptoError.openSSL(.invalidPEM, blocks.isEmpty ? "no valid PEM block" : "malformed PEM block")
            }
            if let header, header.pointee != 0 {
                throw CryptoError(.invalidPEM, "PEM block has headers (encrypted PEM is not supported)")
            }
            let label = name.map { String(cString: $0) } ?? ""
            let der = SecureBytes(copying: UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : length))
            blocks.append(SecretBlock(label: label, der: der))
        }
    }

    static func decodeSingleSecret(_ text: String, labels: Set<String>) throws -> SecretBlock {
        let blocks = try decodeSecret(text)
        guard blocks.count == 1 else { throw CryptoError(.invalidPEM, "expected one PEM block, found \(blocks.count)") }
        guard labels.contains(blocks[0].label) else {
            throw CryptoError(.invalidPEM, "unexpected PEM label \(blocks[0].label); expected \(labels.sorted())")
        }
        return blocks[0]
    }

    static func encodeSecret(label: String, der: SecureBytes) -> SecureBytes {
        der.withUnsafeBytes { raw in
            var bytes = encodeBytes(label: label, der: raw)
            defer { bytes.withUnsafeMutableBytes { if let b = $0.baseAddress { OPENSSL_cleanse(b, $0.count) } } }
            return SecureBytes(bytes)
        }
    }

    private static func encodeBytes(label: String, der: UnsafeRawBufferPointer) -> [UInt8] {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var body: [UInt8] = []
        body.reserveCapacity(der.count * 4 / 3 + 4)
        var index = 0
        while index < der.count {
            let b0 = der[index]
            let b1 = index + 1 < der.count ? der[index + 1] : 0
            let b2 = index + 2 < der.count ? der[index + 2] : 0
            body.append(alphabet[Int(b0 >> 2)])
            body.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            body.append(index + 1 < der.count ? alphabet[Int((b1 & 0x0f) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            body.append(index + 2 < der.count ? alphabet[Int(b2 & 0x3f)] : UInt8(ascii: "="))
            index += 3
        }
        var out = Array("-----BEGIN \(label)-----\n".utf8)
        var offset = 0
        while offset < body.count {
            let end = min(offset + 64, body.count)
            out.append(contentsOf: body[offset..<end])
            out.append(UInt8(ascii: "\n"))
            offset = end
        }
        out.append(contentsOf: Array("-----END \(label)-----\n".utf8))
        body.withUnsafeMutableBytes { if let b = $0.baseAddress { OPENSSL_cleanse(b, $0.count) } }
        return out
    }
}
