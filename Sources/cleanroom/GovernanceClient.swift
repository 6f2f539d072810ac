import AWS
import Foundation

/// The `cleanroom` CLI's client for the server's /v1 API, over the libcurl HTTP client.
struct GovernanceClient: Sendable {
    let baseURL: String
    let token: String?

    /// The server answered with an error, or could not be reached (`status` 0).
    struct APIFailure: Error {
        let status: Int
        let code: String
        let message: String
    }

    /// Sends a JSON request and returns the decoded JSON object of a 2xx answer.
    func call(_ method: String, _ path: String, json body: Any? = nil) async throws -> [String: Any] {
        var headers: [(name: String, value: String)] = [("Accept", "application/json")]
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        var requestBody = HTTPClientRequest.Body.empty
        if let body {
            headers.append(("Content-Type", "application/json"))
            requestBody = .bytes(Array(try JSONSerialization.data(withJSONObject: body, options: [.withoutEscapingSlashes])))
        }
        let request = HTTPClientRequest(
            method: method, url: baseURL + path, headers: headers, body: requestBody, idempotent: method == "GET")
        return try await send(request)
    }

    /// Sends a streamed body (an upload) and returns the decoded JSON answer.
    func upload(_ path: String, stream: ByteStream, length: Int?) async throws -> [String: Any] {
        var headers: [(name: String, value: String)] = [
            ("Accept", "application/json"), ("Content-Type", "application/octet-stream"),
        ]
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        let request = HTTPClientRequest(
            method: "PUT", url: baseURL + path, headers: headers, body: .stream(stream, length: length), idempotent: false)
        return try await send(request)
    }

    private func send(_ request: HTTPClientRequest) async throws -> [String: Any] {
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.send(request)
        } catch let error as HTTPClientError {
            throw APIFailure(status: 0, code: "unreachable", message: "cannot reach \(baseURL): \(error)")
        }
        let bytes = try await response.body.collect(limit: 16 << 20)
        let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]
        guard (200..<300).contains(response.status) else {
            let error = object?["error"] as? [String: Any]
            var message = error?["message"] as? String ?? String(decoding: bytes.prefix(500), as: UTF8.self)
            // Each detail on a line of its own, unless the message already says it (one detail, in the message).
            let details = error?["details"] as? [[String: Any]] ?? []
            let said = details.count == 1 && message.contains(details[0]["message"] as? String ?? "\u{0}")
            if !details.isEmpty, !said {
                message += "\n" + details.map { "  \($0["field"] ?? ""): \($0["message"] ?? "")" }.joined(separator: "\n")
            }
            throw APIFailure(status: response.status, code: error?["code"] as? String ?? "http_\(response.status)", message: message)
        }
        guard let object else {
            throw APIFailure(status: response.status, code: "invalid_response", message: "the server's answer is not a JSON object")
        }
        return object
    }
}
