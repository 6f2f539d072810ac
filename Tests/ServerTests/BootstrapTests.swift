import Foundation
import Glibc
import TestSupport
import Testing

@testable import Server

@Suite struct BootstrapTests {
    func mode(_ path: String) -> mode_t {
        var st = stat()
        _ = stat(path, &st)
        return st.st_mode & 0o777
    }

    @Test func firstStartCreatesA0700DirectoryAndA0600CredentialFileWithAToken() throws {
        let parent = try TestEnvironment.temporaryDirectory("boot")
        defer { try? FileManager.default.removeItem(at: parent) }
        let data = DataDirectory(path: parent.appendingPathComponent("data").path)
        let (credentials, created) = try data.bootstrap()
        #expect(created)
        #expect(mode(data.path) == 0o700)
        #expect(mode(data.operatorCredentialsURL.path) == 0o600)
        #expect(credentials.token.hasPrefix("cro_") && credentials.token.count == 4 + 43)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: data.operatorCredentialsURL)) as? [String: Any]
        #expect(json?["token"] as? String == credentials.token)
        #expect(!"\(credentials)".contains(credentials.token))
        // The second start reads the same credential back.
        let (again, createdAgain) = try data.bootstrap()
        #expect(!createdAgain)
        #expect(again.token == credentials.token)
        #expect(again.matchesToken(credentials.token) && !again.matchesToken(credentials.token + "x"))
    }

    @Test func tokensAreDistinct() {
        #expect(OperatorCredentials.generateToken() != OperatorCredentials.generateToken())
    }

    @Test func aWorldReadableExistingDirectoryIsTightened() throws {
        let dir = try TestEnvironment.temporaryDirectory("boot")
        defer { try? FileManager.default.removeItem(at: dir) }
        chmod(dir.path, 0o755)
        _ = try DataDirectory(path: dir.path).bootstrap()
        #expect(mode(dir.path) == 0o700)
    }

    @Test func configurationPrecedenceIsFlagsThenEnvironmentThenFileThenDefaults() throws {
        let dir = try TestEnvironment.temporaryDirectory("conf")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("c.json")
        try Data(#"{"listen":"127.0.0.1:9001","dataDir":"/from/file","accessLog":"off"}"#.utf8).write(to: file)
        var overrides = ServerConfiguration.Overrides()
        overrides.configFile = file.path
        var config = try ServerConfiguration.resolve(overrides: overrides, environment: [:])
        #expect(config.listen == ListenAddress(host: "127.0.0.1", port: 9001))
        #expect(config.dataDirectory == "/from/file")
        #expect(config.accessLog == "off")
        config = try ServerConfiguration.resolve(
            overrides: overrides, environment: ["CLEANROOM_LISTEN": "127.0.0.2:9002", "CLEANROOM_DATA_DIR": "/env"])
        #expect(config.listen.port == 9002 && config.dataDirectory == "/env")
        overrides.listen = "[::1]:9003"
        config = try ServerConfiguration.resolve(overrides: overrides, environment: ["CLEANROOM_LISTEN": "127.0.0.2:9002"])
        #expect(config.listen == ListenAddress(host: "::1", port: 9003))
        #expect(try ServerConfiguration.resolve(overrides: .init(), environment: [:]).listen.description == "127.0.0.1:8080")
        #expect(try ServerConfiguration.resolve(overrides: .init(), environment: [:]).dataDirectory == "data")
        // The log format, from each source in turn.
        #expect(try ServerConfiguration.resolve(overrides: .init(), environment: [:]).logFormat == .text)
        try Data(#"{"logFormat":"json"}"#.utf8).write(to: file)
        var formats = ServerConfiguration.Overrides()
        formats.configFile = file.path
        #expect(try ServerConfiguration.resolve(overrides: formats, environment: [:]).logFormat == .json)
        #expect(try ServerConfiguration.resolve(overrides: formats, environment: ["CLEANROOM_LOG_FORMAT": "text"]).logFormat == .text)
        formats.logFormat = "json"
        #expect(try ServerConfiguration.resolve(overrides: formats, environment: ["CLEANROOM_LOG_FORMAT": "text"]).logFormat == .json)
        #expect(throws: ConfigurationError.self) {
            try ServerConfiguration.resolve(overrides: .init(), environment: ["CLEANROOM_LOG_FORMAT": "yaml"])
        }
    }

    @Test func nonLoopbackWithoutTLSIsRefusedUnlessInsecureHTTP() throws {
        var overrides = ServerConfiguration.Overrides()
        overrides.listen = "0.0.0.0:8080"
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.resolve(overrides: overrides, environment: [:]) }
        overrides.insecureHTTP = true
        #expect(try ServerConfiguration.resolve(overrides: overrides, environment: [:]).insecureHTTP)
        overrides.insecureHTTP = nil
        overrides.tlsCert = "/c.pem"
        overrides.tlsKey = "/k.pem"
        #expect(try ServerConfiguration.resolve(overrides: overrides, environment: [:]).tlsEnabled)
        overrides.tlsKey = nil
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.resolve(overrides: overrides, environment: [:]) }
        #expect(throws: ConfigurationError.self) { try ListenAddress(parsing: "nohost") }
        #expect(throws: ConfigurationError.self) { try ListenAddress(parsing: "h:70000") }
    }
}
