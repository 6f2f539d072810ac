import AWS
import Foundation

/// The job routes of the server's /v1 API the party CLI uses (issue #8), in one place.
enum JobRoutes {
    /// Start (POST) and list (GET) a collaboration's jobs.
    static func start(collaboration: String) -> String { "/v1/collaborations/\(collaboration)/jobs" }
    static func job(_ id: String) -> String { "/v1/jobs/\(id)" }
    static func events(_ id: String) -> String { "/v1/jobs/\(id)/events" }
    static func cancel(_ id: String) -> String { "/v1/jobs/\(id)/cancel" }
    static func outputs(_ id: String) -> String { "/v1/jobs/\(id)/outputs" }
    static func outputContent(_ id: String, _ output: String) -> String { "/v1/jobs/\(id)/outputs/\(output)/content" }
    static func receipt(_ id: String) -> String { "/v1/jobs/\(id)/receipt" }
    static func approvalBundle(_ id: String) -> String { "/v1/jobs/\(id)/approval-bundle" }
    /// The policy the job ran, canonical text, even after the collaboration's policy was revised.
    static func policy(_ id: String) -> String { "/v1/jobs/\(id)/policy" }
}

/// A failed job's `error` (`{"code", "message"}`) as one line, `code: message`.
func jobError(_ job: [String: Any]) -> String? {
    guard let error = job["error"] as? [String: Any] else { return nil }
    return "\(error["code"] ?? "job.failed"): \(error["message"] ?? "")"
}

/// Job states that end a job.
let terminalJobStates: Set<String> = ["succeeded", "failed", "cancelled"]

extension GovernanceClient {
    /// A client for long-lived streams (Server-Sent Events): no stall timeout worth the name,
    /// since a job may train for a long time between two events.
    static let streamingHTTP: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.stallTimeout = 24 * 3600
        configuration.retry = .none
        return HTTPClient(configuration: configuration)
    }()

    /// Sends a GET and returns the response with its body still streaming, once the status is 2xx;
    /// an error answer becomes an `APIFailure` as for `call`.
    func stream(_ path: String, accept: String, headers extra: [(name: String, value: String)] = [], client: HTTPClient = .shared)
        async throws -> HTTPClientResponse
    {
        var headers: [(name: String, value: String)] = [("Accept", accept)] + extra
        if let token { headers.append(("Authorization", "Bearer \(token)")) }
        let request = HTTPClientRequest(method: "GET", url: baseURL + path, headers: headers, body: .empty, idempotent: true)
        let response: HTTPClientResponse
        do {
            response = try await client.send(request)
        } catch let error as HTTPClientError {
            throw APIFailure(status: 0, code: "unreachable", message: "cannot reach \(baseURL): \(error)")
        }
        guard (200..<300).contains(response.status) else {
            let bytes = (try? await response.body.collect(limit: 1 << 20)) ?? []
            let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]
            let error = object?["error"] as? [String: Any]
            throw APIFailure(
                status: response.status, code: error?["code"] as? String ?? "http_\(response.status)",
                message: error?["message"] as? String ?? String(decoding: bytes.prefix(500), as: UTF8.self))
        }
        return response
    }

    /// GETs a small document and returns its exact bytes (receipts and bundles are verified byte for byte).
    func bytes(_ path: String, limit: Int) async throws -> [UInt8] {
        let response = try await stream(path, accept: "application/json")
        return try await response.body.collect(limit: limit)
    }
}
