/// The one authorisation table (`policies/roles-and-permissions.json`): for every route, the roles
/// that may call it and the scope that decides which objects the caller may see.
///
/// The REST layer evaluates every request against it in a fixed order — authenticate (401),
/// resolve scope (404 for objects of other parties, so existence never leaks), check role (403).
public struct PermissionTable: Sendable {
    /// Which objects a route lets the caller reach.
    public enum Scope: String, Sendable, Codable, CaseIterable {
        case `public`, enrollment, `operator`, `self`, party
        case ownParty = "own-party", ownDataset = "own-dataset", member, ownApproval = "own-approval"
        case collaborationJobs = "collaboration-jobs", jobMember = "job-member", ownOutput = "own-output"
        case ownWebhook = "own-webhook"
    }

    /// One row of the table.
    public struct Route: Sendable, Codable, Equatable {
        public let operation: String
        public let method: String
        public let path: String
        public let roles: [Role]
        public let scope: Scope
    }

    public let routes: [Route]
    public let roleDescriptions: [String: String]

    private struct File: Decodable {
        let roles: [String: String]
        let scopes: [String: String]
        let routes: [Route]
    }

    /// The table compiled into this binary (the text of `policies/roles-and-permissions.json`).
    public static let standard: PermissionTable = {
        do {
            return try PermissionTable(json: Array(EmbeddedPolicyFiles.rolesAndPermissions.utf8))
        } catch {
            fatalError("the embedded roles-and-permissions table is invalid: \(error)")
        }
    }()

    /// Parses a table in the format of `policies/roles-and-permissions.json`.
    public init(json: [UInt8]) throws {
        let file = try JSONCoding.decoder.decode(File.self, from: json)
        routes = file.routes
        roleDescriptions = file.roles
        var seen = Set<String>()
        for route in routes where !seen.insert(route.operation).inserted {
            throw DomainError(.internalError, "bad_permission_table", "operation \(route.operation) appears twice")
        }
    }

    /// The row for an operation id (as used by the REST layer and `docs/openapi.yaml`).
    public func route(_ operation: String) -> Route? {
        routes.first { $0.operation == operation }
    }

    /// Whether a principal holding `roles` passes the role check of `operation` (scope is checked separately).
    public func allows(_ roles: some Sequence<Role>, operation: String) -> Bool {
        guard let route = route(operation) else { return false }
        return roles.contains { route.roles.contains($0) }
    }
}
