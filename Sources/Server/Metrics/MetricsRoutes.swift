import Crypto
import HTTPServer

/// `GET /metrics`: the server's Prometheus metrics (`ServerMetrics`), for the bearer token in
/// `DATA/metrics-token` (which a Prometheus scrape job reads with `credentials_file`, and which
/// can do nothing else) or a valid operator credential (checked in the credential store, so a
/// rotated or revoked one no longer reads them). Without either: 401, like every API route.
struct MetricsRoutes: RouteGroup {
    let metrics: ServerMetrics
    /// The metrics token.
    let token: String
    /// Whether a bearer credential is the operator's, now; nil when the server has no credential store.
    let isOperator: (@Sendable (String) async -> Bool)?

    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// The route of a server that has metrics (none otherwise).
    static func groups(_ context: AppContext) -> [any RouteGroup] {
        guard let (metrics, token) = context.metrics else { return [] }
        var isOperator: (@Sendable (String) async -> Bool)?
        if let store = context.governance?.store {
            isOperator = { presented in
                let caller = try? await GovernanceRoutes.blocking { try store.authenticate(bearer: presented) }
                return caller?.isOperator == true
            }
        }
        return [MetricsRoutes(metrics: metrics, token: token, isOperator: isOperator)]
    }

    func registerRoutes(on router: Router) {
        router.get("/metrics") { [metrics, token, isOperator] request in
            guard let presented = APIAuthorizer.bearer(request) else { throw Self.unauthorized }
            if !ConstantTime.equals(Array(token.utf8), Array(presented.utf8)) {
                guard let isOperator, await isOperator(presented) else { throw Self.unauthorized }
            }
            let text = await metrics.render()
            return Response(status: .ok, headers: ["Content-Type": Self.contentType], body: .bytes(Array(text.utf8)))
        }
    }

    static let unauthorized = HTTPError(
        .unauthorized, code: "unauthorized",
        message: "missing or invalid credentials: send the token in the data directory's metrics-token file "
            + "as 'Authorization: Bearer …'",
        headers: ["WWW-Authenticate": "Bearer"])
}
