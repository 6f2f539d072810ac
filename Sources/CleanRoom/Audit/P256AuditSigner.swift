import Crypto
import Foundation

/// The server's audit-checkpoint key (ECDSA P-256), kept as a PKCS#8 PEM file (0600) in the data directory.
public struct P256AuditSigner: AuditSigner {
    let key: P256.Signing.PrivateKey
    public let publicKeyPEM: String

    public init(key: P256.Signing.PrivateKey) throws {
        self.key = key
        publicKeyPEM = try key.publicKey.pemRepresentation
    }

    /// Loads the key at `path`, creating it (mode 0600) on first use.
    public static func loadOrCreate(path: String) throws -> P256AuditSigner {
        if FileManager.default.fileExists(atPath: path) {
            let pem = try String(contentsOfFile: path, encoding: .utf8)
            return try P256AuditSigner(key: try P256.Signing.PrivateKey(pemRepresentation: pem))
        }
        let key = try P256.Signing.PrivateKey()
        let pem = try key.pemRepresentation
        let created = pem.withUnsafeBytes { bytes in
            FileManager.default.createFile(
                atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600])
        }
        guard created else { throw DomainError(.internalError, "audit_key_write_failed", "cannot write \(path)") }
        return try P256AuditSigner(key: key)
    }

    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        try key.signature(for: message).derRepresentation
    }
}
