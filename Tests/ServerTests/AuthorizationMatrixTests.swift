import CleanRoom
import Foundation
import HTTPServer
import Testing

@testable import Server

/// Every route of the permission table × every role × own party / other party / no credential.
///
/// Expected outcome, derived from the table itself: no credential → 401; another party's object →
/// 404 whatever the role; own object or party-wide route → 403 without the role, and with it the
/// handler runs (any status but 401/403/404).
@Suite(.serialized) struct AuthorizationMatrixTests {
    enum Target: String, CaseIterable { case own, other }

    struct World {
        let fixture: GovernanceFixture
        let alpha: GovernanceFixture.Party
        let beta: GovernanceFixture.Party
        let spare: GovernanceFixture.Party
        /// Per target: the path parameter values of that party's objects.
        let parameters: [Target: [String: String]]
    }

    static func world() async throws -> World {
        let fixture = try GovernanceFixture()
        let alpha = try await fixture.register("Alpha")
        let beta = try await fixture.register("Beta")
        let spare = try await fixture.register("Spare")
        var parameters: [Target: [String: String]] = [:]
        for (target, party) in [(Target.own, alpha), (.other, beta)] {
            let dataset = try await fixture.uploadedDataset(party, name: "matrix", columns: GovernanceFixture.columns)
            let (collaboration, approval, _) = try await fixture.approvedCollaboration(party, name: "collab")
            let victim = try await fixture.principal(party, roles: ["partner"])
            let (job, output) = try await fixture.recordedJob(party, collaboration: collaboration)
            // Nothing listens on port 9: a ping fails at once.
            let webhook = try await fixture.call(.post, "/v1/webhooks", token: party.token, json: ["url": "http://127.0.0.1:9/hook"])
            parameters[target] = [
                "partyId": party.id, "principalId": victim.id, "datasetId": dataset, "collaborationId": collaboration,
                "approvalId": approval, "jobId": job, "outputId": output, "webhookId": try require2(webhook["id"] as? String),
            ]
        }
        return World(fixture: fixture, alpha: alpha, beta: beta, spare: spare, parameters: parameters)
    }

    static func path(_ route: PermissionTable.Route, _ parameters: [String: String], spare: String) -> String {
        var path = route.path
        for (name, value) in parameters {
            // Operator routes act on a party of their own (so suspending it harms no other case).
            let v = route.scope == .operator && name == "partyId" ? spare : value
            path = path.replacingOccurrences(of: "{\(name)}", with: v)
        }
        return path
    }

    enum Expectation: Equatable { case status(Int), handlerRuns }

    static func expected(_ route: PermissionTable.Route, roles: [Role]?, isOperator: Bool, target: Target) -> Expectation {
        guard let roles else { return .status(401) }
        let hasRole = roles.contains(where: route.roles.contains)
        switch route.scope {
        case .public: return .handlerRuns
        case .enrollment: return .status(401)  // a principal's credential is not an enrollment token
        case .self: return hasRole ? .handlerRuns : .status(403)
        case .operator: return isOperator ? .handlerRuns : .status(403)
        case .party: return isOperator ? .status(403) : (hasRole ? .handlerRuns : .status(403))
        case .ownParty, .ownDataset, .member, .ownApproval, .collaborationJobs, .jobMember, .ownOutput, .ownWebhook:
            if isOperator || target == .other { return .status(404) }
            return hasRole ? .handlerRuns : .status(403)
        }
    }

