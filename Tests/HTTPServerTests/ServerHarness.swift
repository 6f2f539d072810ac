import Foundation
import Synchronization
import TestSupport

@testable import HTTPServer

/// Starts a server on 127.0.0.1:0 with `router`, runs `body` with its port, then shuts it down.
func withServer(
    _ router: Router, limits: HTTPServerLimits = HTTPServerLimits(), loops: Int = 2,
    accessLog: (@Sendable (AccessLogEntry) -> Void)? = nil,
    _ body: (HTTPServer) async throws -> Void
) async throws {
    let server = try HTTPServer(
        configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, eventLoops: loops, limits: limits),
        router: router, accessLog: accessLog)
    try server.start()
    do {
        try await body(server)
    } catch {
        await server.shutdown(gracePeriod: .milliseconds(100))
        throw error
    }
    await server.shutdown(gracePeriod: .seconds(2))
}

/// A one-shot flag handlers can wait on.
final class Gate: Sendable {
    private let opened = Atomic<Bool>(false)
    func open() { opened.store(true, ordering: .relaxed) }
    func wait() async {
        while !opened.load(ordering: .relaxed) { try? await Task.sleep(for: .milliseconds(5)) }
    }
}

/// A counter shared between threads.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func add(_ n: Int) { value.add(n, ordering: .relaxed) }
    var current: Int { value.load(ordering: .relaxed) }
}
