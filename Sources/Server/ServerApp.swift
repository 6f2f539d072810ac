import HTTPServer
import Logging

/// Assembles the server: context, router (every feature's route group), HTTP server.
///
/// To add a feature's routes, write a `RouteGroup` in the feature's own file and add ONE line
/// to `routeGroups(_:)` below.
public enum ServerApp {
    /// Every feature's routes. One line per feature.
    static func routeGroups(_ context: AppContext) -> [any RouteGroup] {
        [
            HealthRoutes(readiness: context.readiness),
            EchoRoutes(),
        ]
    }

    /// The router with every route registered.
    public static func makeRouter(context: AppContext) -> Router {
        let router = Router(logger: context.logger)
        for group in routeGroups(context) { router.register(group) }
        return router
    }
}
