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

    /// Creates the directory (0700) if needed and tightens its mode if it is wider. Then reads
    /// the operator credentials, or creates them on first start (0600, written atomically) —
    /// the seam where the domain's credential store picks up the operator's first credential.
    public func bootstrap() throws -> (credentials: OperatorCredentials, created: Bool) {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw ConfigurationError("data directory \(path) is not a directory") }
        } else {
            try FileManager.default.createDirectory(
                at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
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
        let tmp = url.path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ConfigurationError("cannot create \(tmp): \(String(cString: strerror(errno)))") }
        let ok = data.withUnsafeBytes { buf -> Bool in
            var off = 0
            while off < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + off, buf.count - off)
                if n <= 0 { return false }
                off += n
            }
            return fsync(fd) == 0
        }
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
