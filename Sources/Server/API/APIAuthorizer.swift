import CleanRoom
import HTTPServer

/// Applies one row of the permission table to a request, in the table's order: authenticate
/// (401), resolve the scope (404 for other parties' objects, so existence never leaks), check
/// the role (403).
struct APIAuthorizer: Sendable {
    let store: CleanRoomStore
    let route: PermissionTable.Route

    /// The bearer credential of `Authorization: Bearer …`, if present and well-formed.
    static func bearer(_ request: Request) -> String? {
        guard let value = request.headers["Authorization"] else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        guard !token.isEmpty, token.utf8.count <= 512 else { return nil }
        return token
    }

    static let unauthenticated = DomainError(.unauthenticated, "unauthorized", "missing or invalid credentials")

    /// The authenticated caller, or nil for public and enrollment-token routes (whose handler checks the token).
    func authorize(_ request: Request) async throws -> Caller? {
        switch route.scope {
        case .public: return nil
        case .enrollment:
            guard Self.bearer(request) != nil else { throw Self.unauthenticated }
            return nil
        default: break
        }
        guard let token = Self.bearer(request) else { throw Self.unauthenticated }
        let store = self.store
        guard let caller = try await GovernanceRoutes.blocking({ try store.authenticate(bearer: token) }) else {
            throw Self.unauthenticated
        }
        if let party = caller.party, party.status != .active {
            throw DomainError(.forbidden, "party_suspended", "the party \(party.id) is suspended")
        }
        try await checkScope(request, caller)
        guard caller.roles.contains(where: route.roles.contains) else {
            throw DomainError(
                .forbidden, "forbidden",
                "\(route.operation) requires one of the roles \(route.roles.map(\.rawValue).joined(separator: ", ")); "
                    + "your credential has \(caller.roles.map(\.rawValue).sorted().joined(separator: ", ")): ask your party's admin for the role")
        }
        return caller
    }

    private func checkScope(_ request: Request, _ caller: Caller) async throws {
        let store = self.store
        switch route.scope {
        case .public, .enrollment, .self: return
        case .operator:
            guard caller.isOperator else {
                throw DomainError(.forbidden, "forbidden", "\(route.operation) is for the operator")
            }
        case .party:
            guard caller.partyId != nil else {
                throw DomainError(.forbidden, "forbidden", "\(route.operation) is for a party's principals")
            }
        case .ownParty:
            guard let partyId = request.pathParameters["partyId"], partyId == caller.partyId else { throw DomainError.notFound("party") }
        case .ownDataset:
            guard let id = request.pathParameters["datasetId"], caller.partyId != nil,
                (try? await GovernanceRoutes.blocking({ try store.dataset(id: id, caller: caller) })) != nil
            else { throw DomainError.notFound("dataset") }
        case .member, .ownApproval:
            guard let id = request.pathParameters["collaborationId"], let partyId = caller.partyId,
                try await GovernanceRoutes.blocking({ try store.isMember(partyId: partyId, collaborationId: id) })
            else { throw DomainError.notFound("collaboration") }
            if route.scope == .ownApproval {
                guard let approvalId = request.pathParameters["approvalId"],
                    try await GovernanceRoutes.blocking({
                        try store.approvals(collaborationId: id, caller: caller).contains {
                            $0.id == approvalId && $0.partyId == partyId
                        }
                    })
                else { throw DomainError.notFound("approval") }
            }
        case .collaborationJobs:
            // A party a revision dropped still lists the jobs it was in (JobStore.listsJobs).
            let jobs = JobStore(store: store)
            guard let id = request.pathParameters["collaborationId"], let partyId = caller.partyId,
                try await GovernanceRoutes.blocking({ try jobs.listsJobs(collaborationId: id, partyId: partyId) })
            else { throw DomainError.notFound("collaboration") }
        case .ownWebhook:
            guard let id = request.pathParameters["webhookId"], caller.partyId != nil else { throw DomainError.notFound("webhook") }
            _ = try await GovernanceRoutes.blocking { try store.webhook(id: id, caller: caller) }
        case .jobMember, .ownOutput:
            // JobStore answers not_found for jobs of other collaborations and outputs of other parties.
            let jobs = JobStore(store: store)
            guard let jobId = request.pathParameters["jobId"], caller.partyId != nil else { throw DomainError.notFound("job") }
            if route.scope == .ownOutput {
                guard let outputId = request.pathParameters["outputId"] else { throw DomainError.notFound("output") }
                _ = try await GovernanceRoutes.blocking { try jobs.output(jobID: jobId, outputID: outputId, caller: caller) }
            } else {
                _ = try await GovernanceRoutes.blocking { try jobs.job(id: jobId, caller: caller) }
            }
        }
    }
}
