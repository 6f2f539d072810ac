import HTTPServer

/// `GET /healthz` (the process serves requests) and `GET /readyz` (every readiness check passes
/// and the server is not draining; 503 `not_ready` otherwise).
struct HealthRoutes: RouteGroup {
    let readiness: ReadinessChecks

    private static let okBody: [UInt8] = Array(#"{"status":"ok"}"#.utf8)
    private static let readyBody: [UInt8] = Array(#"{"status":"ready"}"#.utf8)

    func registerRoutes(on router: Router) {
        router.get("/healthz") { _ in
            Response(status: .ok, headers: ["Content-Type": "application/json"], body: .bytes(Self.okBody))
        }
        router.get("/readyz") { [readiness] _ in
            let failures = await readiness.failures()
            guard failures.isEmpty else {
                throw HTTPError.serviceUnavailable(failures.joined(separator: "; "), code: "not_ready")
            }
            return Response(status: .ok, headers: ["Content-Type": "application/json"], body: .bytes(Self.readyBody))
        }
    }
}
