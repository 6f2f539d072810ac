/// The one error type handlers throw to answer with a JSON error:
/// `{"error":{"code":"…","message":"…"}}` and the given status.
///
/// `code` is a stable machine-readable identifier (snake_case); `message` is for people and must
/// never contain a secret. Any other error a handler throws becomes a 500 `internal_error`
/// whose details are logged, not sent.
public struct HTTPError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: HTTPStatus
    public var code: String
    public var message: String
    /// Extra response headers (e.g. `Allow` on 405, `WWW-Authenticate` on 401).
    public var headers: HTTPHeaders

    public init(_ status: HTTPStatus, code: String, message: String, headers: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    public static func badRequest(_ message: String, code: String = "bad_request") -> HTTPError {
        HTTPError(.badRequest, code: code, message: message)
    }
    public static func unauthorized(_ message: String = "missing or invalid credentials", code: String = "unauthorized")
        -> HTTPError
    {
        HTTPError(.unauthorized, code: code, message: message, headers: ["WWW-Authenticate": "Bearer"])
    }
    public static func forbidden(_ message: String, code: String = "forbidden") -> HTTPError {
        HTTPError(.forbidden, code: code, message: message)
    }
    public static func notFound(_ message: String = "not found", code: String = "not_found") -> HTTPError {
        HTTPError(.notFound, code: code, message: message)
    }
    public static func conflict(_ message: String, code: String = "conflict") -> HTTPError {
        HTTPError(.conflict, code: code, message: message)
    }
    public static func contentTooLarge(limit: Int) -> HTTPError {
        HTTPError(.contentTooLarge, code: "content_too_large", message: "the request body is larger than \(limit) bytes")
    }
    public static func unprocessable(_ message: String, code: String = "unprocessable") -> HTTPError {
        HTTPError(.unprocessableContent, code: code, message: message)
    }
    public static func internalError(_ message: String = "internal server error") -> HTTPError {
        HTTPError(.internalServerError, code: "internal_error", message: message)
    }
    public static func serviceUnavailable(_ message: String, code: String = "unavailable") -> HTTPError {
        HTTPError(.serviceUnavailable, code: code, message: message)
    }

    /// The JSON error response for this error.
    public var response: Response {
        var response = Response.errorJSON(status: status, code: code, message: message)
        for (name, value) in headers { response.headers.add(name, value) }
        return response
    }
}

extension HTTPParseError {
    /// The JSON error response the connection sends before closing.
    var response: Response { Response.errorJSON(status: status, code: code, message: message) }
}
