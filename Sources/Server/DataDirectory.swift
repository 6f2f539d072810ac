import Foundation
import Glibc

/// The server's data directory (mode 0700): SQLite database, object store, local KMS keys,
/// development CA, and `operator-credentials.json` (mode 0600).
public struct DataDirectory: Sendable {
    public let url: URL
    public var path: String { url.path }
    public var operatorCredentialsURL: URL { url.appendingPathComponent("operator-credentials.json") }

    public init(path: String) {
        self.url = URL(fileURLWithPath: path).standardizedFileURL
    }

    /// A file or folder inside the data directory.
    public func file(_ relativePath: String) -> URL { url.appendingPathComponent(relativePath) }
    /// The bearer token that may read `GET /metrics` and nothing else (mode 0600).
    public var metricsTokenURL: URL { url.appendingPathComponent("metrics-token") }

    /// Reads the metrics token, or creates it (`crm_` and 32 random bytes) on first start.
    public func metricsToken() throws -> String {
        if let text = try? String(contentsOf: metricsTokenURL, encoding: .utf8) {
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw ConfigurationError("\(metricsTokenURL.path) is empty: delete it to have a new token made") }
            return token
        }
        let token = "crm_" + OperatorCredentials.generateToken().dropFirst(4)
        try OperatorCredentials.writeSecret(Data((token + "\n").utf8), to: metricsTokenURL)
        return token
    }

    /// Takes the data directory for one serving process (`DATA/cleanroomd.lock`, an exclusive
    /// `flock` held until the process exits, with its pid for the message). A second `cleanroomd
    /// serve` on the same directory would run its own jobs, standby enclave and startup recovery
    /// against the same database and objects; it is refused instead. Taken before `bootstrap`, so
    /// a refused second server writes nothing (it creates the directory, 0700, if it is missing).
    public func lockForServing() throws -> ServingLock {
        try createIfMissing()
        let lockPath = url.appendingPathComponent("cleanroomd.lock").path
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ConfigurationError("cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            let holder = count > 0 ? String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : ""
            throw ConfigurationError(
                "another cleanroomd\(holder.isEmpty ? "" : " (pid \(holder))") is serving the data directory \(path): "
                    + "stop it first, or give this one its own --data-dir")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        return ServingLock(descriptor: fd)
    }

    /// Creates the directory (0700) if needed and tightens its mode if it is wider. Then reads
    /// the operator credentials, or creates them on first start (0600, written atomically) —
    /// the seam where the domain's credential store picks up the operator's first credential.
    public func bootstrap() throws -> (credentials: OperatorCredentials, created: Bool) {
        try createIfMissing()
        var st = stat()
        guard stat(path, &st) == 0 else { throw ConfigurationError("cannot stat data directory \(path)") }
        if st.st_mode & 0o077 != 0 {
            guard chmod(path, 0o700) == 0 else {
                throw ConfigurationError("data directory \(path) is readable by others and chmod 0700 failed")
            }
        }
        let credentialsPath = operatorCredentialsURL.path
        if FileManager.default.fileExists(atPath: credentialsPath) {
            return (try OperatorCredentials.read(from: operatorCredentialsURL), false)
        }
        let credentials = OperatorCredentials(token: OperatorCredentials.generateToken())
        try credentials.write(to: operatorCredentialsURL)
        return (credentials, true)
    }

    /// Creates the directory (0700) unless it exists; refuses a path that is not a directory.
    private func createIfMissing() throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw ConfigurationError("data directory \(path) is not a directory") }
        } else {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
    }
}

/// The operator's bearer credential, kept in `DATA/operator-credentials.json` (mode 0600).
///
/// `token` is the operator's bearer token. Other features add fields (the KMS issue adds
/// `accessKeyId` and `secretAccessKey`); unknown fields in the file are kept when it is read.
/// Never log this value; `description` redacts it.
public struct OperatorCredentials: Codable, Sendable, CustomStringConvertible {
    public var token: String
    public var accessKeyId: String?
    public var secretAccessKey: String?

    public init(token: String, accessKeyId: String? = nil, secretAccessKey: String? = nil) {
        self.token = token
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
    }

    public var description: String { "OperatorCredentials(token: <redacted>)" }

    /// A fresh token: 32 bytes from the system CSPRNG (getrandom), base64url, prefixed `cro_`.
    public static func generateToken() -> String {
        var rng = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 32)
        for i in bytes.indices { bytes[i] = rng.next() }
        defer { for i in bytes.indices { bytes[i] = 0 } }
        return "cro_" + Base64URL.encode(bytes)
    }

    /// True when `presented` equals the token (constant time in the token's length).
    public func matchesToken(_ presented: String) -> Bool {
        let a = Array(token.utf8), b = Array(presented.utf8)
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    static func read(from url: URL) throws -> OperatorCredentials {
        do {
            return try JSONDecoder().decode(OperatorCredentials.self, from: Data(contentsOf: url))
        } catch {
            throw ConfigurationError("cannot read \(url.path): not a JSON object with a string `token`")
        }
    }

    /// Writes the file with mode 0600: to a temporary file opened O_EXCL, fsync, rename.
    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(self)
        data.append(0x0A)
        try Self.writeSecret(data, to: url)
    }

    /// Writes all of `data` to `fd` (retrying short writes); false on an error (see `errno`).
    static func writeAll(_ data: Data, to fd: Int32) -> Bool {
        data.withUnsafeBytes { buffer -> Bool in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
    }

    /// Writes `data` to `url` mode 0600, atomically (a temporary file, fsync, rename).
    static func writeSecret(_ data: Data, to url: URL) throws {
        let tmp = url.path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ConfigurationError("cannot create \(tmp): \(String(cString: strerror(errno)))") }
        let ok = writeAll(data, to: fd) && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, url.path) == 0 else {
            unlink(tmp)
            throw ConfigurationError("cannot write \(url.path)")
        }
    }
}

enum Base64URL {
    static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}

/// The data directory held for one serving process; released when the process exits (or `release`).
public final class ServingLock: @unchecked Sendable {
    private var descriptor: Int32

    init(descriptor: Int32) { self.descriptor = descriptor }

    public func release() {
        guard descriptor >= 0 else { return }
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}
