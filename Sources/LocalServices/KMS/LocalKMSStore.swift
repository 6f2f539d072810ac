import AWS
import Crypto
import Foundation
import GRDB

#if canImport(Glibc)
    import Glibc
#endif

/// The local KMS's durable state: customer keys and their versions in SQLite (GRDB), each
/// version's 256-bit key material wrapped (AES-256-GCM) by a root key kept in a separate file
/// created with mode 0600. A root key file readable by group or others is refused.
final class LocalKMSStore: Sendable {
    let dbQueue: DatabaseQueue
    private let rootKey: SecureBytes

    struct KeyRecord: Sendable {
        var id: String
        var description: String
        var created: Double
        var enabled: Bool
        var policy: String
        var currentVersion: Int
    }

    init(directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        rootKey = try Self.loadOrCreateRootKey(at: directory.appendingPathComponent("root.key"))
        dbQueue = try DatabaseQueue(path: directory.appendingPathComponent("keys.sqlite").path)
        chmod(directory.appendingPathComponent("keys.sqlite").path, 0o600)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("localkms-v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE kmsKey (
                        id TEXT PRIMARY KEY NOT NULL, description TEXT NOT NULL, created DOUBLE NOT NULL,
                        enabled INTEGER NOT NULL, policy TEXT NOT NULL, currentVersion INTEGER NOT NULL);
                    CREATE TABLE kmsKeyVersion (
                        keyId TEXT NOT NULL REFERENCES kmsKey(id), version INTEGER NOT NULL, created DOUBLE NOT NULL,
                        nonce BLOB NOT NULL, wrapped BLOB NOT NULL, tag BLOB NOT NULL, PRIMARY KEY (keyId, version));
                    CREATE TABLE kmsAlias (name TEXT PRIMARY KEY NOT NULL, keyId TEXT NOT NULL REFERENCES kmsKey(id));
                    """)
        }
        try migrator.migrate(dbQueue)
    }

    static func loadOrCreateRootKey(at url: URL) throws -> SecureBytes {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 {
            defer { close(fd) }
            let key = try SecureBytes(randomCount: 32)
            let written = key.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == 32, fsync(fd) == 0 else {
                unlink(url.path)
                throw KMSError("KMSInternalException", "cannot write the local KMS root key file")
            }
            return key
        }
        guard errno == EEXIST else { throw KMSError("KMSInternalException", "cannot create the local KMS root key file") }
        var st = stat()
        guard stat(url.path, &st) == 0 else { throw KMSError("KMSInternalException", "cannot read the local KMS root key file") }
        guard st.st_mode & 0o077 == 0 else {
            throw KMSError(
                "KMSInternalException",
                "the local KMS root key file \(url.path) is accessible to group or others (mode \(String(st.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        let rfd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard rfd >= 0 else { throw KMSError("KMSInternalException", "cannot open the local KMS root key file") }
        defer { close(rfd) }
        var buf = [UInt8](repeating: 0, count: 33)
        defer { for i in buf.indices { buf[i] = 0 } }
        var got = 0
        while got < 33 {
            let n = buf.withUnsafeMutableBytes { read(rfd, $0.baseAddress! + got, 33 - got) }
            if n <= 0 { break }
            got += n
        }
        let key = SecureBytes(Array(buf[0..<got]))
        guard key.count == 32 else { throw KMSError("KMSInternalException", "the local KMS root key file must hold 32 bytes") }
        return key
    }

    private func wrappingAAD(_ keyId: String, _ version: Int) -> [UInt8] {
        Array("cleanroom-localkms-key-v1|\(keyId)|\(version)".utf8)
    }

    // MARK: Keys

    func createKey(id: String, description: String, policy: String) throws -> KeyRecord {
        let record = KeyRecord(id: id, description: description, created: Date().timeIntervalSince1970, enabled: true, policy: policy, currentVersion: 1)
        let material = try SecureBytes(randomCount: 32)
        let nonce = try SecureRandom.bytes(count: AESGCM.nonceByteCount)
        let sealed = try AESGCM.seal(material, key: rootKey, nonce: nonce, authenticating: wrappingAAD(id, 1))
        try dbQueue.write { db in
            try db.execute(
                sql: "INSERT INTO kmsKey (id, description, created, enabled, policy, currentVersion) VALUES (?, ?, ?, 1, ?, 1)",
                arguments: [id, description, record.created, policy])
            try db.execute(
                sql: "INSERT INTO kmsKeyVersion (keyId, version, created, nonce, wrapped, tag) VALUES (?, 1, ?, ?, ?, ?)",
                arguments: [id, record.created, Data(nonce), Data(sealed.ciphertext), Data(sealed.tag)])
        }
        return record
    }

    func rotate(id: String) throws -> Int {
        let material = try SecureBytes(randomCount: 32)
        return try dbQueue.write { db in
            guard let current = try Int.fetchOne(db, sql: "SELECT currentVersion FROM kmsKey WHERE id = ?", arguments: [id]) else {
                throw KMSError("NotFoundException", "Key '\(id)' does not exist")
            }
            let next = current + 1
            let nonce = try SecureRandom.bytes(count: AESGCM.nonceByteCount)
            let sealed = try AESGCM.seal(material, key: rootKey, nonce: nonce, authenticating: wrappingAAD(id, next))
            try db.execute(
                sql: "INSERT INTO kmsKeyVersion (keyId, version, created, nonce, wrapped, tag) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [id, next, Date().timeIntervalSince1970, Data(nonce), Data(sealed.ciphertext), Data(sealed.tag)])
            try db.execute(sql: "UPDATE kmsKey SET currentVersion = ? WHERE id = ?", arguments: [next, id])
            return next
        }
    }

    func key(id: String) throws -> KeyRecord? {
        guard !id.utf8.contains(0) else { return nil }  // SQLite would end the id at the NUL and find the key
        return try dbQueue.read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM kmsKey WHERE id = ?", arguments: [id]) else { return nil }
            return KeyRecord(
                id: row["id"], description: row["description"], created: row["created"], enabled: row["enabled"],
                policy: row["policy"], currentVersion: row["currentVersion"])
        }
    }

    func material(id: String, version: Int) throws -> SecureBytes? {
        let row = try dbQueue.read { db in
            try Row.fetchOne(db, sql: "SELECT nonce, wrapped, tag FROM kmsKeyVersion WHERE keyId = ? AND version = ?", arguments: [id, version])
        }
        guard let row else { return nil }
        let nonce: Data = row["nonce"], wrapped: Data = row["wrapped"], tag: Data = row["tag"]
        return try AESGCM.openSecret(Array(wrapped), tag: Array(tag), key: rootKey, nonce: Array(nonce), authenticating: wrappingAAD(id, version))
    }

    func setPolicy(id: String, policy: String) throws {
        try dbQueue.write { db in try db.execute(sql: "UPDATE kmsKey SET policy = ? WHERE id = ?", arguments: [policy, id]) }
    }

    func setEnabled(id: String, _ enabled: Bool) throws {
        try dbQueue.write { db in try db.execute(sql: "UPDATE kmsKey SET enabled = ? WHERE id = ?", arguments: [enabled, id]) }
    }

    func createAlias(_ name: String, keyId: String) throws {
        try dbQueue.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM kmsAlias WHERE name = ?", arguments: [name]) != nil {
                throw KMSError("AlreadyExistsException", "An alias with the name \(name) already exists")
            }
            try db.execute(sql: "INSERT INTO kmsAlias (name, keyId) VALUES (?, ?)", arguments: [name, keyId])
        }
    }

    func aliasTarget(_ name: String) throws -> String? {
        try dbQueue.read { db in try String.fetchOne(db, sql: "SELECT keyId FROM kmsAlias WHERE name = ?", arguments: [name]) }
    }
}
