import Logging
import Synchronization

/// A request handler: an `async` function from request to response. It runs on the Swift
/// concurrency pool, never on an event-loop thread; blocking work (SQLite, libcurl) still
/// belongs on its own threads. Throw `HTTPError` for client-visible errors.
public typealias Handler = @Sendable (Request) async throws -> Response

/// Code that wraps handlers (authentication, metrics). One method: call `next` or answer early.
public protocol Middleware: Sendable {
    func handle(_ request: Request, next: Handler) async throws -> Response
}

/// A feature's routes, registered from the feature's own file with one line in the app
/// assembly (`router.register(KMSRoutes(...))`).
public protocol RouteGroup {
    func registerRoutes(on router: Router)
}

/// Maps method + path patterns to handlers and builds the server's responder.
///
/// Patterns are `/`-separated: literal segments, `:name` parameters (one segment, decoded into
/// `request.pathParameters`) and a final `*` that matches the rest (parameter `*`). Literal
/// segments win over parameters. A path that matches no pattern gets 404; a path that matches
/// but not for this method gets 405 with `Allow`. `GET` routes also answer `HEAD`.
/// Every route has a body limit (the router's default unless given; `Int.max` for streams):
/// a declared Content-Length above it is refused with 413 before the handler runs, and reading
/// past it throws 413.
public final class Router: Sendable {
    struct Route: Sendable {
        let method: HTTPMethod
        let pattern: String
        let bodyLimit: Int
        let handler: Handler
    }

    final class Node: @unchecked Sendable {  // mutated only under `state`'s lock
        var literals: [String: Node] = [:]
        var parameter: (name: String, node: Node)?
        var catchAll: [HTTPMethod: Route] = [:]
        var routes: [HTTPMethod: Route] = [:]
    }

    struct State: ~Copyable {
        var root = Node()
        var middleware: [any Middleware] = []
        var table: [(HTTPMethod, String)] = []
    }

    private let state = Mutex(State())
    public let defaultBodyLimit: Int
    let logger: Logger

    /// - Parameter defaultBodyLimit: body limit of routes that do not set one (1 MiB).
    public init(defaultBodyLimit: Int = 1 << 20, logger: Logger = Logger(label: "cleanroom.http.router")) {
        self.defaultBodyLimit = defaultBodyLimit
        self.logger = logger
    }

    /// Adds a route. Registering the same method and pattern twice is a programming error.
    public func add(
        _ method: HTTPMethod, _ pattern: String, bodyLimit: Int? = nil, middleware: [any Middleware] = [],
        _ handler: @escaping Handler
    ) {
        let wrapped = middleware.reversed().reduce(handler) { next, m in { try await m.handle($0, next: next) } }
        let route = Route(method: method, pattern: pattern, bodyLimit: bodyLimit ?? defaultBodyLimit, handler: wrapped)
        state.withLock { s in
            var node = s.root
            let segments = Router.segments(of: pattern)
            for (i, segment) in segments.enumerated() {
                if segment == "*" {
                    precondition(i == segments.count - 1, "`*` must be the last segment of \(pattern)")
                    precondition(node.catchAll[method] == nil, "duplicate route \(method) \(pattern)")
                    node.catchAll[method] = route
                    s.table.append((method, pattern))
                    return
                }
                if segment.hasPrefix(":") {
                    let name = String(segment.dropFirst())
                    if let existing = node.parameter {
                        precondition(existing.name == name, "conflicting parameter names at \(pattern)")
                        node = existing.node
                    } else {
                        let child = Node()
                        node.parameter = (name, child)
                        node = child
                    }
                } else {
                    if let child = node.literals[segment] {
                        node = child
                    } else {
                        let child = Node()
                        node.literals[segment] = child
                        node = child
                    }
                }
            }
            precondition(node.routes[method] == nil, "duplicate route \(method) \(pattern)")
            node.routes[method] = route
            s.table.append((method, pattern))
        }
    }

    public func get(_ pattern: String, middleware: [any Middleware] = [], _ handler: @escaping Handler) {
        add(.get, pattern, middleware: middleware, handler)
    }
    public func post(
        _ pattern: String, bodyLimit: Int? = nil, middleware: [any Middleware] = [], _ handler: @escaping Handler
    ) {
        add(.post, pattern, bodyLimit: bodyLimit, middleware: middleware, handler)
    }
    public func put(
        _ pattern: String, bodyLimit: Int? = nil, middleware: [any Middleware] = [], _ handler: @escaping Handler
    ) {
        add(.put, pattern, bodyLimit: bodyLimit, middleware: middleware, handler)
    }
    public func patch(
        _ pattern: String, bodyLimit: Int? = nil, middleware: [any Middleware] = [], _ handler: @escaping Handler
    ) {
        add(.patch, pattern, bodyLimit: bodyLimit, middleware: middleware, handler)
    }
    public func delete(_ pattern: String, middleware: [any Middleware] = [], _ handler: @escaping Handler) {
        add(.delete, pattern, middleware: middleware, handler)
    }

