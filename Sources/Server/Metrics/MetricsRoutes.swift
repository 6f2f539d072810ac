import Crypto
import HTTPServer

/// `GET /metrics`: the server's Prometheus metrics (`ServerMetrics`), for the bearer token in
/// `DATA/metrics-token` (which a Prometheus scrape job reads with `credentials_file`, and which
/// can do nothing else) or the operator's token. Without either: 401, like every API route.
struct MetricsRoutes: RouteGroup {
    let metrics: ServerMetrics
    /// The tokens that may read the metrics.
    let tokens: [String]

    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    func registerRoutes(on router: Router) {
        router.get("/metrics") { [metrics, tokens] request in
            guard let presented = APIAuthorizer.bearer(request).map({ Array($0.utf8) }),
                tokens.contains(where: { ConstantTime.equals(Array($0.utf8), presented) })
            else {
                throw HTTPError(
                    .unauthorized, code: "unauthorized",
                    message: "missing or invalid credentials: send the token in the data directory's metrics-token file "
                        + "as 'Authorization: Bearer …'",
                    headers: ["WWW-Authenticate": "Bearer"])
            }
            let text = await metrics.render()
            return Response(status: .ok, headers: ["Content-Type": Self.contentType], body: .bytes(Array(text.utf8)))
        }
    }
}
