import Foundation
import TestSupport

/// The Encryption SDK vectors under ../shared/vectors/esdk, read by path.
enum VectorFiles {
    static func data(_ relativePath: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: TestEnvironment.vector("esdk/" + relativePath)))
    }

    static func json(_ relativePath: String) throws -> [String: Any] {
        let data = try Data(contentsOf: TestEnvironment.vector("esdk/" + relativePath))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TestEnvironmentError("\(relativePath) is not a JSON object")
        }
        return object
    }

    /// The vectors made with the Python SDK: name → details.json entry.
    static func details() throws -> [String: [String: Any]] {
        try json("details.json").compactMapValues { $0 as? [String: Any] }
    }

    /// AWS's format-2 compatibility vectors (aws-js-fixtures).
    static func compatibilityVectors() throws -> [[String: Any]] {
        (try json("aws-js-fixtures/message-format-v2-compat-vectors.json")["tests"] as? [[String: Any]]) ?? []
    }

    /// AWS's format-1 fixtures with all-zero data keys (aws-js-fixtures).
    static func v1Fixtures() throws -> [String: [String: Any]] {
        ((try json("aws-js-fixtures/v1-zero-data-key-fixtures.json")["cases"] as? [String: Any]) ?? [:])
            .compactMapValues { $0 as? [String: Any] }
    }

    static func base64(_ text: Any?) -> [UInt8]? {
        guard let text = (text as? String)?.trimmingCharacters(in: .whitespacesAndNewlines),
            let data = Data(base64Encoded: text)
        else { return nil }
        return [UInt8](data)
    }

    static func hex(_ text: Any?) -> [UInt8]? {
        guard let text = text as? String, text.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
            out.append(byte)
            index = next
        }
        return out
    }
}
