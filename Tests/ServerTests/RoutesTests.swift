import HTTPServer
import Logging
import TestSupport
import Testing

@testable import Server

@Suite struct RoutesTests {
    func makeContext() throws -> AppContext {
        let dir = try TestEnvironment.temporaryDirectory("routes")
        let dataDirectory = DataDirectory(path: dir.path)
        let (credentials, _) = try dataDirectory.bootstrap()
        return AppContext(
            configuration: ServerConfiguration(), dataDirectory: dataDirectory, operatorCredentials: credentials,
            logger: Logger(label: "test"))
    }

    @Test func healthzAnswersOK() async throws {
        let router = ServerApp.makeRouter(context: try makeContext())
        let response = await router.respond(to: Request(method: .get, target: "/healthz"))
        #expect(response.status == .ok)
        #expect(String(decoding: try await response.collectBody(), as: UTF8.self) == #"{"status":"ok"}"#)
    }

    @Test func readyzFailsWithNotReadyWhileACheckFailsOrTheServerDrains() async throws {
        let context = try makeContext()
        let router = ServerApp.makeRouter(context: context)
        #expect(await router.respond(to: Request(method: .get, target: "/readyz")).status == .ok)
        context.readiness.add("database") { "not open" }
        let notReady = await router.respond(to: Request(method: .get, target: "/readyz"))
        #expect(notReady.status == .serviceUnavailable)
        let text = String(decoding: try await notReady.collectBody(), as: UTF8.self)
        #expect(text == #"{"error":{"code":"not_ready","message":"database: not open"}}"#)

        // Draining (what SIGTERM does) turns a ready server unready.
        let draining = try makeContext()
        let drainingRouter = ServerApp.makeRouter(context: draining)
        #expect(await drainingRouter.respond(to: Request(method: .get, target: "/readyz")).status == .ok)
        draining.readiness.beginDraining()
        #expect(await drainingRouter.respond(to: Request(method: .get, target: "/readyz")).status == .serviceUnavailable)
    }

    @Test func echoStreamsTheBodyBackWithItsLength() async throws {
        let router = ServerApp.makeRouter(context: try makeContext())
        let payload = (0..<100_000).map { UInt8(truncatingIfNeeded: $0) }
        let response = await router.respond(to: Request(method: .post, target: "/v1/echo", body: payload))
        #expect(response.status == .ok)
        #expect(response.body.knownLength == payload.count)
        #expect(try await response.collectBody() == payload)
    }
}