    @Test func everyRouteRoleAndTargetIsAuthorisedFromTheTable() async throws {
        let world = try await Self.world()
        let table = PermissionTable.standard
        var checked = 0
        let callers: [(String, [Role]?)] =
            [("none", nil), ("operator", [.admin])] + Role.partyRoles.map { ($0.rawValue, [$0]) }
        for route in table.routes {
            for target in Target.allCases {
                for (name, roles) in callers {
                    // A fresh principal per case, so rotations and revocations cannot leak into other cases.
                    let token: String?
                    switch name {
                    case "none": token = nil
                    case "operator":
                        // A fresh operator credential per case (rotateOwnCredential revokes the one it uses).
                        let secret = "cro_matrix-\(UUID().uuidString)"
                        try world.fixture.store.ensureOperatorCredential(secret: secret)
                        token = secret
                    default: token = try await world.fixture.principal(world.alpha, roles: [name]).token
                    }
                    var parameters = world.parameters[target]!
                    if route.path.contains("{principalId}") {
                        // A fresh principal to act on, so an earlier revocation does not change this case.
                        let owner = target == .own ? world.alpha : world.beta
                        parameters["principalId"] = try await world.fixture.principal(owner, roles: ["partner"]).id
                    }
                    var freshWebhook: String?
                    if route.path.contains("{webhookId}"), target == .own {
                        // A fresh webhook too (deleteWebhook removes it), dropped after the case: a party may have ten.
                        let created = try await world.fixture.call(
                            .post, "/v1/webhooks", token: world.alpha.token, json: ["url": "http://127.0.0.1:9/hook"])
                        freshWebhook = try require2(created["id"] as? String, "\(created.json)")
                        parameters["webhookId"] = freshWebhook
                    }
                    defer {
                        if let freshWebhook {
                            _ = try? world.fixture.store.deleteWebhook(
                                id: freshWebhook, caller: try world.fixture.store.authenticate(bearer: world.alpha.token)!)
                        }
                    }
                    let path = Self.path(route, parameters, spare: world.spare.id)
                    let reply = try await world.fixture.call(
                        HTTPMethod(rawValue: route.method), path, token: token, body: [])
                    let expectation = Self.expected(route, roles: roles, isOperator: name == "operator", target: target)
                    let context = "\(route.operation) \(route.method) \(path) as \(name) on \(target): \(reply.status) \(reply.json)"
                    switch expectation {
                    case .status(let status):
                        #expect(reply.status == status, "\(context)")
                        if status == 404 {
                            // Indistinguishable from a missing object.
                            #expect(reply.code == "not_found", "\(context)")
                        }
                    case .handlerRuns:
                        #expect(![401, 403, 404].contains(reply.status), "\(context)")
                        #expect(reply.status < 500, "\(context)")
                    }
                    checked += 1
                }
            }
        }
        #expect(checked == table.routes.count * 2 * 6)
    }

    @Test func otherPartiesObjectsLookExactlyLikeMissingOnes() async throws {
        let world = try await Self.world()
        let other = world.parameters[.other]!
        for (existingPath, missingPath) in [
            ("/v1/datasets/\(other["datasetId"]!)", "/v1/datasets/ds-missing"),
            ("/v1/collaborations/\(other["collaborationId"]!)", "/v1/collaborations/col-missing"),
            ("/v1/collaborations/\(other["collaborationId"]!)/audit", "/v1/collaborations/col-missing/audit"),
        ] {
            let existing = try await world.fixture.call(.get, existingPath, token: world.alpha.token)
            let missing = try await world.fixture.call(.get, missingPath, token: world.alpha.token)
            #expect(existing.status == 404)
            #expect(existing.json as NSDictionary == missing.json as NSDictionary)
        }
    }

    @Test func suspendedPartyCanNoLongerAct() async throws {
        let world = try await Self.world()
        let suspended = try await world.fixture.call(
            .post, "/v1/parties/\(world.beta.id)/suspend", token: world.fixture.operatorToken)
        #expect(suspended.status == 200)
        let reply = try await world.fixture.call(.get, "/v1/datasets", token: world.beta.token)
        #expect(reply.status == 403)
        #expect(reply.code == "party_suspended")
    }

    @Test func malformedAuthorizationHeadersAreUnauthenticated() async throws {
        let world = try await Self.world()
        for header in ["Basic abc", "Bearer", "Bearer ", "bearer crs_nope", "Token \(world.alpha.token)"] {
            var headers: HTTPHeaders = ["Host": "localhost"]
            headers.add("Authorization", header)
            let response = await world.fixture.router.respond(to: Request(method: .get, target: "/v1/datasets", headers: headers))
            #expect(response.status.code == 401, "\(header)")
            #expect(response.headers["WWW-Authenticate"] == "Bearer")
        }
    }
}
