import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The development attestation CA: a P-384 root → intermediate → leaf chain shaped like AWS's
/// (root self-signed and long-lived, CA intermediates, an end-entity leaf with no SAN or EKU that
/// signs the documents), created once and kept in `<data directory>/development-ca/`.
///
/// Files: `root.pem` (the certificate to give verifiers), `intermediate.pem`, `leaf.pem`, and the
/// keys `root.key`, `intermediate.key`, `leaf.key` (PKCS#8 DER, mode 0600, directory 0700).
/// The whole directory is created under a temporary name and renamed into place, so a crash or a
/// concurrent start never leaves half a CA. The leaf is re-issued from the intermediate when it is
/// missing, expired, within 30 days of expiry, or does not match its key.
///
/// **Not a security boundary**: whoever can read the data directory can mint documents. Everything
/// it signs says "development" (module id, subject names, ``TrustedRoot/isDevelopment``).
public struct DevelopmentCA: Sendable {
    /// Directory name under the data directory.
    public static let directoryName = "development-ca"
    static let rootLifetime: TimeInterval = 20 * 365 * 86_400
    static let intermediateLifetime: TimeInterval = 10 * 365 * 86_400
    static let leafLifetime: TimeInterval = 365 * 86_400
    static let leafRenewalMargin: TimeInterval = 30 * 86_400

    /// Where the CA lives.
    public let directory: String
    public let root: Certificate
    public let intermediate: Certificate
    public let leaf: Certificate
    let leafKey: P384.Signing.PrivateKey

    /// The root, ready for an ``AttestationVerifier`` (marked development).
    public var trustedRoot: TrustedRoot {
        TrustedRoot(certificate: root, name: "cleanroom-development", isDevelopment: true)
    }

    /// Path of the root certificate (PEM), for `cleanroom attestation verify --root`.
    public var rootCertificatePath: String { directory + "/root.pem" }

    /// Loads the CA from `<dataDirectory>/development-ca`, creating it on first use.
    public static func openOrCreate(dataDirectory: String, now: Date = Date()) throws(AttestationError) -> DevelopmentCA
    {
        let directory = dataDirectory + "/" + directoryName
        if !FileManager.default.fileExists(atPath: directory + "/root.pem") {
            try create(at: directory, now: now)
        }
        return try load(directory: directory, now: now)
    }

    // MARK: - Creation

    private static func create(at directory: String, now: Date) throws(AttestationError) {
        let parent = (directory as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        } catch {
            throw invalid("cannot create the data directory \(parent): \(error.localizedDescription)")
        }
        let staging = directory + ".tmp-" + Hex.encode((try? SecureRandom.bytes(count: 8)) ?? [1])
        guard mkdir(staging, 0o700) == 0 else { throw invalid("cannot create \(staging): \(errnoText())") }
        defer { try? FileManager.default.removeItem(atPath: staging) }
        do {
            let rootKey = try P384.Signing.PrivateKey()
            let rootName = name(common: "root.development.cleanroom-enclaves")
            let root = try Certificate.issue(
                subject: rootName,
                subjectPublicKeyInfo: try rootKey.publicKey.derRepresentation,
                serialNumber: try serial(),
                notBefore: now.addingTimeInterval(-3600),
                notAfter: now.addingTimeInterval(rootLifetime),
                issuer: .selfSigned(.p384(rootKey)),
                basicConstraints: .certificateAuthority(pathLength: nil),
                keyUsage: [.keyCertSign, .cRLSign]
            )
            let intermediateKey = try P384.Signing.PrivateKey()
            let intermediate = try Certificate.issue(
                subject: name(
                    common: Hex.encode(try SecureRandom.bytes(count: 8))
                        + ".intermediate.development.cleanroom-enclaves"
                ),
                subjectPublicKeyInfo: try intermediateKey.publicKey.derRepresentation,
                serialNumber: try serial(),
                notBefore: now.addingTimeInterval(-3600),
                notAfter: now.addingTimeInterval(intermediateLifetime),
                issuer: .certificate(root, key: .p384(rootKey)),
                basicConstraints: .certificateAuthority(pathLength: 0),
                keyUsage: [.keyCertSign, .cRLSign]
            )
            try writeFile(staging + "/root.pem", Array(root.pemRepresentation.utf8), mode: 0o644)
            try writeFile(staging + "/root.key", try rootKey.derRepresentation, mode: 0o600)
            try writeFile(staging + "/intermediate.pem", Array(intermediate.pemRepresentation.utf8), mode: 0o644)
            try writeFile(staging + "/intermediate.key", try intermediateKey.derRepresentation, mode: 0o600)
        } catch let error as AttestationError {
            throw error
        } catch {
            throw invalid("cannot create the development CA: \(error)")
        }
        // Atomic publish; if another process won the race, its CA is the one.
        if rename(staging, directory) != 0 {
            let code = errno
            guard code == EEXIST || code == ENOTEMPTY else {
                throw invalid("cannot publish the development CA at \(directory): \(String(cString: strerror(code)))")
            }
        }
        fsyncDirectory(parent)
    }

    // MARK: - Loading

