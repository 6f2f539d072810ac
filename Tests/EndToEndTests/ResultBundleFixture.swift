import Attestation
import CleanRoom
import Crypto
import Enclave
import Envelope
import Foundation
import TestSupport

/// A genuine verification bundle, built with the real pieces a job uses — the development attestor
/// and CA, the enclave's receipt signer, P-256 approvals over the approval message, and outputs
/// encrypted with the raw RSA keyring to the recipient's result key — laid out as
/// `cleanroom output download` writes it. Tests then tamper with one part and run `cleanroom verify`.
struct ResultBundleFixture {
    let root: URL
    /// The bundle folder (manifest, policy, approvals, receipt, alpha's ciphertexts).
    let bundle: URL
    /// CLEANROOM_HOME of the recipient party `alpha` (its result key in keys/default/).
    let home: URL
    /// The development root that signed the attestation, and an unrelated one.
    let developmentRoot: URL
    let otherRoot: URL
    let policyDigest: String
    let jobID = "job-0123456789abcdef"
    let model = Array(#"{"learner":{"gradient_booster":{"name":"gbtree"}},"version":[2,1,0]}"#.utf8)
    let metrics = Array(#"{"auc":0.8123,"logloss":0.41,"rows":{"train":900,"validation":300}}"#.utf8)
    static let parties = ["alpha", "beta", "gamma"]

    /// `operatorApprovedForAlpha`: the operator swapped alpha's approval key before the proposal and
    /// approved in its name, so the policy and the approval carry a key that is not the one on
    /// alpha's machine (everything else is genuine).
    /// `policyExpiresAt`: the policy's `constraints.expiresAt` (by default a year from now).
    init(operatorApprovedForAlpha: Bool = false, policyExpiresAt: String? = nil) async throws {
        let policyExpiresAt = policyExpiresAt ?? RFC3339.format(Int64(Date().timeIntervalSince1970) + 365 * 86_400)
        root = try TestEnvironment.temporaryDirectory("result-bundle")
        bundle = root.appendingPathComponent("bundle")
        home = root.appendingPathComponent("home")
        try FileManager.default.createDirectory(at: bundle, withIntermediateDirectories: true)

        // The parties' keys: approval keys for all, a result key for the recipient alpha.
        var signing: [String: P256.Signing.PrivateKey] = [:]
        for party in Self.parties { signing[party] = try P256.Signing.PrivateKey() }
        let resultKey = try RSA.PrivateKey(bits: 2048)
        let keyFolder = home.appendingPathComponent("keys/default")
        try FileManager.default.createDirectory(at: keyFolder, withIntermediateDirectories: true)
        try Data(try resultKey.pemRepresentation.copyBytes()).write(to: keyFolder.appendingPathComponent("result-key.pem"))
        let alphasOwn = operatorApprovedForAlpha ? try P256.Signing.PrivateKey() : signing["alpha"]!
        try Data(alphasOwn.pemRepresentation.copyBytes()).write(to: keyFolder.appendingPathComponent("signing-key.pem"))

        // The development CA that signs the attestation, and another one.
        let ca = try DevelopmentCA.openOrCreate(dataDirectory: root.appendingPathComponent("server").path)
        let other = try DevelopmentCA.openOrCreate(dataDirectory: root.appendingPathComponent("other-server").path)
        developmentRoot = URL(fileURLWithPath: ca.rootCertificatePath)
        otherRoot = URL(fileURLWithPath: other.rootCertificatePath)
        let measurements = DevelopmentMeasurements(pcr0: SHA384.hash(Array("cleanroom-enclave build 42".utf8)))

        // The policy, in canonical form.
        let zeros = String(repeating: "0", count: 96)
        var parties: [[String: Any]] = []
        for party in Self.parties {
            let key = try signing[party]!.publicKey
            var entry: [String: Any] = [
                "id": party, "signingKey": try key.pemRepresentation,
                "signingKeyFingerprint": Hex.encode(SHA256.hash(try key.derRepresentation)),
            ]
            if party == "alpha" { entry["resultKey"] = try resultKey.publicKey.pemRepresentation }
            parties.append(entry)
        }
        let policyObject: [String: Any] = [
            "version": 1, "name": "fixture collaboration", "parties": parties,
            "datasets": Self.parties.map { party -> [String: Any] in
                ["id": "ds-\(party)", "owner": party, "columns": [["name": "id", "type": "string"], ["name": "x", "type": "float"]]]
            },
            "join": ["type": "inner", "key": "id"],
            "training": [
                "algorithm": "logistic_regression", "label": "x", "features": ["x"],
                "validation": ["fraction": 0.25, "seed": 7],
            ],
            "enclave": ["measurements": [["pcr0": Hex.encode(measurements.pcr0), "pcr1": zeros, "pcr2": zeros]], "allowDebug": false],
            "outputs": [
                ["recipient": "alpha", "artifacts": ["model", "metrics"]],
                ["recipient": "beta", "artifacts": ["metrics"]],
                ["recipient": "gamma", "artifacts": ["metrics"]],
            ],
            "constraints": ["expiresAt": policyExpiresAt, "maxRuns": 1],
        ]
        let canonical = CanonicalJSON.string(try JSONParser.parse(Array(try JSONSerialization.data(withJSONObject: policyObject))))
        policyDigest = Hex.encode(SHA256.hash(Array(canonical.utf8)))
        try Data(canonical.utf8).write(to: bundle.appendingPathComponent("policy.json"))

        // Every party approves the digest.
        let expiresAt = Int64(Date().timeIntervalSince1970) + 86400
        let entries = try Self.parties.map { party in
            let message = ApprovalMessage(policyDigest: policyDigest, partyId: party, expiresAt: expiresAt)
            return ApprovalBundle.Entry(
                partyId: party, expiresAt: expiresAt,
                signature: Data(try signing[party]!.signature(for: message.bytes).derRepresentation).base64EncodedString(),
                signingKey: try signing[party]!.publicKey.pemRepresentation)
        }
        let approvalBundle = try ApprovalBundle(policyDigest: policyDigest, approvals: entries).encoded()
        try Data(approvalBundle).write(to: bundle.appendingPathComponent("approval-bundle.json"))

        // The outputs, encrypted to their recipients' result keys.
        let keyring = try RawRSAKeyring(keyNamespace: "cleanroom-result", keyName: "alpha", publicKey: resultKey.publicKey)
        let modelCiphertext = try await MessageEncryptor.encrypt(model, keyring: keyring, frameLength: 64)
        let metricsCiphertext = try await MessageEncryptor.encrypt(metrics, keyring: keyring)
        try Data(modelCiphertext).write(to: bundle.appendingPathComponent("model.esdk"))
        try Data(metricsCiphertext).write(to: bundle.appendingPathComponent("metrics.esdk"))
        let othersMetrics = Array("ciphertext for another party".utf8)

        // The enclave's receipt, its key bound into a development attestation document.
        let receiptKey = try P256.Signing.PrivateKey()
        let userData = AttestationBinding.userData(
            policyDigest: Hex.decode(policyDigest)!, jobID: jobID, receiptPublicKey: try receiptKey.publicKey.derRepresentation)
        let attestor = DevelopmentAttestor(ca: ca, measurements: measurements)
        let document = try attestor.attestationDocument(publicKey: nil, userData: userData, nonce: nil)
        let receipt = Receipt(
            jobID: jobID, policyDigest: policyDigest, approvalBundleDigest: Hex.encode(SHA256.hash(approvalBundle)),
            development: true, issuedAt: Int64(Date().timeIntervalSince1970),
            outputs: [
                .init(name: "model", recipient: "alpha", ciphertextSHA256: Hex.encode(SHA256.hash(modelCiphertext)), byteCount: Int64(modelCiphertext.count)),
                .init(name: "metrics", recipient: "alpha", ciphertextSHA256: Hex.encode(SHA256.hash(metricsCiphertext)), byteCount: Int64(metricsCiphertext.count)),
                .init(name: "metrics", recipient: "beta", ciphertextSHA256: Hex.encode(SHA256.hash(othersMetrics)), byteCount: 28),
                .init(name: "metrics", recipient: "gamma", ciphertextSHA256: Hex.encode(SHA256.hash(othersMetrics)), byteCount: 28),
            ])
        let signed = try SignedReceipt.sign(receipt, with: receiptKey, attestationDocument: document)
        try Data(try signed.encoded()).write(to: bundle.appendingPathComponent("receipt.json"))

        let manifest: [String: Any] = [
            "format": "cleanroom-verification-bundle-v1", "job": jobID, "collaboration": "collab-1", "party": "alpha",
            "policyDigest": policyDigest,
            "outputs": [
                ["id": "out-1", "name": "model", "recipient": "alpha", "sha256": Hex.encode(SHA256.hash(modelCiphertext)),
                 "size": modelCiphertext.count, "ciphertext": "model.esdk", "plaintext": "model.json"],
                ["id": "out-2", "name": "metrics", "recipient": "alpha", "sha256": Hex.encode(SHA256.hash(metricsCiphertext)),
                 "size": metricsCiphertext.count, "ciphertext": "metrics.esdk", "plaintext": "metrics.json"],
            ],
        ]
        try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted]).write(to: bundle.appendingPathComponent("manifest.json"))
    }

    func file(_ name: String) -> URL { bundle.appendingPathComponent(name) }

    /// Flips one bit of a bundle file at `offset` (negative: from the end).
    func flipBit(_ name: String, at offset: Int) throws {
        var bytes = Array(try Data(contentsOf: file(name)))
        let index = offset >= 0 ? offset : bytes.count + offset
        bytes[index] ^= 0x01
        try Data(bytes).write(to: file(name))
    }

    /// Runs `cleanroom ARGS` on a dedicated thread (never blocking the test pool); the caller checks the status.
    func cli(_ arguments: [String]) async throws -> ProcessResult {
        let home = self.home.path
        return try await offPool {
            try CLI.run("cleanroom", arguments, environment: ["CLEANROOM_HOME": home], expectStatus: nil)
        }
    }

    func remove() { try? FileManager.default.removeItem(at: root) }
}
