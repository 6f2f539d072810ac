import Foundation

/// JSON helpers for handlers: decode a request body, encode a response.
extension Request {
    /// Reads the whole body (bounded by the route's limit, or `maxBytes`) and decodes it.
    /// A malformed body is a 400 `invalid_json` saying where decoding failed.
    public func decodeJSON<T: Decodable>(_ type: T.Type, maxBytes: Int = .max) async throws -> T {
        let bytes = try await body.collect(upTo: maxBytes)
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw HTTPError.badRequest("the body is not the expected JSON: \(JSONErrorText.describe(error))",
                code: "invalid_json")
        } catch {
            throw HTTPError.badRequest("the body is not valid JSON", code: "invalid_json")
        }
    }
}

extension Response {
    /// A JSON response (`application/json`) from an `Encodable` value; keys sorted for stable output.
    public static func json<T: Encodable>(_ value: T, status: HTTPStatus = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(status: status, headers: ["Content-Type": "application/json"], body: .bytes(Array(data)))
    }
}

enum JSONErrorText {
    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let p = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "at the top level" : "at \(p)"
        }
        switch error {
        case .typeMismatch(let type, let c): return "expected \(type) \(path(c))"
        case .valueNotFound(let type, let c): return "missing \(type) value \(path(c))"
        case .keyNotFound(let key, let c): return "missing key \(key.stringValue) \(path(c))"
        case .dataCorrupted(let c): return "malformed JSON \(path(c))"
        @unknown default: return "invalid"
        }
    }
}
