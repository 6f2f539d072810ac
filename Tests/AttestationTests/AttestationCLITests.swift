import Crypto
import Foundation
import TestSupport
import Testing

@testable import Attestation

/// `cleanroom attestation verify` and `cleanroom enclave measure`, run as the real executable.
@Suite struct AttestationCLITests {
    private func run(_ arguments: [String]) throws -> ProcessResult {
        try ProcessRunner.run(try TestEnvironment.executable("cleanroom"), arguments)
    }

    private var rootPath: String { TestEnvironment.vector("nitro/aws-nitro-enclaves-root-g1.pem").path }
    private func docPath(_ v: NitroVector) -> String { TestEnvironment.vector("nitro/\(v.expected.file)").path }

    @Test func verifyPrintsTheDocumentAndExitsZeroWhenEveryCheckPasses() throws {
        let v = NitroVector.production
        let result = try run([
            "attestation", "verify", docPath(v), "--root", rootPath, "--at", "\(v.verifyAt.seconds)",
            "--expect-pcr", "0=\(v.expected.pcrs["0"]!)", "--expect-pcr", "8=\(v.expected.pcrs["8"]!)",
        ])
        #expect(result.status == 0, "\(result.stderrText)")
        #expect(result.stdoutText.contains("VERIFIED"))
        #expect(result.stdoutText.contains(v.expected.module_id))
        #expect(result.stdoutText.contains("PCR0 : \(v.expected.pcrs["0"]!)"))
        #expect(result.stdoutText.contains(v.expected.nonce_hex!))
    }

    /// A file that cannot be read is a usage error naming which one: the document or the root.
    @Test func anUnreadableFileIsNamed() throws {
        let v = NitroVector.production
        let noRoot = try run(["attestation", "verify", docPath(v), "--root", "/nonexistent/root.pem"])
        #expect(noRoot.status == 2)
        #expect(noRoot.stderrText.contains("cannot read the trusted root --root /nonexistent/root.pem"), "\(noRoot.stderrText)")
        let noDocument = try run(["attestation", "verify", "/nonexistent/doc.cose", "--root", rootPath])
        #expect(noDocument.status == 2)
        #expect(noDocument.stderrText.contains("cannot read the attestation document /nonexistent/doc.cose"), "\(noDocument.stderrText)")
        // Reported like every usage error of the CLI: the command's help named, JSON with --json.
        #expect(noRoot.stderrText.contains("See 'cleanroom attestation verify --help'"), "\(noRoot.stderrText)")
        let badNonce = try run(["attestation", "verify", docPath(v), "--root", rootPath, "--nonce", "zz", "--json"])
        #expect(badNonce.status == 2)
        #expect(badNonce.stdoutText == #"{"error":{"code":"usage","message":"--nonce is not hex"}}"# + "\n", "\(badNonce.stdoutText)")
        let badPCR = try run(["enclave", "measure", docPath(v), "--pcr1", "zz"])
        #expect(badPCR.status == 2)
        #expect(badPCR.stderrText.hasPrefix("Error: --pcr1 must be 96 hex digits"), "\(badPCR.stderrText)")
        #expect(badPCR.stderrText.contains("See 'cleanroom enclave measure --help'"), "\(badPCR.stderrText)")
    }

