/// Why a domain operation was refused: a stable machine code, a message for people, and the kind
/// of failure (which the REST layer maps to an HTTP status). Messages never contain secrets.
public struct DomainError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The class of failure; the REST layer maps each to one HTTP status.
    public enum Kind: String, Sendable {
        case invalidInput  // 400
        case unauthenticated  // 401
        case forbidden  // 403
        case notFound  // 404
        case conflict  // 409
        case payloadTooLarge  // 413
        case internalError  // 500
        /// The server's storage is full: nothing was changed; the same request can succeed once the
        /// operator has freed space.
        case insufficientStorage  // 507
    }

    public let kind: Kind
    /// A stable identifier tests and clients compare, e.g. `approval_expired`.
    public let code: String
    public let message: String
    /// For schema violations: each failing field with its reason.
    public let details: [JSONSchemaValidator.Violation]

    public init(_ kind: Kind, _ code: String, _ message: String, details: [JSONSchemaValidator.Violation] = []) {
        self.kind = kind
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code): \(message)" }

    /// `404 not_found`, "no such WHAT": the same for another party's object as for a missing one.
    public static func notFound(_ what: String) -> DomainError {
        DomainError(.notFound, "not_found", "no such \(what)")
    }

    static func invalid(_ code: String, _ message: String) -> DomainError {
        DomainError(.invalidInput, code, message)
    }
}
