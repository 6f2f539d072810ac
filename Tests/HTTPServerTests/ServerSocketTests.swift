import Foundation
import Testing
import TestSupport

@testable import HTTPServer

/// The server over real sockets on 127.0.0.1.
@Suite struct ServerSocketTests {
    static func echoRouter() -> Router {
        let router = Router()
        router.get("/hello") { _ in .text("hello") }
        router.get("/slow/:ms") { req in
            try await Task.sleep(for: .milliseconds(Int(try req.pathParameters.require("ms"))!))
            return .text("slept " + (try req.pathParameters.require("ms")))
        }
        router.post("/echo", bodyLimit: .max) { req in
            let body = req.body
            return Response(body: .stream(length: body.expectedLength) { w in
                for try await chunk in body { try await w.write(chunk) }
            })
        }
        router.post("/small", bodyLimit: 10) { req in .text(String(try await req.body.collect().count)) }
        router.post("/ignore") { _ in .text("ignored") }
        router.post("/trailers", bodyLimit: .max) { req in
            var total = 0
            for try await chunk in req.body { total += chunk.count }
            let echoed = req.body.trailers["X-Checksum"] ?? "none"
            let count = total
            return Response(body: .stream { w in
                try await w.write(Array("got \(count) ".utf8))
                try await w.write(Array("trailer \(echoed)".utf8))
                w.setTrailers(["X-Done": "yes"])
            })
        }
        return router
    }

    @Test func keepAliveServesManyRequestsOnOneConnection() async throws {
        try await withServer(Self.echoRouter()) { server in
            let port = server.port
            try await offPool {
                let client = try RawHTTPClient(port: port)
                for i in 0..<20 {
                    try client.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                    let r = try client.readResponse()
                    #expect(r.status == 200 && r.bodyText == "hello", "request \(i)")
                    #expect(r.header("Connection") == nil)
                    #expect(r.header("Date") != nil)
                }
            }
        }
    }

