import HTTPServer

/// `POST /v1/echo`: streams the request body back unchanged, with backpressure both ways and no
/// body limit. For tests and benchmarks; it holds at most a few chunks in memory.
struct EchoRoutes: RouteGroup {
    func registerRoutes(on router: Router) {
        router.post("/v1/echo", bodyLimit: .max) { request in
            let contentType = request.headers["Content-Type"] ?? "application/octet-stream"
            let body = request.body
            return Response(
                status: .ok, headers: ["Content-Type": contentType],
                body: .stream(length: body.expectedLength) { writer in
                    for try await chunk in body { try await writer.write(chunk) }
                })
        }
    }
}
