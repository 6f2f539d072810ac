import AWS
import CleanRoom
import Crypto
import Dispatch
import Foundation
import GRDB
import HTTPServer
import Logging

/// The /v1 API: enrollment, registration, principals, datasets and their streamed upload,
/// collaborations and policies, approvals, audit (issue #6), jobs (`JobRoutes`, issue #8), and
/// webhooks (`WebhookRoutes`).
/// Every route is registered from the one permission table, so no route can exist without an
/// authorisation rule.
struct GovernanceRoutes: RouteGroup {
    let store: CleanRoomStore
    let objects: any ObjectStore
    /// Runs jobs; nil in servers (tests) that run none.
    let jobs: JobManager?
    /// Sends webhook events and pings; nil in servers (tests) that send none.
    let webhooks: WebhookDispatcher?
    let table: PermissionTable
    /// Largest dataset upload accepted.
    let maxUploadBytes: Int
    /// Where failures the operator must act on go (a full object store).
    let logger: Logger

    init(
        store: CleanRoomStore, objects: any ObjectStore, jobs: JobManager? = nil, webhooks: WebhookDispatcher? = nil,
        table: PermissionTable = .standard,
        maxUploadBytes: Int = 64 << 30, logger: Logger = Logger(label: "cleanroomd.api")
    ) {
        self.store = store
        self.objects = objects
        self.jobs = jobs
        self.webhooks = webhooks
        self.table = table
        self.maxUploadBytes = maxUploadBytes
        self.logger = logger
    }

    typealias Operation = @Sendable (Request, Caller?) async throws -> Response

