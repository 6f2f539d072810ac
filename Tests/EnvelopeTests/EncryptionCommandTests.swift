import Crypto
import Foundation
import Testing
import TestSupport

@testable import Envelope

/// `cleanroom encrypt` / `cleanroom decrypt` as a user runs them: real processes, real files.
@Suite final class EncryptionCommandTests {
    let directory: URL
    let cleanroom: String

    init() throws {
        directory = try TestEnvironment.temporaryDirectory("envelope-cli")
        cleanroom = try TestEnvironment.executable("cleanroom")
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func write(_ name: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path(name)))
    }

    func read(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(name)))) }

    func run(_ arguments: [String], stdin: Data? = nil) throws -> ProcessResult {
        try ProcessRunner.run(cleanroom, arguments, stdin: stdin)
    }

    /// Files in the directory, so tests can check no temporary file was left behind.
    func listing() throws -> Set<String> { Set(try FileManager.default.contentsOfDirectory(atPath: directory.path)) }

    func prepareKeys() throws {
        try write("aes.key", try SecureRandom.bytes(count: 32))
        let rsa = try RSA.PrivateKey(bits: 2048)
        try write("rsa.pem", rsa.pemRepresentation.copyBytes())
        try write("rsa.pub", Array(try rsa.publicKey.pemRepresentation.utf8))
    }

    @Test func roundTripsFilesWithEveryKeySourceAndSuite() throws {
        try prepareKeys()
        let plaintext = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try write("plain", plaintext)
        for (encryptKey, decryptKey) in [(["--aes-key", path("aes.key")], ["--aes-key", path("aes.key")]),
                                         (["--rsa-public-key", path("rsa.pub")], ["--rsa-private-key", path("rsa.pem")])] {
            for suite in ["0x0478", "0x0578"] {
                let encrypt = try run(
                    ["encrypt", "--in", path("plain"), "--out", path("ct")] + encryptKey
                        + ["--key-namespace", "ns", "--key-name", "k", "--context", "cleanroom:dataset=d1",
                           "--context", "x=a=b", "--suite", suite, "--frame-length", "4096"])
                #expect(encrypt.status == 0, "\(encrypt.stderrText)")
                let header = try MessageHeaderParser().parseComplete(try read("ct"))
                #expect(header.suite.description == suite)
                #expect(header.frameLength == 4096)
                #expect(header.encryptionContext["x"] == "a=b")
                let decrypt = try run(
                    ["decrypt", "--in", path("ct"), "--out", path("out")] + decryptKey
                        + ["--key-namespace", "ns", "--key-name", "k", "--expect-context", "cleanroom:dataset=d1"])
                #expect(decrypt.status == 0, "\(decrypt.stderrText)")
                #expect(try read("out") == plaintext)
            }
        }
    }

    @Test func stdinAndStdoutWork() throws {
        try prepareKeys()
        let plaintext = Array("name,score\nalice,1\n".utf8)
        let encrypt = try run(["encrypt", "--in", "-", "--out", "-", "--aes-key", path("aes.key")], stdin: Data(plaintext))
        #expect(encrypt.status == 0)
        let decrypt = try run(["decrypt", "--in", "-", "--out", "-", "--aes-key", path("aes.key")], stdin: encrypt.stdout)
        #expect(decrypt.status == 0)
        #expect([UInt8](decrypt.stdout) == plaintext)
    }

    @Test func tamperedMessageWritesNothingAndExitsOne() throws {
        try prepareKeys()
        try write("plain", (0..<50_000).map { UInt8(truncatingIfNeeded: $0) })
        #expect(try run(["encrypt", "--in", path("plain"), "--out", path("ct"), "--aes-key", path("aes.key"),
                         "--suite", "0x0578", "--frame-length", "1000"]).status == 0)
        var ciphertext = try read("ct")
        // Flip a bit in the last frame: every earlier frame authenticates, the message does not.
        ciphertext[ciphertext.count - 150] ^= 1
        try write("bad", ciphertext)
        let before = try listing()
        let toFile = try run(["decrypt", "--in", path("bad"), "--out", path("out"), "--aes-key", path("aes.key")])
        #expect(toFile.status == 1)
        #expect(toFile.stderrText.contains("failed authentication") || toFile.stderrText.contains("signature"))
        #expect(try listing() == before, "decrypt left a file behind")
        let toStdout = try run(["decrypt", "--in", path("bad"), "--out", "-", "--aes-key", path("aes.key")])
        #expect(toStdout.status == 1)
        #expect(toStdout.stdout.isEmpty)
        // Truncated: also nothing.
        try write("short", Array(try read("ct").dropLast(10)))
        let truncated = try run(["decrypt", "--in", path("short"), "--out", path("out"), "--aes-key", path("aes.key")])
        #expect(truncated.status == 1)
        #expect(truncated.stderrText.contains("truncatedMessage"))
        #expect(!FileManager.default.fileExists(atPath: path("out")))
    }

    @Test func contextMismatchAndWrongKeyExitOne() throws {
        try prepareKeys()
        try write("plain", [1, 2, 3])
        #expect(try run(["encrypt", "--in", path("plain"), "--out", path("ct"), "--aes-key", path("aes.key"),
                         "--context", "a=1"]).status == 0)
        let mismatch = try run(["decrypt", "--in", path("ct"), "--out", path("out"), "--aes-key", path("aes.key"),
                                "--expect-context", "a=2"])
        #expect(mismatch.status == 1)
        #expect(mismatch.stderrText.contains("encryptionContextMismatch"))
        let wrongName = try run(["decrypt", "--in", path("ct"), "--out", path("out"), "--aes-key", path("aes.key"),
                                 "--key-name", "other"])
        #expect(wrongName.status == 1)
        #expect(wrongName.stderrText.contains("noDecryptableDataKey"))
        #expect(!FileManager.default.fileExists(atPath: path("out")))
    }

    @Test func usageErrorsExitTwo() throws {
        try prepareKeys()
        try write("plain", [1])
        try write("short.key", [1, 2, 3])
        let cases: [[String]] = [
            ["encrypt", "--in", path("plain"), "--out", path("ct")],
            ["encrypt", "--in", path("plain"), "--out", path("ct"), "--aes-key", path("aes.key"), "--rsa-public-key", path("rsa.pub")],
            ["encrypt", "--in", path("plain"), "--out", path("ct"), "--aes-key", path("aes.key"), "--context", "novalue"],
            ["encrypt", "--in", path("plain"), "--out", path("ct"), "--aes-key", path("aes.key"), "--context", "a=1", "--context", "a=2"],
            ["encrypt", "--in", path("plain"), "--out", path("ct"), "--aes-key", path("aes.key"), "--suite", "0x0178"],
            ["encrypt", "--in", path("plain"), "--out", path("ct"), "--aes-key", path("aes.key"), "--frame-length", "0"],
            ["encrypt", "--in", path("plain"), "--out", path("ct"), "--aes-key", path("short.key")],
            ["encrypt", "--in", path("missing"), "--out", path("ct"), "--aes-key", path("aes.key")],
            ["decrypt", "--in", path("plain"), "--out", path("out")],
            ["decrypt", "--in", path("plain"), "--out", path("out"), "--aes-key", path("aes.key"), "--kms"],
            ["decrypt", "--in", path("plain"), "--out", path("out"), "--rsa-private-key", path("plain")],
            ["decrypt", "--bogus"],
        ]
        for arguments in cases {
            let result = try run(arguments)
            #expect(result.status == 2, "\(arguments.suffix(3)) gave \(result.status): \(result.stderrText)")
            #expect(!result.stderrText.isEmpty)
        }
        #expect(!FileManager.default.fileExists(atPath: path("ct")))
        // Every usage error reads the same, whether the parser or the command found it: the
        // reason, then the command's own help.
        let parsed = try run(["decrypt", "--bogus"])
        let found = try run(["encrypt", "--in", path("missing"), "--out", path("ct"), "--aes-key", path("aes.key")])
        for (result, command) in [(parsed, "decrypt"), (found, "encrypt")] {
            #expect(result.stderrText.hasPrefix("Error: "), "\(result.stderrText)")
            #expect(result.stderrText.contains("See 'cleanroom \(command) --help'"), "\(result.stderrText)")
        }
        #expect(found.stderrText.contains(path("missing")), "\(found.stderrText)")
        let help = try run(["decrypt", "--help"])
        #expect(help.status == 0)
        #expect(help.stdoutText.contains("Nothing is written at --out unless the whole message authenticated"))
    }

    @Test func decryptsAPythonSDKVector() throws {
        let pem = try VectorKeys.material("rsa-4096-private")
        try write("vector.pem", Array(pem.utf8))
        let result = try run([
            "decrypt", "--in", TestEnvironment.vector("esdk/ciphertexts/v2-0578-rsa-10000").path, "--out", path("out"),
            "--rsa-private-key", path("vector.pem"), "--key-namespace", "aws-raw-vectors-persistent",
            "--key-name", "rsa-4096-private", "--expect-context", "über-key=wärt",
        ])
        #expect(result.status == 0, "\(result.stderrText)")
        #expect(try read("out") == (try VectorFiles.data("plaintexts/10000b")))
    }
}
