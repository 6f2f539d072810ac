import Crypto
import Foundation
import GRDB

/// What a party receives once, at registration: the only time its secrets are shown.
public struct Registration: Sendable {
    public let party: Party
    public let principal: Principal
    /// The first principal's bearer credential (256-bit secret); stored only as a hash.
    public let credential: String
    /// SigV4 access key id and secret for the KMS endpoint.
    public let accessKeyId: String
    public let accessKeySecret: String
}

extension CleanRoomStore {
    static let credentialPrefix = "crs_"
    static let enrollmentPrefix = "cre_"

    /// Makes `secret` (from the data directory's `operator-credentials.json`) the operator's
    /// credential, creating the operator principal on first start. Idempotent.
    @discardableResult
    public func ensureOperatorCredential(secret: String) throws -> Principal {
        try write { db in
            let hash = CryptoSupport.sha256Hex(secret)
            let existingOperator = try Principal.filter(Column("partyId") == nil).fetchAll(db).first { $0.isOperator }
            let principal: Principal
            if let existingOperator {
                principal = existingOperator
            } else {
                principal = Principal(
                    id: try CryptoSupport.identifier("pr-"), partyId: nil, name: "operator", roles: [.admin],
                    status: .active, createdAt: now)
                try principal.insert(db)
                try appendAudit(db, actor: nil, action: "operator.created", subject: principal.id)
            }
            if try Credential.filter(Column("secretHash") == hash).fetchOne(db) == nil {
                try Credential(
                    id: try CryptoSupport.identifier("cr-"), principalId: principal.id, secretHash: hash,
                    createdAt: now, revokedAt: nil
                ).insert(db)
            }
            return principal
        }
    }

    /// The caller a bearer credential belongs to, or nil when it is unknown, revoked, or its
    /// principal or party is not active.
    public func authenticate(bearer secret: String) throws -> Caller? {
        guard !secret.isEmpty, secret.utf8.count <= 256 else { return nil }
        let hash = CryptoSupport.sha256Hex(secret)
        return try read { db in
            guard let credential = try Credential.filter(Column("secretHash") == hash).fetchOne(db),
                credential.revokedAt == nil,
                let principal = try Principal.fetchOne(db, key: credential.principalId), principal.status == .active
            else { return nil }
            let party = try principal.partyId.flatMap { try Party.fetchOne(db, key: $0) }
            return Caller(principal: principal, party: party)
        }
    }

    /// Issues a single-use enrollment token valid for `lifetime` seconds (operator only).
    public func createEnrollmentToken(caller: Caller, lifetime: Int64 = 86400) throws -> (token: String, record: EnrollmentToken) {
        guard caller.isOperator else { throw DomainError(.forbidden, "forbidden", "only the operator issues enrollment tokens") }
        guard (60...30 * 86400).contains(lifetime) else {
            throw DomainError.invalid("invalid_lifetime", "expiresInSeconds must be between 60 and 2592000")
        }
        let token = try CryptoSupport.secret(prefix: Self.enrollmentPrefix)
        let record = EnrollmentToken(
            id: try CryptoSupport.identifier("en-"), tokenHash: CryptoSupport.sha256Hex(token), createdAt: now,
            expiresAt: now + lifetime, usedAt: nil, partyId: nil)
        try write { db in
            try record.insert(db)
            try appendAudit(db, actor: caller, action: "enrollment.issued", subject: record.id,
                            details: .object([("expiresAt", .string(RFC3339.format(record.expiresAt)))]))
        }
        return (token, record)
    }

    /// Whether `token` is a usable enrollment token (unknown, used and expired ones are not).
    public func isValidEnrollmentToken(_ token: String) throws -> Bool {
        (try? checkEnrollmentToken(token)) != nil
    }

    /// Throws the precise refusal for an unusable enrollment token: `invalid_enrollment_token`,
    /// `enrollment_token_used` or `enrollment_token_expired` (all 401).
    public func checkEnrollmentToken(_ token: String) throws {
        try read { db in _ = try usableEnrollmentToken(db, token) }
    }

    func usableEnrollmentToken(_ db: Database, _ token: String) throws -> EnrollmentToken {
        let hash = CryptoSupport.sha256Hex(token)
        guard let record = try EnrollmentToken.filter(Column("tokenHash") == hash).fetchOne(db) else {
            throw DomainError(.unauthenticated, "invalid_enrollment_token", "the enrollment token is not valid")
        }
        guard record.usedAt == nil else {
            throw DomainError(.unauthenticated, "enrollment_token_used", "the enrollment token has already been used")
        }
        guard record.expiresAt > now else {
            throw DomainError(.unauthenticated, "enrollment_token_expired", "the enrollment token has expired")
        }
        return record
    }

