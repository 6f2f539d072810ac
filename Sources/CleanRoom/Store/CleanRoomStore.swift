import Foundation
import GRDB

/// The metadata store: SQLite in WAL mode through GRDB, with every state change and its audit entry
/// written in one transaction (so the log and the state can never disagree).
///
/// Blocking: every method runs SQLite on the calling thread; call it off the event loop.
public final class CleanRoomStore: Sendable {
    /// How the store is opened.
    public struct Configuration: Sendable {
        /// Seconds since the Unix epoch; injectable for tests.
        public var clock: @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }
        /// Signs audit checkpoints; without one no checkpoints are written.
        public var auditSigner: (any AuditSigner)?
        /// A checkpoint is signed after every `checkpointInterval` entries (and on `checkpoint()`).
        public var checkpointInterval: Int64 = 32
        /// Migrations other modules append (identifiers must be unique and never reused).
        public var additionalMigrations: [(String, @Sendable (Database) throws -> Void)] = []
        /// Why a completed, schema-valid policy's training section cannot run (the message of the
        /// `invalid_policy` refusal), or nil if it can. The server asks the enclave's trainer, so such
        /// a policy is refused when proposed rather than after every approval and a run.
        public var trainingCheck: (@Sendable (PolicyDocument) -> String?)?

        public init() {}
    }

    /// The GRDB pool; other modules (jobs, outputs) may use it for their own tables.
    public let pool: DatabasePool
    let configuration: Configuration

    var now: Int64 { configuration.clock() }

    /// The store's clock (Unix seconds): the time it records, injectable for tests.
    public var currentTime: Int64 { now }

    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    public init(path: String, configuration: Configuration = Configuration()) throws {
        var config = GRDB.Configuration()
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(10)
        pool = try DatabasePool(path: path, configuration: config)
        // Commits durable across power loss as well as crashes: every commit syncs the WAL. Set on
        // the pool's one writer connection after it opened, since the pool's WAL setup sets NORMAL
        // (which syncs only at checkpoints) after any `prepareDatabase` (found in a review).
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        self.configuration = configuration
        var migrator = DatabaseMigrator()
        CleanRoomMigrations.register(in: &migrator)
        for (identifier, migrate) in configuration.additionalMigrations {
            migrator.registerMigration(identifier, migrate: migrate)
        }
        try migrator.migrate(pool)
    }

    /// The identifiers of the migrations applied to this database, in order.
    public func appliedMigrations() throws -> [String] {
        var migrator = DatabaseMigrator()
        CleanRoomMigrations.register(in: &migrator)
        for (identifier, migrate) in configuration.additionalMigrations {
            migrator.registerMigration(identifier, migrate: migrate)
        }
        return try pool.read { db in try migrator.appliedMigrations(db) }
    }

    /// Runs a write transaction, translating SQLite constraint failures into domain conflicts.
    func write<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.write(body)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw DomainError(.conflict, "conflict", "the change conflicts with existing data")
        }
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.read(body)
    }
}

/// The authenticated caller of an operation: a principal and, unless it is the operator, its party.
public struct Caller: Sendable, Equatable {
    public let principal: Principal
    public let party: Party?

    public init(principal: Principal, party: Party?) {
        self.principal = principal
        self.party = party
    }

    public var partyId: String? { party?.id }
    public var roles: [Role] { principal.roles }
    public var isOperator: Bool { principal.isOperator }

    /// The caller's party, or a refusal for the operator (who belongs to none).
    func requireParty() throws -> Party {
        guard let party else { throw DomainError(.forbidden, "party_required", "this operation is for a party's principals") }
        return party
    }
}