    @Test func verifyExitsOneWithTheFailingCheck() throws {
        let v = NitroVector.production
        let at = ["--at", "\(v.verifyAt.seconds)"]
        // Now (years later): the leaf has expired.
        let expired = try run(["attestation", "verify", docPath(v), "--root", rootPath])
        #expect(expired.status == 1)
        #expect(expired.stderrText.contains("attestation.certificate_expired"))
        // A PCR that does not match.
        let wrongPCR = try run(
            ["attestation", "verify", docPath(v), "--root", rootPath] + at
                + ["--expect-pcr", "0=" + String(repeating: "ab", count: 48)]
        )
        #expect(wrongPCR.status == 1)
        #expect(wrongPCR.stderrText.contains("attestation.pcr_mismatch"))
        // Debug mode refused unless allowed.
        let d = NitroVector.debug
        let debugAt = ["--at", "\(d.verifyAt.seconds)"]
        let refused = try run(["attestation", "verify", docPath(d), "--root", rootPath] + debugAt)
        #expect(refused.status == 1)
        #expect(refused.stderrText.contains("attestation.debug_mode_refused"))
        let allowed = try run(["attestation", "verify", docPath(d), "--root", rootPath, "--allow-debug"] + debugAt)
        #expect(allowed.status == 0)
        // A tampered document.
        let dir = try TestEnvironment.temporaryDirectory("cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        var tampered = v.bytes
        tampered[tampered.count - 5] ^= 1
        let tamperedPath = dir.appendingPathComponent("tampered.cose").path
        try Data(tampered).write(to: URL(fileURLWithPath: tamperedPath))
        let bad = try run(["attestation", "verify", tamperedPath, "--root", rootPath] + at)
        #expect(bad.status == 1)
        #expect(bad.stderrText.contains("cose.signature_invalid"))
        // Garbage input.
        let garbagePath = dir.appendingPathComponent("garbage").path
        try Data("hello".utf8).write(to: URL(fileURLWithPath: garbagePath))
        let garbage = try run(["attestation", "verify", garbagePath, "--root", rootPath] + at)
        #expect(garbage.status == 1)
        #expect(garbage.stderrText.contains("attestation.malformed_encoding"))
    }

    @Test func verifyAcceptsBase64AndPrintsJSON() throws {
        let v = NitroVector.indefinite
        let dir = try TestEnvironment.temporaryDirectory("cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("doc.b64").path
        try (Data(v.bytes).base64EncodedString(options: .lineLength64Characters) + "\n").write(
            toFile: path,
            atomically: true,
            encoding: .utf8
        )
        let result = try run([
            "attestation", "verify", path, "--root", rootPath, "--at", "\(v.verifyAt.seconds)", "--json",
        ])
        #expect(result.status == 0, "\(result.stderrText)")
        let object = try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any]
        #expect(object?["verified"] as? Bool == true)
        #expect(object?["module_id"] as? String == v.expected.module_id)
        #expect((object?["pcrs"] as? [String: String])?["0"] == v.expected.pcrs["0"])
        #expect((object?["user_data"] as? [String: String])?["hex"] == v.expected.user_data_hex)
        #expect(object?["nonce"] is NSNull)
        let failed = try run(["attestation", "verify", path, "--root", rootPath, "--json"])
        #expect(failed.status == 1)
        let failure = try JSONSerialization.jsonObject(with: failed.stdout) as? [String: Any]
        #expect(failure?["verified"] as? Bool == false)
    }

    @Test func unusableArgumentsExitTwo() throws {
        let v = NitroVector.production
        #expect(try run(["attestation", "verify", docPath(v), "--root", "/nonexistent.pem"]).status == 2)
        #expect(try run(["attestation", "verify", docPath(v), "--root", docPath(v)]).status == 2)
        #expect(try run(["attestation", "verify", docPath(v), "--root", rootPath, "--expect-pcr", "0=zz"]).status == 2)
        #expect(
            try run([
                "attestation", "verify", docPath(v), "--root", rootPath, "--expect-pcr",
                "40=" + String(repeating: "00", count: 48),
            ]).status == 2
        )
    }

    @Test func measurePrintsPCR0AsTheExecutablesSHA384() throws {
        let dir = try TestEnvironment.temporaryDirectory("cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let exe = dir.appendingPathComponent("enclave").path
        try Data("some enclave bytes".utf8).write(to: URL(fileURLWithPath: exe))
        let result = try run(["enclave", "measure", exe])
        #expect(result.status == 0)
        #expect(
            result.stdoutText.contains(
                "PCR0: " + Hex.encode(HashFunction.sha384.hash(Array("some enclave bytes".utf8)))
            )
        )
        #expect(result.stdoutText.contains("PCR1: " + String(repeating: "0", count: 96)))
        let pcr2 = String(repeating: "ab", count: 48)
        let json = try run(["enclave", "measure", exe, "--pcr2", pcr2, "--json"])
        let object = try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any]
        #expect((object?["Measurements"] as? [String: String])?["PCR2"] == pcr2)
        #expect(try run(["enclave", "measure", dir.appendingPathComponent("missing").path]).status == 1)
    }

    @Test func aDevelopmentDocumentVerifiesWithTheDevelopmentRootFile() throws {
        let dir = try TestEnvironment.temporaryDirectory("cli")
        defer { try? FileManager.default.removeItem(at: dir) }
        let exe = try TestEnvironment.executable("cleanroom")
        let attestor = try DevelopmentAttestor.open(dataDirectory: dir.path, enclaveExecutable: exe)
        let docPath = dir.appendingPathComponent("dev.cose").path
        try Data(try attestor.attestationDocument(publicKey: nil, userData: [1], nonce: [2])).write(
            to: URL(fileURLWithPath: docPath)
        )
        let measured = try run(["enclave", "measure", exe])
        #expect(measured.stdoutText.contains("PCR0: " + Hex.encode(attestor.measurements.pcr0)))
        let ok = try run([
            "attestation", "verify", docPath, "--root", attestor.ca.rootCertificatePath,
            "--expect-pcr", "0=" + Hex.encode(attestor.measurements.pcr0), "--max-age", "600",
        ])
        #expect(ok.status == 0, "\(ok.stderrText)")
        #expect(ok.stdoutText.contains("DEVELOPMENT"))
        let aws = try run(["attestation", "verify", docPath, "--root", rootPath])
        #expect(aws.status == 1)
        #expect(aws.stderrText.contains("attestation.untrusted_chain"))
    }
}