    /// A party id from its name: lowercase letters, digits and dashes.
    static func slug(_ name: String) -> String {
        var out = ""
        for ch in name.lowercased().unicodeScalars {
            if ("a"..."z").contains(ch) || ("0"..."9").contains(ch) {
                out.unicodeScalars.append(ch)
            } else if !out.isEmpty, !out.hasSuffix("-") {
                out += "-"
            }
        }
        while out.hasSuffix("-") { out.removeLast() }
        return String(out.prefix(48))
    }

    /// Registers a party with an enrollment token, consuming it, and creates its first principal
    /// (all party roles), its bearer credential and its SigV4 access key.
    public func register(
        enrollmentToken: String, name: String, partyId requestedId: String? = nil, signingKeyPEM: String,
        resultKeyPEM: String, principalName: String = "admin"
    ) throws -> Registration {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard (1...128).contains(trimmed.count) else {
            throw DomainError.invalid("invalid_name", "name must be 1 to 128 characters")
        }
        let partyId = requestedId ?? Self.slug(trimmed)
        guard partyId.range(of: "^[a-z0-9][a-z0-9-]{0,62}$", options: .regularExpression) != nil else {
            throw DomainError.invalid("invalid_party_id", "the party id must be lowercase letters, digits and dashes")
        }
        guard (1...128).contains(principalName.count) else {
            throw DomainError.invalid("invalid_principal_name", "principalName must be 1 to 128 characters")
        }
        let signingKey = try SigningPublicKey(pem: signingKeyPEM)
        let resultKey = try ResultPublicKey(pem: resultKeyPEM)
        let credential = try CryptoSupport.secret(prefix: Self.credentialPrefix)
        let accessKeyId = "AKCR" + Hex.encode(try CryptoSupport.random(8)).uppercased()
        let accessKeySecret = CryptoSupport.base64URL(try CryptoSupport.random(30))
        return try write { db in
            var token = try usableEnrollmentToken(db, enrollmentToken)
            if try Party.fetchOne(db, key: partyId) != nil || Party.filter(Column("name") == trimmed).fetchCount(db) > 0 {
                throw DomainError(.conflict, "party_exists", "a party with this id or name is already registered")
            }
            let party = Party(
                id: partyId, name: trimmed, status: .active, signingKey: signingKey.pem,
                signingKeyFingerprint: signingKey.fingerprint, resultKey: resultKey.pem, createdAt: now)
            try party.insert(db)
            let principal = Principal(
                id: try CryptoSupport.identifier("pr-"), partyId: party.id, name: principalName,
                roles: Role.partyRoles, status: .active, createdAt: now)
            try principal.insert(db)
            try Credential(
                id: try CryptoSupport.identifier("cr-"), principalId: principal.id,
                secretHash: CryptoSupport.sha256Hex(credential), createdAt: now, revokedAt: nil
            ).insert(db)
            try AccessKey(
                id: accessKeyId, partyId: party.id, principalId: principal.id, secret: accessKeySecret, createdAt: now,
                revokedAt: nil
            ).insert(db)
            token.usedAt = now
            token.partyId = party.id
            try token.update(db)
            let caller = Caller(principal: principal, party: party)
            try appendAudit(
                db, actor: caller, action: "party.registered", subject: party.id,
                details: .object([
                    ("name", .string(party.name)), ("signingKeyFingerprint", .string(party.signingKeyFingerprint)),
                    ("enrollmentToken", .string(token.id)), ("principal", .string(principal.id)),
                ]))
            return Registration(
                party: party, principal: principal, credential: credential, accessKeyId: accessKeyId,
                accessKeySecret: accessKeySecret)
        }
    }

    /// All parties (operator).
    public func parties() throws -> [Party] {
        try read { db in try Party.order(Column("createdAt"), Column("id")).fetchAll(db) }
    }

    /// One party by id.
    public func party(id: String) throws -> Party? {
        try read { db in try Party.fetchOne(db, key: id) }
    }

    /// Suspends a party: its principals can no longer act (operator only).
    public func suspendParty(id: String, caller: Caller) throws -> Party {
        try write { db in
            guard var party = try Party.fetchOne(db, key: id) else { throw DomainError.notFound("party") }
            party.status = .suspended
            try party.update(db)
            try appendAudit(db, actor: caller, action: "party.suspended", subject: id)
            return party
        }
    }

    /// The principals of the caller's own party.
    public func principals(partyId: String) throws -> [Principal] {
        try read { db in try Principal.filter(Column("partyId") == partyId).order(Column("createdAt"), Column("id")).fetchAll(db) }
    }

    private func ownPrincipal(_ db: Database, partyId: String, principalId: String) throws -> Principal {
        guard let principal = try Principal.fetchOne(db, key: principalId), principal.partyId == partyId else {
            throw DomainError.notFound("principal")
        }
        return principal
    }

