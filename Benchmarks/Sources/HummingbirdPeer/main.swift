// A minimal Hummingbird 2 server with the same routes as cleanroomd's benchmark routes:
// `GET /healthz` (a small JSON object) and `POST /v1/echo` (streams the request body back).
// Listens on 127.0.0.1:$PORT (default 8081) with one event loop per core, no request logging.
import Foundation
import Hummingbird
import NIOCore
import NIOPosix

let port = Int(ProcessInfo.processInfo.environment["PORT"] ?? "") ?? 8081
let router = Router()
router.get("healthz") { _, _ -> Response in
    Response(
        status: .ok, headers: [.contentType: "application/json"],
        body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}")))
}
router.post("v1/echo") { request, _ -> Response in
    Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(asyncSequence: request.body))
}
let app = Application(
    router: router,
    configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "Hummingbird"),
    eventLoopGroupProvider: .shared(MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount))
)
try await app.runService()
