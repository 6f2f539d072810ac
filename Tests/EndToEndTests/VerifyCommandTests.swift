import Foundation
import TestSupport
import Testing

/// `cleanroom verify` and `cleanroom output decrypt` (issue #8) against bundles built with the real
/// receipt signer, development attestor and raw RSA keyring, each tampered in one place.
@Suite struct VerifyCommandTests {
    @Test func genuineBundleVerifiesAndIsMarkedDevelopment() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        let result = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.developmentRoot.path])
        #expect(result.status == 0, "\(result.stderrText)")
        #expect(result.stdoutText.contains("VERIFIED (DEVELOPMENT"))
        #expect(result.stdoutText.contains("all 3 parties approved"))
        let json = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.developmentRoot.path, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])
        #expect(object["verified"] as? Bool == true)
        #expect(object["development"] as? Bool == true)
        #expect(object["job"] as? String == fixture.jobID)
        #expect(object["policyDigest"] as? String == fixture.policyDigest)
    }

    /// The decrypted files are checked too, with the party's result key: each must be exactly its
    /// ciphertext's decryption. An adversarial review found `verify` saying VERIFIED over an edited
    /// `metrics.json`, since only the ciphertexts were hashed.
    @Test func decryptedFilesAreCheckedAgainstTheirCiphertextsWithThePartysKey() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        try Data(fixture.model).write(to: fixture.file("model.json"))
        try Data(fixture.metrics).write(to: fixture.file("metrics.json"))
        let profiles = fixture.home.appendingPathComponent("profiles")
        try FileManager.default.createDirectory(at: profiles, withIntermediateDirectories: true)
        try Data(#"{"partyId":"alpha"}"#.utf8).write(to: profiles.appendingPathComponent("default.json"))
        let root = fixture.developmentRoot.path

        let good = try await fixture.cli(["verify", fixture.bundle.path, "--root", root])
        #expect(good.status == 0, "\(good.stderrText)")
        #expect(good.stdoutText.contains("✓ decrypted    model.json, metrics.json are the decryptions of their ciphertexts"), "\(good.stdoutText)")
        #expect(!good.stdoutText.contains("!"), "\(good.stdoutText)")
        let json = try await fixture.cli(["verify", fixture.bundle.path, "--root", root, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])
        let outputs = try #require(object["outputs"] as? [[String: Any]])
        #expect(outputs.map { $0["plaintext"] as? String } == ["verified", "verified"], "\(outputs)")
        #expect(outputs.map { $0["ciphertextFile"] as? String } == ["model.esdk", "metrics.esdk"])

        // Without the party's key nothing is claimed about the decrypted files.
        let elsewhere = fixture.root.appendingPathComponent("no-keys")
        let keyless = try await fixture.cli(["verify", fixture.bundle.path, "--root", root, "--home", elsewhere.path])
        #expect(keyless.status == 0, "\(keyless.stderrText)")
        #expect(keyless.stdoutText.contains("! decrypted files not checked (no result key in \(elsewhere.path)/keys/default"), "\(keyless.stdoutText)")
        #expect(keyless.stdoutText.contains("): model.json, metrics.json"), "\(keyless.stdoutText)")
        #expect(keyless.stdoutText.hasSuffix("; only what is marked ✓ was checked\n"), "\(keyless.stdoutText)")
        let keylessJSON = try await fixture.cli(["verify", fixture.bundle.path, "--root", root, "--home", elsewhere.path, "--json"])
        let keylessOutputs = (try JSONSerialization.jsonObject(with: keylessJSON.stdout) as? [String: Any])?["outputs"] as? [[String: Any]]
        #expect(keylessOutputs?.map { $0["plaintext"] as? String } == ["not checked", "not checked"], "\(keylessJSON.stdoutText)")

        // An edited decrypted file fails, naming it.
        try Data(#"{"metrics":"fake"}"#.utf8).write(to: fixture.file("metrics.json"))
        let edited = try await fixture.cli(["verify", fixture.bundle.path, "--root", root])
        #expect(edited.status == 1)
        #expect(
            edited.stderrText.contains("verification FAILED at decrypted: output.plaintext_mismatch: metrics.json is not the decryption of metrics.esdk"),
            "\(edited.stderrText)")
        #expect(!edited.stdoutText.contains("VERIFIED"))
    }

    /// Outputs of the party missing from the bundle, and files that are not the bundle's (another
    /// job's results copied in, say), are named as not checked instead of passed over.
    @Test func whatTheBundleLacksOrHoldsBesidesIsNamedAsNotChecked() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        let url = fixture.file("manifest.json")
        var manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        manifest["outputs"] = (manifest["outputs"] as! [[String: Any]]).filter { $0["name"] as? String == "metrics" }
        try JSONSerialization.data(withJSONObject: manifest).write(to: url)
        try Data("id,score\n1,0.5\n".utf8).write(to: fixture.file("scores-own.csv"))

        let result = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.developmentRoot.path])
        #expect(result.status == 0, "\(result.stderrText)")
        #expect(result.stdoutText.contains("! your outputs model are in the receipt but not in this bundle (not checked)"), "\(result.stdoutText)")
        #expect(
            result.stdoutText.contains("that are not part of this bundle (not checked): model.esdk, scores-own.csv"), "\(result.stdoutText)")
        let json = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.developmentRoot.path, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])
        #expect(object["notInBundle"] as? [String] == ["model"])
        #expect(object["uncheckedFiles"] as? [String] == ["model.esdk", "scores-own.csv"])
    }

    /// A decrypted file missing from the bundle is said to be missing, in the text as in `--json`
    /// (a review deleted model.json and the text report mentioned nothing).
    @Test func aMissingDecryptedFileIsNamed() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        try Data(fixture.metrics).write(to: fixture.file("metrics.json"))  // and no model.json
        let result = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.developmentRoot.path])
        #expect(result.status == 0, "\(result.stderrText)")
        #expect(result.stdoutText.contains("! decrypted files missing (only their ciphertexts were checked"), "\(result.stdoutText)")
        #expect(result.stdoutText.contains("): model.json\n"), "\(result.stdoutText)")
        let json = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.developmentRoot.path, "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])
        let model = (object["outputs"] as? [[String: Any]])?.first { $0["name"] as? String == "model" }
        #expect(model?["plaintext"] as? String == "absent")
    }

    /// The approvals are checked with the keys the policy names, which the server fills in. An
    /// operator that swapped a party's approval key and approved in its name makes a bundle whose
    /// every signature holds; the party's own `verify` must not certify it (a review got VERIFIED,
    /// "all 3 parties approved", for a party that approved nothing).
    @Test func anApprovalInYourNameWithAnotherKeyFails() async throws {
        let fixture = try await ResultBundleFixture(operatorApprovedForAlpha: true)
        defer { fixture.remove() }
        let profiles = fixture.home.appendingPathComponent("profiles")
        try FileManager.default.createDirectory(at: profiles, withIntermediateDirectories: true)
        try Data(#"{"partyId":"alpha"}"#.utf8).write(to: profiles.appendingPathComponent("default.json"))
        let result = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.developmentRoot.path])
        #expect(result.status == 1)
        #expect(
            result.stderrText.contains("verification FAILED at approvals: approvals.not_your_keys: the policy names a different approval key for alpha than this machine's"),
            "\(result.stderrText)")
        #expect(result.stderrText.contains("the approval in your name is not yours"), "\(result.stderrText)")
        #expect(!result.stdoutText.contains("VERIFIED"))
        // Without the party's approval key at hand, the same bundle passes, saying what was not checked.
        let elsewhere = fixture.root.appendingPathComponent("result-key-only")
        try FileManager.default.createDirectory(at: elsewhere.appendingPathComponent("keys/default"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: fixture.home.appendingPathComponent("keys/default/result-key.pem"),
            to: elsewhere.appendingPathComponent("keys/default/result-key.pem"))
        try FileManager.default.copyItem(at: fixture.home.appendingPathComponent("profiles"), to: elsewhere.appendingPathComponent("profiles"))
        let partial = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.developmentRoot.path, "--home", elsewhere.path])
        #expect(partial.status == 0, "\(partial.stderrText)")
        #expect(partial.stdoutText.contains("! your own approval was not checked against your keys (no approval key beside your result key)"), "\(partial.stdoutText)")
    }

    @Test func tamperedReceiptFailsTheSignatureCheck() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        // Re-encode the receipt with one output's hash changed: still well-formed, no longer signed.
        let url = fixture.file("receipt.json")
        var receipt = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        var payload = String(decoding: Data(base64Encoded: receipt["payload"] as! String)!, as: UTF8.self)
        payload = payload.replacingOccurrences(of: "\"development\":true", with: "\"development\":false")
        receipt["payload"] = Data(payload.utf8).base64EncodedString()
        try JSONSerialization.data(withJSONObject: receipt).write(to: url)

        let result = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.developmentRoot.path])
        #expect(result.status == 1)
        #expect(result.stderrText.contains("verification FAILED at receipt: receipt.bad_signature"), "\(result.stderrText)")
        #expect(!result.stdoutText.contains("VERIFIED"))
    }

    @Test func tamperedOutputCiphertextIsNamed() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        try fixture.flipBit("model.esdk", at: -5)
        let result = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.developmentRoot.path, "--json"])
        #expect(result.status == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        #expect(object["verified"] as? Bool == false)
        #expect(object["check"] as? String == "outputs")
        #expect(object["code"] as? String == "receipt.output_mismatch")
        #expect((object["message"] as? String)?.contains("model.esdk (output model)") == true)
    }

    @Test func attestationUnderAnotherRootIsRefused() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        let wrong = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.otherRoot.path])
        #expect(wrong.status == 1)
        #expect(wrong.stderrText.contains("verification FAILED at attestation: receipt.attestation_failed"), "\(wrong.stderrText)")
        #expect(wrong.stderrText.contains("against root cleanroom-development") || wrong.stderrText.contains("against root"))
        // The default root is AWS's: a development document does not chain to it, and the error says what to pass.
        let aws = try await fixture.cli(["verify", fixture.bundle.path])
        #expect(aws.status == 1)
        #expect(aws.stderrText.contains("aws-nitro-enclaves-root-g1"), "\(aws.stderrText)")
        #expect(aws.stderrText.contains("--root DATA_DIR/development-ca/root.pem"), "\(aws.stderrText)")
    }

    @Test func bundleMissingAnApprovalIsRefused() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        let url = fixture.file("approval-bundle.json")
        var bundle = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        bundle["approvals"] = (bundle["approvals"] as! [[String: Any]]).filter { $0["partyId"] as? String != "gamma" }
        try JSONSerialization.data(withJSONObject: bundle, options: [.sortedKeys]).write(to: url)

        let result = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.developmentRoot.path])
        #expect(result.status == 1)
        #expect(
            result.stderrText.contains("verification FAILED at approvals: enclave.approval_missing: no valid approval from: gamma"),
            "\(result.stderrText)")
    }

    @Test func approvalBundleOtherThanTheReceiptsIsRefused() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        // Same approvals, different bytes (pretty-printed): valid, but not the bundle the enclave signed for.
        let url = fixture.file("approval-bundle.json")
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
        try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys]).write(to: url)
        let result = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.developmentRoot.path])
        #expect(result.status == 1)
        #expect(result.stderrText.contains("receipt.approval_bundle_mismatch"), "\(result.stderrText)")
    }

    /// A job that ran after its policy expired (by the attested time) is not verified, whatever
    /// the enclave's clock said.
    @Test func aJobAttestedAfterItsPolicyExpiredFails() async throws {
        let fixture = try await ResultBundleFixture(policyExpiresAt: "2026-01-01T00:00:00Z")
        defer { fixture.remove() }
        let result = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.developmentRoot.path])
        #expect(result.status == 1)
        #expect(
            result.stderrText.contains("verification FAILED at policy: policy.expired: the policy expired at 2026-01-01T00:00:00Z"),
            "\(result.stderrText)")
    }

    @Test func editedPolicyIsRefused() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        let url = fixture.file("policy.json")
        let text = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "\"maxRuns\":1", with: "\"maxRuns\":9")
        try Data(text.utf8).write(to: url)
        let result = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.developmentRoot.path])
        #expect(result.status == 1)
        #expect(result.stderrText.contains("policy.digest_mismatch"), "\(result.stderrText)")
    }

    @Test func incompleteBundleIsAUsageError() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        try FileManager.default.removeItem(at: fixture.file("receipt.json"))
        let result = try await fixture.cli(["verify", fixture.bundle.path, "--root", fixture.developmentRoot.path])
        #expect(result.status == 2)
        #expect(result.stderrText.contains("the bundle has no receipt.json"), "\(result.stderrText)")
    }

    @Test func decryptWritesOnlyAuthenticatedPlaintext() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        let out = fixture.root.appendingPathComponent("model.json")
        let good = try await fixture.cli(["output", "decrypt", fixture.file("model.esdk").path, "--out", out.path, "--party", "alpha"])
        #expect(good.status == 0, "\(good.stderrText)")
        #expect(Array(try Data(contentsOf: out)) == fixture.model)
        try FileManager.default.removeItem(at: out)

        // A flipped bit in the last frame: the earlier frames authenticate, yet nothing may be written.
        try fixture.flipBit("model.esdk", at: -3)
        let bad = try await fixture.cli(["output", "decrypt", fixture.file("model.esdk").path, "--out", out.path, "--party", "alpha"])
        #expect(bad.status == 1)
        #expect(bad.stderrText.contains("does not decrypt and authenticate"), "\(bad.stderrText)")
        #expect(bad.stderrText.contains("nothing written"))
        #expect(!FileManager.default.fileExists(atPath: out.path))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: fixture.root.path).filter { $0.contains("model.json") }
        #expect(leftovers.isEmpty, "temporary files left: \(leftovers)")

        // Someone else's key cannot open it either.
        let other = try await fixture.cli(["output", "decrypt", fixture.file("metrics.esdk").path, "--out", out.path, "--party", "beta"])
        #expect(other.status == 1)
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }
}
