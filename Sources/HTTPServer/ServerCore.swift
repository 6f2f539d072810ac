import Logging
import Synchronization

/// Answers a request; the router's `respond(to:)` is one.
public typealias Responder = @Sendable (Request) async -> Response

/// State shared by every loop and connection of one server.
final class ServerCore: Sendable {
    let responder: Responder
    let limits: HTTPServerLimits
    let accessLog: (@Sendable (AccessLogEntry) -> Void)?
    let tls: TLSContext?
    let logger: Logger
    let openConnections = Atomic<Int>(0)
    let draining = Atomic<Bool>(false)

    init(
        responder: @escaping Responder, limits: HTTPServerLimits, accessLog: (@Sendable (AccessLogEntry) -> Void)?,
        tls: TLSContext?, logger: Logger
    ) {
        self.responder = responder
        self.limits = limits
        self.accessLog = accessLog
        self.tls = tls
        self.logger = logger
    }
}

/// The connection went away before a streamed response could be written.
public struct ConnectionClosedError: Error, Sendable, CustomStringConvertible {
    public var description: String { "the client connection is closed" }
}