    /// Adds middleware that wraps every route (registered before or after).
    public func use(_ middleware: any Middleware) { state.withLock { $0.middleware.append(middleware) } }

    /// Registers a feature's routes.
    public func register(_ group: any RouteGroup) { group.registerRoutes(on: self) }

    /// Every registered (method, pattern), in registration order.
    public var routes: [(method: HTTPMethod, pattern: String)] { state.withLock { $0.table.map { ($0.0, $0.1) } } }

    enum Match {
        case found(Route, Parameters)
        case methodNotAllowed([HTTPMethod])
        case notFound
    }

    func match(method: HTTPMethod, path: String) -> Match {
        let segments = Router.segments(of: path)
        return state.withLock { s -> Match in
            var candidates: [(Node?, [HTTPMethod: Route], Parameters)] = []
            Router.collect(node: s.root, segments: segments[...], params: Parameters(), into: &candidates)
            guard !candidates.isEmpty else { return .notFound }
            for (_, routes, params) in candidates {
                if let route = routes[method] { return .found(route, params) }
                if method == .head, let route = routes[.get] { return .found(route, params) }
            }
            var allowed = Set<HTTPMethod>()
            for (_, routes, _) in candidates { allowed.formUnion(routes.keys) }
            if allowed.contains(.get) { allowed.insert(.head) }
            return .methodNotAllowed(allowed.sorted { $0.rawValue < $1.rawValue })
        }
    }

    /// Depth-first: literal before parameter before catch-all, so the first candidate is the most specific.
    private static func collect(
        node: Node, segments: ArraySlice<String>, params: Parameters,
        into out: inout [(Node?, [HTTPMethod: Route], Parameters)]
    ) {
        guard let segment = segments.first else {
            if !node.routes.isEmpty { out.append((node, node.routes, params)) }
            if !node.catchAll.isEmpty {
                var p = params
                p.values["*"] = ""
                out.append((nil, node.catchAll, p))
            }
            return
        }
        let rest = segments.dropFirst()
        if let child = node.literals[segment] { collect(node: child, segments: rest, params: params, into: &out) }
        // A parameter never holds a control character: ids have none, and a NUL cut it short where
        // it reached SQLite (`job%00zz` found the job; a review).
        if let (name, child) = node.parameter, !segment.isEmpty, let decoded = PercentDecoding.decode(segment),
            !decoded.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F })
        {
            var p = params
            p.values[name] = decoded
            collect(node: child, segments: rest, params: p, into: &out)
        }
        if !node.catchAll.isEmpty {
            var p = params
            p.values["*"] = segments.joined(separator: "/")
            out.append((nil, node.catchAll, p))
        }
    }

    static func segments(of path: String) -> [String] {
        guard path != "/" else { return [] }
        var p = Substring(path)
        if p.hasPrefix("/") { p = p.dropFirst() }
        return p.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    }

    /// Answers a request: routing, body-limit checks, middleware, handler, and the JSON error
    /// shape for every error. Usable directly in tests, with no sockets.
    public func respond(to request: Request) async -> Response {
        var pattern: String?
        var response = await dispatch(request, matched: &pattern)
        response.route = pattern
        return response
    }

    private func dispatch(_ request: Request, matched pattern: inout String?) async -> Response {
        var request = request
        do {
            switch match(method: request.method, path: request.path) {
            case .notFound:
                throw HTTPError.notFound("no route for \(request.path)")
            case .methodNotAllowed(let allowed):
                let allow = allowed.map(\.rawValue).joined(separator: ", ")
                throw HTTPError(
                    .methodNotAllowed, code: "method_not_allowed",
                    message: "\(request.method) is not allowed here; allowed: \(allow)", headers: ["Allow": allow])
            case .found(let route, let params):
                pattern = route.pattern
                request.pathParameters = params
                request.body.limit = route.bodyLimit
                if let expected = request.body.expectedLength, expected > route.bodyLimit {
                    throw HTTPError.contentTooLarge(limit: route.bodyLimit)
                }
                let middleware = state.withLock { $0.middleware }
                let handler = middleware.reversed().reduce(route.handler) { next, m in
                    { try await m.handle($0, next: next) }
                }
                return try await handler(request)
            }
        } catch let error as HTTPError {
            return error.response
        } catch let error as ConnectionClosedError {
            return HTTPError(.badRequest, code: "connection_closed", message: error.description).response  // nobody reads it
        } catch {
            logger.error("handler failed", metadata: ["method": "\(request.method)", "path": "\(request.path)",
                "error": "\(String(reflecting: error))"])
            return HTTPError.internalError().response
        }
    }
}
