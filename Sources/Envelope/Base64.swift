import Foundation

/// Strict base64 (RFC 4648 alphabet with padding), as the SDKs write `aws-crypto-public-key`.
func base64Decode(_ text: String) -> [UInt8]? {
    guard let data = Data(base64Encoded: text) else { return nil }
    return [UInt8](data)
}

func base64Encode(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