    @Test func pipelinedRequestsAreAnsweredInRequestOrder() async throws {
        try await withServer(Self.echoRouter()) { server in
            let port = server.port
            try await offPool {
                let client = try RawHTTPClient(port: port)
                // The first request takes longest; answers must still come back in order.
                try client.send(
                    "GET /slow/200 HTTP/1.1\r\nHost: t\r\n\r\nPOST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                        + "GET /slow/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                #expect(try client.readResponse().bodyText == "slept 200")
                #expect(try client.readResponse().bodyText == "abc")
                #expect(try client.readResponse().bodyText == "slept 1")
                #expect(try client.readResponse().bodyText == "hello")
            }
        }
    }

    @Test func chunkedRequestBodyWithTrailersAndChunkedResponseWithTrailers() async throws {
        try await withServer(Self.echoRouter()) { server in
            let port = server.port
            try await offPool {
                let client = try RawHTTPClient(port: port)
                try client.send(
                    "POST /trailers HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + "4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\nX-Checksum: 42\r\n\r\n")
                let r = try client.readResponse()
                #expect(r.status == 200)
                #expect(r.header("Transfer-Encoding") == "chunked")
                #expect(r.bodyText == "got 7 trailer 42")
                #expect(r.trailers.first { $0.0 == "X-Done" }?.1 == "yes")
                // A chunked request through the echo route comes back chunked (length unknown).
                try client.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                let echo = try client.readResponse()
                #expect(echo.bodyText == "hello" && echo.header("Transfer-Encoding") == "chunked")
            }
        }
    }

    @Test func http10ClosesByDefaultKeepsAliveWhenAskedAndGetsCloseDelimitedStreams() async throws {
        try await withServer(Self.echoRouter()) { server in
            let port = server.port
            try await offPool {
                let a = try RawHTTPClient(port: port)
                try a.send("GET /hello HTTP/1.0\r\n\r\n")
                let r = try a.readResponse()
                #expect(r.bodyText == "hello" && r.header("Connection") == "close")
                #expect(a.waitForClose())

                let b = try RawHTTPClient(port: port)
                try b.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                #expect(try b.readResponse().header("Connection") == "keep-alive")
                try b.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                #expect(try b.readResponse().bodyText == "hello")
                // A stream of unknown length cannot be chunked for 1.0: the body ends at close.
                try b.send("POST /trailers HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi")
                let streamed = try b.readResponse()
                #expect(streamed.header("Transfer-Encoding") == nil && streamed.header("Connection") == "close")
                #expect(streamed.bodyText == "got 2 trailer none")
            }
        }
    }

    @Test func connectionCloseIsHonouredAndEchoed() async throws {
        try await withServer(Self.echoRouter()) { server in
            let port = server.port
            try await offPool {
                let client = try RawHTTPClient(port: port)
                try client.send("GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                #expect(try client.readResponse().header("Connection") == "close")
                #expect(client.waitForClose())
            }
        }
    }

    @Test func smugglingAttemptGets400JSONAndTheConnectionCloses() async throws {
        try await withServer(Self.echoRouter()) { server in
            let port = server.port
            try await offPool {
                let client = try RawHTTPClient(port: port)
                try client.send(
                    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                let r = try client.readResponse()
                #expect(r.status == 400)
                #expect(r.bodyText.contains(#""code":"te_and_cl""#))
                #expect(r.header("Connection") == "close")
                #expect(client.waitForClose())
            }
        }
    }

    @Test func declaredBodyOverTheRouteLimitIs413WithoutReadingIt() async throws {
        try await withServer(Self.echoRouter()) { server in
            let port = server.port
            try await offPool {
                let client = try RawHTTPClient(port: port)
                try client.send("POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
                let r = try client.readResponse(interim: true)
                #expect(r.status == 413)  // no 100 Continue first: the handler never read
                #expect(r.bodyText.contains("content_too_large"))
                #expect(r.header("Connection") == "close")
            }
        }
    }

    @Test func continueIsSentOnlyWhenTheHandlerReadsTheBody() async throws {
        try await withServer(Self.echoRouter()) { server in
            let port = server.port
            try await offPool {
                let client = try RawHTTPClient(port: port)
                try client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
                let interim = try client.readResponse(interim: true)
                #expect(interim.status == 100)
                try client.send("hello")
                #expect(try client.readResponse().bodyText == "hello")
                // A handler that never reads answers at once, with no 100, and the connection closes
                // because the client may or may not send the body.
                try client.send("POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
                let direct = try client.readResponse(interim: true)
                #expect(direct.status == 200 && direct.bodyText == "ignored")
                #expect(direct.header("Connection") == "close")
            }
        }
    }

    @Test func unreadSmallBodiesAreDiscardedToKeepTheConnection() async throws {
        try await withServer(Self.echoRouter()) { server in
            let port = server.port
            try await offPool {
                let client = try RawHTTPClient(port: port)
                try client.send("POST /ignore HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                #expect(try client.readResponse().bodyText == "ignored")
                #expect(try client.readResponse().bodyText == "hello")
            }
        }
    }

    @Test func headGetsTheLengthButNoBody() async throws {
        try await withServer(Self.echoRouter()) { server in
            let port = server.port
            try await offPool {
                let client = try RawHTTPClient(port: port)
                try client.send("HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                let head = try client.readResponse(head: true)
                #expect(head.status == 200 && head.header("Content-Length") == "5" && head.body.isEmpty)
                #expect(try client.readResponse().bodyText == "hello")
                try client.send("DELETE /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                let denied = try client.readResponse()
                #expect(denied.status == 405 && denied.header("Allow") == "GET, HEAD")
            }
        }
    }

    @Test func slowClientHitsTheHeaderTimeoutWith408() async throws {
        var limits = HTTPServerLimits()
        limits.headerReadTimeout = .milliseconds(500)
        try await withServer(Self.echoRouter(), limits: limits) { server in
            let port = server.port
            try await offPool {
                let client = try RawHTTPClient(port: port, timeout: 5)
                let start = Date()
                try client.send("GET /hello HTTP/1.1\r\nHost: t\r\n")  // never finishes the head
                let r = try client.readResponse()
                #expect(r.status == 408)
                #expect(r.bodyText.contains("header_timeout"))
                #expect(client.waitForClose())
                #expect(Date().timeIntervalSince(start) < 3)
            }
        }
    }

    @Test func idleKeepAliveConnectionsAreClosed() async throws {
        var limits = HTTPServerLimits()
        limits.idleTimeout = .milliseconds(300)
        try await withServer(Self.echoRouter(), limits: limits) { server in
            let port = server.port
            try await offPool {
                let client = try RawHTTPClient(port: port, timeout: 5)
                try client.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                _ = try client.readResponse()
                #expect(client.waitForClose())
            }
            let deadline = ContinuousClock.now + .seconds(10)
            while server.connectionCount > 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(server.connectionCount == 0)
        }
    }

    @Test func aThousandConcurrentConnectionsAreAllServed() async throws {
        try await withServer(Self.echoRouter()) { server in
            let port = server.port
            try await offPool {
                var clients: [RawHTTPClient] = []
                for _ in 0..<1000 { clients.append(try RawHTTPClient(port: port, timeout: 30)) }
                for client in clients { try client.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n") }
                var ok = 0
                for client in clients where try client.readResponse().bodyText == "hello" { ok += 1 }
                #expect(ok == 1000)
                #expect(server.connectionCount == 1000)
            }
        }
    }

    @Test func connectionsBeyondTheCapGet503() async throws {
        var limits = HTTPServerLimits()
        limits.maxConnections = 3
        try await withServer(Self.echoRouter(), limits: limits) { server in
            let port = server.port
            try await offPool {
                var held: [RawHTTPClient] = []
                for _ in 0..<3 {
                    let c = try RawHTTPClient(port: port)
                    try c.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                    _ = try c.readResponse()
                    held.append(c)
                }
                let extra = try RawHTTPClient(port: port)
                let r = try extra.readResponse()
                #expect(r.status == 503 && r.bodyText.contains("too_many_connections"))
                // The whole JSON error arrives: Content-Length matches the body.
                let error = (try? JSONSerialization.jsonObject(with: Data(r.bodyText.utf8))) as? [String: [String: String]]
                #expect(error?["error"]?["message"] == "server is at capacity", "\(r.bodyText)")
                _ = held
            }
        }
    }

    @Test func requestBodyBackpressureStopsReadingTheSocket() async throws {
        let gate = Gate()
        let router = Router()
        router.post("/later", bodyLimit: .max) { req in
            await gate.wait()
            var total = 0
            for try await chunk in req.body { total += chunk.count }
            return .text(String(total))
        }
        try await withServer(router) { server in
            let port = server.port
            let sent = Counter()
            let size = 64 << 20
            let client = try RawHTTPClient(port: port, timeout: 30)
            let sender = Task {
                try await offPool {
                    try client.send("POST /later HTTP/1.1\r\nHost: t\r\nContent-Length: \(size)\r\n\r\n")
                    let chunk = [UInt8](repeating: 0x61, count: 64 * 1024)
                    for _ in 0..<(size / chunk.count) {
                        try client.send(chunk)
                        sent.add(chunk.count)
                    }
                }
            }
            try await Task.sleep(for: .seconds(1))
            let stalledAt = sent.current
            #expect(stalledAt < 24 << 20, "the client could send \(stalledAt) bytes to a handler that was not reading")
            gate.open()
            try await sender.value
            let response = try await offPool { try client.readResponse() }
            #expect(response.bodyText == String(size))
        }
    }

    @Test func responseStreamBackpressureSuspendsTheWriter() async throws {
        let produced = Counter()
        let router = Router()
        router.get("/firehose") { _ in
            Response(body: .stream { w in
                let chunk = [UInt8](repeating: 0x62, count: 64 * 1024)
                for _ in 0..<1024 {
                    try await w.write(chunk)
                    produced.add(chunk.count)
                }
            })
        }
        try await withServer(router) { server in
            let port = server.port
            let client = try RawHTTPClient(port: port, timeout: 30)
            try await offPool { try client.send("GET /firehose HTTP/1.1\r\nHost: t\r\n\r\n") }
            try await Task.sleep(for: .seconds(1))
            #expect(produced.current < 24 << 20, "the handler produced \(produced.current) bytes for a client that was not reading")
            let response = try await offPool { try client.readResponse() }
            #expect(response.body.count == 64 << 20)
        }
    }

    @Test func shutdownLetsAnInFlightRequestFinishAndStopsAccepting() async throws {
        let started = Gate()
        let release = Gate()
        let router = Router()
        router.get("/held") { _ in
            started.open()
            await release.wait()
            return .text("finished")
        }
        let server = try HTTPServer(
            configuration: HTTPServerConfiguration(host: "127.0.0.1", port: 0, eventLoops: 1), router: router)
        try server.start()
        let port = server.port
        let client = try RawHTTPClient(port: port, timeout: 30)
        let idle = try RawHTTPClient(port: port, timeout: 30)
        try await offPool { try client.send("GET /held HTTP/1.1\r\nHost: t\r\n\r\n") }
        await started.wait()
        let shutdown = Task { await server.shutdown(gracePeriod: .seconds(20)) }
        #expect(try await offPool { idle.waitForClose() })  // idle connections close at once
        release.open()  // the in-flight request finishes during the drain
        let response = try await offPool { try client.readResponse() }
        #expect(response.status == 200 && response.bodyText == "finished")
        #expect(response.header("Connection") == "close")
        await shutdown.value
        #expect(server.connectionCount == 0)
        #expect(throws: RawHTTPError.self) { try RawHTTPClient(port: port) }
    }

    @Test func accessLogHasOneJSONLinePerRequest() async throws {
        let lines = Locked<[String]>([])
        try await withServer(Self.echoRouter(), accessLog: { entry in lines.withLock { $0.append(entry.jsonLine) } }) { server in
            let port = server.port
            try await offPool {
                let client = try RawHTTPClient(port: port)
                try client.send("POST /echo?secret=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
                _ = try client.readResponse()
            }
        }
        let line = try #require(lines.withLock { $0 }.first)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(json["method"] as? String == "POST")
        #expect(json["path"] as? String == "/echo")
        #expect(json["status"] as? Int == 200)
        #expect(json["bytes_in"] as? Int == 3 && json["bytes_out"] as? Int == 3)
        #expect(json["duration_ms"] is Double && json["time"] is String)
        #expect(!line.contains("secret"))
    }
}