    /// Adds a principal with `roles` to the caller's party; returns it with its one-time credential.
    public func createPrincipal(partyId: String, name: String, roles: [Role], caller: Caller) throws -> (Principal, String) {
        guard caller.partyId == partyId else { throw DomainError.notFound("party") }
        guard (1...128).contains(name.count) else { throw DomainError.invalid("invalid_name", "name must be 1 to 128 characters") }
        guard !roles.isEmpty, roles.allSatisfy({ Role.partyRoles.contains($0) }) else {
            throw DomainError.invalid("invalid_roles", "roles must be a non-empty subset of party-admin, owner, reviewer, partner")
        }
        let secret = try CryptoSupport.secret(prefix: Self.credentialPrefix)
        let principal = Principal(
            id: try CryptoSupport.identifier("pr-"), partyId: partyId, name: name,
            roles: Array(Set(roles)).sorted { $0.rawValue < $1.rawValue }, status: .active, createdAt: now)
        try write { db in
            try principal.insert(db)
            try Credential(
                id: try CryptoSupport.identifier("cr-"), principalId: principal.id,
                secretHash: CryptoSupport.sha256Hex(secret), createdAt: now, revokedAt: nil
            ).insert(db)
            try appendAudit(
                db, actor: caller, action: "principal.created", subject: principal.id,
                details: .object([("roles", .array(principal.roles.map { .string($0.rawValue) }))]))
        }
        return (principal, secret)
    }

    /// Revokes a principal of the caller's party and all its credentials.
    public func revokePrincipal(partyId: String, principalId: String, caller: Caller) throws -> Principal {
        guard caller.partyId == partyId else { throw DomainError.notFound("party") }
        return try write { db in
            var principal = try ownPrincipal(db, partyId: partyId, principalId: principalId)
            principal.status = .revoked
            try principal.update(db)
            try db.execute(
                sql: "UPDATE credential SET revokedAt = ? WHERE principalId = ? AND revokedAt IS NULL",
                arguments: [now, principalId])
            try appendAudit(db, actor: caller, action: "principal.revoked", subject: principalId)
            return principal
        }
    }

    /// Replaces the roles of a principal of the caller's party. A party keeps at least one active
    /// party-admin (`last_party_admin`).
    public func setRoles(partyId: String, principalId: String, roles: [Role], caller: Caller) throws -> Principal {
        guard caller.partyId == partyId else { throw DomainError.notFound("party") }
        guard !roles.isEmpty, roles.allSatisfy({ Role.partyRoles.contains($0) }) else {
            throw DomainError.invalid("invalid_roles", "roles must be a non-empty subset of party-admin, owner, reviewer, partner")
        }
        return try write { db in
            var principal = try ownPrincipal(db, partyId: partyId, principalId: principalId)
            guard principal.status == .active else { throw DomainError.notFound("principal") }
            let before = principal.roles
            principal.roles = Array(Set(roles)).sorted { $0.rawValue < $1.rawValue }
            if before.contains(.partyAdmin), !principal.roles.contains(.partyAdmin) {
                let admins = try Principal.filter(Column("partyId") == partyId).fetchAll(db).filter {
                    $0.status == .active && $0.roles.contains(.partyAdmin) && $0.id != principalId
                }
                guard !admins.isEmpty else {
                    throw DomainError(.conflict, "last_party_admin", "the party must keep at least one party-admin")
                }
            }
            try principal.update(db)
            try appendAudit(
                db, actor: caller, action: "principal.roles_changed", subject: principalId,
                details: .object([
                    ("before", .array(before.map { .string($0.rawValue) })),
                    ("after", .array(principal.roles.map { .string($0.rawValue) })),
                ]))
            return principal
        }
    }

    /// Replaces a principal's credentials with a fresh one (returned once). Party admins rotate their
    /// party's principals; any principal may rotate its own (`principalId == caller`).
    public func rotateCredential(principalId: String, caller: Caller) throws -> String {
        let secret = try CryptoSupport.secret(prefix: Self.credentialPrefix)
        try write { db in
            guard let principal = try Principal.fetchOne(db, key: principalId), principal.status == .active,
                principal.id == caller.principal.id || (principal.partyId != nil && principal.partyId == caller.partyId)
            else { throw DomainError.notFound("principal") }
            try db.execute(
                sql: "UPDATE credential SET revokedAt = ? WHERE principalId = ? AND revokedAt IS NULL",
                arguments: [now, principalId])
            try Credential(
                id: try CryptoSupport.identifier("cr-"), principalId: principalId,
                secretHash: CryptoSupport.sha256Hex(secret), createdAt: now, revokedAt: nil
            ).insert(db)
            try appendAudit(db, actor: caller, action: "credential.rotated", subject: principalId)
        }
        return secret
    }

    /// The SigV4 secret for an access key id, when the key and its party are active (for the KMS endpoint).
    public func accessKeySecret(id: String) throws -> (partyId: String, secret: String)? {
        try read { db in
            guard let key = try AccessKey.fetchOne(db, key: id), key.revokedAt == nil,
                let party = try Party.fetchOne(db, key: key.partyId), party.status == .active
            else { return nil }
            return (key.partyId, key.secret)
        }
    }
}