    func registerRoutes(on router: Router) {
        let handlers = self.handlers().merging(JobRoutes(manager: jobs).handlers()) { own, _ in own }
            .merging(WebhookRoutes(store: store, dispatcher: webhooks).handlers()) { own, _ in own }
        for route in table.routes {
            guard let handler = handlers[route.operation] else {
                preconditionFailure("no handler for \(route.operation) in the permission table")
            }
            let pattern = route.path.replacingOccurrences(of: "{", with: ":").replacingOccurrences(of: "}", with: "")
            let method = HTTPMethod(rawValue: route.method)
            let bodyLimit = route.operation == "uploadDataset" ? maxUploadBytes : 1 << 20
            let authorizer = APIAuthorizer(store: store, route: route)
            router.add(method, pattern, bodyLimit: bodyLimit) { request in
                do {
                    let caller = try await authorizer.authorize(request)
                    return try await handler(request, caller)
                } catch let error as DomainError {
                    return APIError.response(error)
                } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
                    // The database's disk (or its size limit) is full: SQLite rolled the change back.
                    logger.error(
                        "the database is full: a request was refused (507); free space on its disk",
                        metadata: ["operation": "\(route.operation)", "error": "\(error)"])
                    return APIError.response(
                        DomainError(
                            .insufficientStorage, "insufficient_storage",
                            "the server's storage is full, so nothing was changed; "
                                + "try again once the server's operator has freed space"))
                }
            }
        }
    }

    /// Runs blocking store work off the concurrency pool's threads.
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try body() })
            }
        }
    }

    static func json<T: Encodable>(_ value: T, status: HTTPStatus = .ok) throws -> Response {
        try Response.json(value, status: status)
    }

    /// Parses a small JSON body into a Decodable model with the HTTP layer's 400 `invalid_json` errors.
    static func decode<T: Decodable>(_ type: T.Type, _ request: Request, allowEmpty: Bool = false) async throws -> T? {
        let bytes = try await request.body.collect(upTo: 1 << 20)
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            if allowEmpty { return nil }
            throw DomainError(.invalidInput, "invalid_json", "a JSON body is required")
        }
        do {
            _ = try JSONParser.parse(bytes, limits: .request)  // strict I-JSON first: duplicates, depth, surrogates, NUL
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch let error as JSONParser.Error {
            throw DomainError(.invalidInput, "invalid_json", error.description)
        } catch let error as DecodingError {
            throw DomainError(.invalidInput, "invalid_json", "the body is not the expected JSON: \(Self.describe(error))")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let p = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return p.isEmpty ? "at the top level" : "at \(p)"
        }
        switch error {
        case .typeMismatch(let type, let c): return "expected \(type) \(path(c))"
        case .valueNotFound(let type, let c): return "missing \(type) value \(path(c))"
        case .keyNotFound(let key, let c): return "missing field \(key.stringValue) \(path(c))"
        case .dataCorrupted(let c): return "malformed value \(path(c))"
        @unknown default: return "malformed body"
        }
    }

    private func handlers() -> [String: Operation] {
        let store = self.store
        let objects = self.objects
        let logger = self.logger
        @Sendable func caller(_ c: Caller?) throws -> Caller {
            guard let c else { throw DomainError(.unauthenticated, "unauthorized", "missing or invalid credentials") }
            return c
        }
        return [
            // Operator.
            "createEnrollmentToken": { request, c in
                let caller = try caller(c)
                let body = try await Self.decode(EnrollmentTokenRequest.self, request, allowEmpty: true)
                let (token, record) = try await Self.blocking {
                    try store.createEnrollmentToken(caller: caller, lifetime: body?.expiresInSeconds ?? 86400)
                }
                return try Self.json(
                    EnrollmentTokenBody(id: record.id, token: token, expiresAt: RFC3339.format(record.expiresAt)),
                    status: .created)
            },
            "listParties": { _, _ in
                try Self.json(ItemList(items: try await Self.blocking { try store.parties() }.map(PartyBody.init)))
            },
            "suspendParty": { request, c in
                let caller = try caller(c)
                let id = try request.pathParameters.require("partyId")
                return try Self.json(PartyBody(try await Self.blocking { try store.suspendParty(id: id, caller: caller) }))
            },
            "getAuditLog": { _, _ in
                let (entries, checkpoints) = try await Self.blocking {
                    try store.checkpoint()
                    return (try store.auditEntries(), try store.auditCheckpoints())
                }
                return try Self.json(FullAuditLog(entries: entries, checkpoints: checkpoints, publicKey: store.auditPublicKey))
            },
            // Registration and principals.
            "register": { request, _ in
                guard let token = APIAuthorizer.bearer(request) else {
                    throw DomainError(.unauthenticated, "unauthorized", "an enrollment token is required as the bearer credential")
                }
                try await Self.blocking { try store.checkEnrollmentToken(token) }
                guard let body = try await Self.decode(RegisterRequest.self, request) else { throw DomainError.badBody }
                let registration = try await Self.blocking {
                    try store.register(
                        enrollmentToken: token, name: body.name, partyId: body.partyId, signingKeyPEM: body.signingKey,
                        resultKeyPEM: body.resultKey, principalName: body.principalName ?? "admin")
                }
                return try Self.json(
                    RegisterResponse(
                        party: PartyBody(registration.party), principal: PrincipalBody(registration.principal),
                        credential: CredentialBody(token: registration.credential),
                        accessKey: AccessKeyBody(
                            accessKeyId: registration.accessKeyId, secretAccessKey: registration.accessKeySecret)),
                    status: .created)
            },
            "getOwnParty": { _, c in
                let caller = try caller(c)
                guard let party = caller.party else { throw DomainError(.notFound, "not_found", "no such party") }
                return try Self.json(PartyBody(party))
            },
            "rotateOwnCredential": { _, c in
                let caller = try caller(c)
                let token = try await Self.blocking { try store.rotateCredential(principalId: caller.principal.id, caller: caller) }
                return try Self.json(CredentialBody(token: token), status: .created)
            },
            "listPrincipals": { request, _ in
                let partyId = try request.pathParameters.require("partyId")
                return try Self.json(ItemList(items: try await Self.blocking { try store.principals(partyId: partyId) }.map(PrincipalBody.init)))
            },
            "createPrincipal": { request, c in
                let caller = try caller(c)
                let partyId = try request.pathParameters.require("partyId")
                guard let body = try await Self.decode(CreatePrincipalRequest.self, request) else { throw DomainError.badBody }
                let roles = try body.roles.map { name in
                    guard let role = Role(rawValue: name) else {
                        throw DomainError(.invalidInput, "invalid_roles", "unknown role \(name)")
                    }
                    return role
                }
                let (principal, token) = try await Self.blocking {
                    try store.createPrincipal(partyId: partyId, name: body.name, roles: roles, caller: caller)
                }
                return try Self.json(
                    PrincipalWithCredential(principal: PrincipalBody(principal), credential: CredentialBody(token: token)),
                    status: .created)
            },
            "revokePrincipal": { request, c in
                let caller = try caller(c)
                let partyId = try request.pathParameters.require("partyId")
                let principalId = try request.pathParameters.require("principalId")
                return try Self.json(PrincipalBody(try await Self.blocking {
                    try store.revokePrincipal(partyId: partyId, principalId: principalId, caller: caller)
                }))
            },
            "setPrincipalRoles": { request, c in
                let caller = try caller(c)
                let partyId = try request.pathParameters.require("partyId")
                let principalId = try request.pathParameters.require("principalId")
                guard let body = try await Self.decode(SetRolesRequest.self, request) else { throw DomainError.badBody }
                let roles = try body.roles.map { name in
                    guard let role = Role(rawValue: name) else {
                        throw DomainError(.invalidInput, "invalid_roles", "unknown role \(name)")
                    }
                    return role
                }
                return try Self.json(PrincipalBody(try await Self.blocking {
                    try store.setRoles(partyId: partyId, principalId: principalId, roles: roles, caller: caller)
                }))
            },
            "rotatePrincipalCredential": { request, c in
                let caller = try caller(c)
                let principalId = try request.pathParameters.require("principalId")
                let token = try await Self.blocking { try store.rotateCredential(principalId: principalId, caller: caller) }
                return try Self.json(CredentialBody(token: token), status: .created)
            },
            // Datasets.
            "createDataset": { request, c in
                let caller = try caller(c)
                guard let body = try await Self.decode(CreateDatasetRequest.self, request) else { throw DomainError.badBody }
                let columns = try body.columns.enumerated().map { index, column in
                    guard let type = DatasetColumn.ColumnType(rawValue: column.type) else {
                        throw DomainError(
                            .invalidInput, "invalid_columns",
                            "columns[\(index)].type must be one of string, integer, float, boolean")
                    }
                    return DatasetColumn(name: column.name, type: type, nullable: column.nullable)
                }
                let dataset = try await Self.blocking { try store.createDataset(name: body.name, columns: columns, caller: caller) }
                return try Self.json(DatasetBody(dataset), status: .created)
            },
            "listDatasets": { _, c in
                let caller = try caller(c)
                return try Self.json(ItemList(items: try await Self.blocking { try store.datasets(caller: caller) }.map(DatasetBody.init)))
            },
            "getDataset": { request, c in
                let caller = try caller(c)
                let id = try request.pathParameters.require("datasetId")
                return try Self.json(DatasetBody(try await Self.blocking { try store.dataset(id: id, caller: caller) }))
            },
            "uploadDataset": { request, c in
                try await DatasetUpload(store: store, objects: objects, logger: logger).handle(request, caller: try caller(c))
            },
            "withdrawDataset": { request, c in
                let caller = try caller(c)
                let id = try request.pathParameters.require("datasetId")
                return try Self.json(DatasetBody(try await Self.blocking { try store.withdrawDataset(id: id, caller: caller) }))
            },
            // Collaborations.
            "proposeCollaboration": { request, c in
                let caller = try caller(c)
                let policy = try await Self.policyBody(request)
                let view = try await Self.blocking { try store.propose(policy: policy, caller: caller) }
                return try Self.json(try CollaborationBody(view), status: .created)
            },
            "listCollaborations": { _, c in
                let caller = try caller(c)
                return try Self.json(ItemList(items: try await Self.blocking { try store.collaborations(caller: caller) }.map(CollaborationBody.init)))
            },
            "getCollaboration": { request, c in
                let caller = try caller(c)
                let id = try request.pathParameters.require("collaborationId")
                return try Self.json(try CollaborationBody(try await Self.blocking { try store.collaboration(id: id, caller: caller) }))
            },
            "revisePolicy": { request, c in
                let caller = try caller(c)
                let id = try request.pathParameters.require("collaborationId")
                let policy = try await Self.policyBody(request)
                let view = try await Self.blocking { try store.revisePolicy(collaborationId: id, policy: policy, caller: caller) }
                return try Self.json(try CollaborationBody(view), status: .created)
            },
            // Approvals.
            "submitApproval": { request, c in
                let caller = try caller(c)
                let id = try request.pathParameters.require("collaborationId")
                guard let body = try await Self.decode(ApprovalRequest.self, request) else { throw DomainError.badBody }
                guard let expiresAt = RFC3339.parse(body.expiresAt) else {
                    throw DomainError(.invalidInput, "invalid_expiry", "expiresAt must be an RFC 3339 date-time")
                }
                guard let signature = Data(base64Encoded: body.signature), !signature.isEmpty, signature.count <= 256 else {
                    throw DomainError(.invalidInput, "invalid_signature_encoding", "signature must be base64 of a DER ECDSA signature")
                }
                let approval = try await Self.blocking {
                    try store.submitApproval(
                        collaborationId: id, policyDigest: body.policyDigest, expiresAt: expiresAt,
                        signature: Array(signature), caller: caller)
                }
                return try Self.json(ApprovalBody(approval), status: .created)
            },
            "listApprovals": { request, c in
                let caller = try caller(c)
                let id = try request.pathParameters.require("collaborationId")
                return try Self.json(ItemList(items: try await Self.blocking {
                    try store.approvals(collaborationId: id, caller: caller)
                }.map(ApprovalBody.init)))
            },
            "revokeApproval": { request, c in
                let caller = try caller(c)
                let id = try request.pathParameters.require("collaborationId")
                let approvalId = try request.pathParameters.require("approvalId")
                return try Self.json(ApprovalBody(try await Self.blocking {
                    try store.revokeApproval(collaborationId: id, approvalId: approvalId, caller: caller)
                }))
            },
            "getCollaborationAudit": { request, c in
                let caller = try caller(c)
                let id = try request.pathParameters.require("collaborationId")
                return try Self.json(try await Self.blocking { try store.auditProof(collaborationId: id, caller: caller) })
            },
        ]
    }

    /// `{"policy": {...}}`, parsed strictly (I-JSON) so the digest is over exactly what was sent.
    static func policyBody(_ request: Request) async throws -> JSONValue {
        let bytes = try await request.body.collect(upTo: PolicyDocument.maxBytes + 1024)
        let json: JSONValue
        do {
            json = try JSONParser.parse(bytes, limits: .init(maxBytes: PolicyDocument.maxBytes + 1024, maxDepth: 32, allowsNUL: false))
        } catch let error as JSONParser.Error {
            throw DomainError(.invalidInput, "invalid_json", error.description)
        }
        guard case .object(let members) = json, let policy = json["policy"], members.count == 1 else {
            throw DomainError(.invalidInput, "invalid_json", "the body must be {\"policy\": {...}}")
        }
        return policy
    }
}

extension DomainError {
    static let badBody = DomainError(.invalidInput, "invalid_json", "a JSON body is required")
}
