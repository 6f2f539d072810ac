import Foundation

/// Reads an attestation document handed over as a file or a text field: raw COSE_Sign1 bytes
/// (starting 0x84, or 0xd2 when tagged) or base64 of them (standard or URL alphabet, line breaks
/// and surrounding whitespace allowed).
public enum AttestationInput {
    /// Largest accepted input (base64 of the largest document we accept).
    public static let maxInputBytes = 96 * 1024

    /// The raw COSE bytes from `input`.
    public static func decode(_ input: [UInt8]) throws(AttestationError) -> [UInt8] {
        guard input.count <= maxInputBytes else {
            throw AttestationError(.malformedEncoding, "the input is \(input.count) bytes, at most \(maxInputBytes)")
        }
        if let first = input.first, first == 0x84 || first == 0xd2 { return input }
        var text = String(decoding: input, as: UTF8.self).filter { !$0.isWhitespace }
        text = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text.append("=") }
        guard !text.isEmpty, let data = Data(base64Encoded: text), let first = data.first,
            first == 0x84 || first == 0xd2
        else {
            throw AttestationError(.malformedEncoding, "the input is neither a COSE_Sign1 nor base64 of one")
        }
        return [UInt8](data)
    }
}
