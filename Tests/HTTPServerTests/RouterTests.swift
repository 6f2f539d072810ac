import Testing

@testable import HTTPServer

@Suite struct RouterTests {
    func body(_ response: Response) async throws -> String {
        String(decoding: try await response.collectBody(), as: UTF8.self)
    }

    @Test func literalRouteAnswersAndUnknownPathIs404WithJSONError() async throws {
        let router = Router()
        router.get("/healthz") { _ in .text("ok") }
        #expect(try await body(await router.respond(to: Request(method: .get, target: "/healthz"))) == "ok")
        let missing = await router.respond(to: Request(method: .get, target: "/nope"))
        #expect(missing.status == .notFound)
        #expect(try await body(missing) == #"{"error":{"code":"not_found","message":"no route for /nope"}}"#)
        #expect(missing.headers["Content-Type"] == "application/json")
    }

    @Test func wrongMethodIs405WithAllowListingEveryMethod() async throws {
        let router = Router()
        router.get("/v1/items/:id") { _ in .text("get") }
        router.delete("/v1/items/:id") { _ in .text("del") }
        let response = await router.respond(to: Request(method: .post, target: "/v1/items/7"))
        #expect(response.status == .methodNotAllowed)
        #expect(response.headers["Allow"] == "DELETE, GET, HEAD")
        #expect(try await body(response).contains(#""code":"method_not_allowed""#))
    }

    @Test func pathParametersArePercentDecodedAndLiteralsWinOverParameters() async throws {
        let router = Router()
        router.get("/v1/items/:id") { req in .text("param:" + (try req.pathParameters.require("id"))) }
        router.get("/v1/items/special") { _ in .text("literal") }
        router.get("/files/*") { req in .text("rest:" + req.pathParameters["*"]!) }
        #expect(try await body(await router.respond(to: Request(method: .get, target: "/v1/items/a%20b?x=1"))) == "param:a b")
        #expect(try await body(await router.respond(to: Request(method: .get, target: "/v1/items/special"))) == "literal")
        #expect(try await body(await router.respond(to: Request(method: .get, target: "/files/a/b/c"))) == "rest:a/b/c")
        #expect(await router.respond(to: Request(method: .get, target: "/v1/items/")).status == .notFound)
        #expect(await router.respond(to: Request(method: .get, target: "/v1/items/a/b")).status == .notFound)
        for control in ["a%00zz", "%0a", "a%1Fb", "a%7F"] {
            #expect(await router.respond(to: Request(method: .get, target: "/v1/items/\(control)")).status == .notFound, "\(control)")
        }
    }

    @Test func headIsServedByTheGetRoute() async throws {
        let router = Router()
        router.get("/x") { _ in .text("hello") }
        #expect(await router.respond(to: Request(method: .head, target: "/x")).status == .ok)
    }

    @Test func declaredBodyAboveTheRouteLimitIs413BeforeTheHandlerRuns() async throws {
        let router = Router(defaultBodyLimit: 4)
        let ran = Locked(false)
        router.post("/small") { _ in
            ran.withLock { $0 = true }
            return .text("ran")
        }
        router.post("/big", bodyLimit: 100) { req in .text(String(try await req.body.collect().count)) }
        let refused = await router.respond(to: Request(method: .post, target: "/small", body: Array("hello".utf8)))
        #expect(refused.status == .contentTooLarge)
        #expect(try await body(refused).contains(#""code":"content_too_large""#))
        #expect(ran.withLock { $0 } == false)
        #expect(try await body(await router.respond(to: Request(method: .post, target: "/big", body: Array("hello".utf8)))) == "5")
    }

    @Test func thrownHTTPErrorBecomesTheJSONShapeAndOtherErrorsA500WithoutDetails() async throws {
        struct Secret: Error {}
        let router = Router()
        router.get("/teapot") { _ in throw HTTPError(HTTPStatus(code: 418), code: "teapot", message: "short \"and\" stout") }
        router.get("/boom") { _ in throw Secret() }
        let teapot = await router.respond(to: Request(method: .get, target: "/teapot"))
        #expect(teapot.status.code == 418)
        #expect(try await body(teapot) == #"{"error":{"code":"teapot","message":"short \"and\" stout"}}"#)
        let boom = await router.respond(to: Request(method: .get, target: "/boom"))
        #expect(boom.status == .internalServerError)
        #expect(try await body(boom) == #"{"error":{"code":"internal_error","message":"internal server error"}}"#)
    }

    @Test func jsonHelpersDecodeBodiesAndReportWhereDecodingFailed() async throws {
        struct Item: Codable, Equatable {
            let name: String
            let count: Int
        }
        let router = Router()
        router.post("/items") { req in
            let item = try await req.decodeJSON(Item.self)
            return try .json(Item(name: item.name.uppercased(), count: item.count + 1), status: .created)
        }
        let ok = await router.respond(
            to: Request(method: .post, target: "/items", body: Array(#"{"name":"a","count":1}"#.utf8)))
        #expect(ok.status == .created)
        #expect(try await body(ok) == #"{"count":2,"name":"A"}"#)
        let bad = await router.respond(to: Request(method: .post, target: "/items", body: Array(#"{"name":"a"}"#.utf8)))
        #expect(bad.status == .badRequest)
        #expect(try await body(bad).contains("missing key count"))
    }

    @Test func middlewareWrapsRoutesAndCanAnswerEarly() async throws {
        struct Principal: RequestStorageKey { typealias Value = String }
        struct Auth: Middleware {
            func handle(_ request: Request, next: Handler) async throws -> Response {
                guard let token = request.headers["Authorization"] else { throw HTTPError.unauthorized() }
                var request = request
                request.storage[Principal.self] = token
                return try await next(request)
            }
        }
        let router = Router()
        router.get("/me", middleware: [Auth()]) { req in .text(req.storage[Principal.self] ?? "?") }
        let denied = await router.respond(to: Request(method: .get, target: "/me"))
        #expect(denied.status == .unauthorized)
        #expect(denied.headers["WWW-Authenticate"] == "Bearer")
        let allowed = await router.respond(
            to: Request(method: .get, target: "/me", headers: ["Host": "h", "Authorization": "alice"]))
        #expect(try await body(allowed) == "alice")
    }

    @Test func routeGroupsRegisterFromTheirOwnType() async throws {
        struct Greetings: RouteGroup {
            func registerRoutes(on router: Router) {
                router.get("/hello/:name") { req in .text("hi " + (try req.pathParameters.require("name"))) }
            }
        }
        let router = Router()
        router.register(Greetings())
        #expect(try await body(await router.respond(to: Request(method: .get, target: "/hello/bob"))) == "hi bob")
        #expect(router.routes.map(\.pattern) == ["/hello/:name"])
    }

    @Test func queryParametersAreDecoded() {
        let req = Request(method: .get, target: "/s?q=a+b&x=%2F&flag")
        #expect(req.queryParameter("q") == "a b")
        #expect(req.queryParameter("x") == "/")
        #expect(req.queryParameter("flag") == "")
        #expect(req.path == "/s")
        #expect(Request(method: .get, target: "http://h:1/p?z=1").path == "/p")
    }

    @Test func streamedBodyLimitThrows413WhileReading() async throws {
        let router = Router(defaultBodyLimit: 3)
        router.post("/s") { req in .text(String(try await req.body.collect().count)) }
        var request = Request(method: .post, target: "/s", body: Array("toolong".utf8))
        request.body = RequestBody(bytes: Array("toolong".utf8))
        #expect(await router.respond(to: request).status == .contentTooLarge)
    }
}