    private static func load(directory: String, now: Date) throws(AttestationError) -> DevelopmentCA {
        let root = try readCertificate(directory + "/root.pem")
        let intermediate = try readCertificate(directory + "/intermediate.pem")
        guard isDevelopmentName(root.subject), root.isSelfIssued, root.isSignedBy(root) else {
            throw invalid("\(directory)/root.pem is not a self-signed development root")
        }
        guard intermediate.isSignedBy(root) else {
            throw invalid("\(directory)/intermediate.pem is not signed by root.pem")
        }
        if let leaf = try? readCertificate(directory + "/leaf.pem"),
            let key = try? readKey(directory + "/leaf.key"),
            let keySPKI = try? key.publicKey.derRepresentation, keySPKI == leaf.subjectPublicKeyInfo,
            leaf.isSignedBy(intermediate), now >= leaf.notBefore,
            now.addingTimeInterval(leafRenewalMargin) < leaf.notAfter
        {
            return DevelopmentCA(directory: directory, root: root, intermediate: intermediate, leaf: leaf, leafKey: key)
        }
        // (Re-)issue the leaf.
        let intermediateKey = try readKey(directory + "/intermediate.key")
        guard (try? intermediateKey.publicKey.derRepresentation) == intermediate.subjectPublicKeyInfo else {
            throw invalid("\(directory)/intermediate.key does not match intermediate.pem")
        }
        do {
            let leafKey = try P384.Signing.PrivateKey()
            let leaf = try Certificate.issue(
                subject: name(
                    common: "development-enc" + Hex.encode(try SecureRandom.bytes(count: 8)) + ".development"
                ),
                subjectPublicKeyInfo: try leafKey.publicKey.derRepresentation,
                serialNumber: try serial(),
                notBefore: now.addingTimeInterval(-3600),
                notAfter: now.addingTimeInterval(leafLifetime),
                issuer: .certificate(intermediate, key: .p384(intermediateKey)),
                basicConstraints: .endEntity,
                keyUsage: [.digitalSignature]
            )
            let suffix = ".new-" + Hex.encode(try SecureRandom.bytes(count: 8))
            try writeFile(directory + "/leaf.key" + suffix, try leafKey.derRepresentation, mode: 0o600)
            try writeFile(directory + "/leaf.pem" + suffix, Array(leaf.pemRepresentation.utf8), mode: 0o644)
            // Key first: a crash in between leaves a mismatched pair, which the next load re-issues.
            guard rename(directory + "/leaf.key" + suffix, directory + "/leaf.key") == 0,
                rename(directory + "/leaf.pem" + suffix, directory + "/leaf.pem") == 0
            else { throw invalid("cannot store the development leaf: \(errnoText())") }
            fsyncDirectory(directory)
            return DevelopmentCA(
                directory: directory,
                root: root,
                intermediate: intermediate,
                leaf: leaf,
                leafKey: leafKey
            )
        } catch let error as AttestationError {
            throw error
        } catch {
            throw invalid("cannot issue the development leaf: \(error)")
        }
    }

    // MARK: - Helpers

    static func name(common: String) -> DistinguishedName {
        DistinguishedName(["C": "US", "O": organization, "OU": "cleanroom", "CN": common])
    }

    private static func serial() throws -> [UInt8] {
        var bytes = try SecureRandom.bytes(count: 16)
        bytes[0] = (bytes[0] & 0x7f) | 0x01
        return bytes
    }

    private static func invalid(_ message: String) -> AttestationError {
        AttestationError(.developmentCAInvalid, message)
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    private static func readCertificate(_ path: String) throws(AttestationError) -> Certificate {
        guard let data = FileManager.default.contents(atPath: path) else { throw invalid("cannot read \(path)") }
        do {
            return try Certificate(pemEncoded: String(decoding: data, as: UTF8.self))
        } catch {
            throw invalid("\(path) is not a PEM certificate: \(error)")
        }
    }

    private static func readKey(_ path: String) throws(AttestationError) -> P384.Signing.PrivateKey {
        guard let data = FileManager.default.contents(atPath: path) else { throw invalid("cannot read \(path)") }
        var bytes = [UInt8](data)
        defer { bytes.withUnsafeMutableBytes { if let base = $0.baseAddress { _ = memset(base, 0, $0.count) } } }
        do {
            return try P384.Signing.PrivateKey(derRepresentation: SecureBytes(bytes))
        } catch {
            throw invalid("\(path) is not a P-384 private key")
        }
    }

    private static func writeFile(_ path: String, _ bytes: SecureBytes, mode: mode_t) throws(AttestationError) {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(AttestationError) in try writeFile(path, buffer, mode: mode) }
        }
        try result.get()
    }

    private static func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t) throws(AttestationError) {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(AttestationError) in try writeFile(path, buffer, mode: mode) }
        }
        try result.get()
    }

    private static func writeFile(
        _ path: String,
        _ buffer: UnsafeRawBufferPointer,
        mode: mode_t
    ) throws(AttestationError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw invalid("cannot create \(path): \(errnoText())") }
        defer { close(fd) }
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw invalid("cannot write \(path): \(errnoText())")
            }
            offset += n
        }
        guard fsync(fd) == 0 else { throw invalid("cannot sync \(path): \(errnoText())") }
    }

    private static func fsyncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            _ = fsync(fd)
            close(fd)
        }
    }
}
