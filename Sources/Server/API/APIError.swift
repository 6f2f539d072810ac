import CleanRoom
import Foundation
import HTTPServer

/// Turns domain refusals into the project's JSON error shape, adding the failing fields of a
/// policy as `error.details` (`[{"field": "...", "message": "..."}]`).
enum APIError {
    static func status(_ kind: DomainError.Kind) -> HTTPStatus {
        switch kind {
        case .invalidInput: return .badRequest
        case .unauthenticated: return .unauthorized
        case .forbidden: return .forbidden
        case .notFound: return .notFound
        case .conflict: return .conflict
        case .payloadTooLarge: return .contentTooLarge
        case .internalError: return .internalServerError
        case .insufficientStorage: return .insufficientStorage
        }
    }

    private struct Body: Encodable {
        struct Inner: Encodable {
            let code: String
            let message: String
            let details: [Detail]?
        }
        struct Detail: Encodable {
            let field: String
            let message: String
        }
        let error: Inner
    }

    static func response(_ error: DomainError) -> Response {
        let details = error.details.isEmpty ? nil : error.details.map { Body.Detail(field: $0.field, message: $0.message) }
        let body = Body(error: .init(code: error.code, message: error.message, details: details))
        var response = (try? Response.json(body, status: status(error.kind)))
            ?? Response.errorJSON(status: status(error.kind), code: error.code, message: error.message)
        if error.kind == .unauthenticated { response.headers.set("WWW-Authenticate", "Bearer") }
        return response
    }
}
