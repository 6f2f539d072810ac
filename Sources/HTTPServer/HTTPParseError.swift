/// Why the request parser refused a request: the status to answer with, a stable machine code
/// and a message safe to show the client. After an error the connection is closed.
public struct HTTPParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public let status: HTTPStatus
    public let code: String
    public let message: String

    public init(_ status: HTTPStatus, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    static func bad(_ code: String, _ message: String) -> HTTPParseError { .init(.badRequest, code, message) }
}
