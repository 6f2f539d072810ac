import Attestation
import CleanRoom
import Crypto
import Enclave
import Envelope
import Foundation
import TestSupport
import Testing
@testable import Server

/// Stands in for KMS `Decrypt` with `Recipient` (the local KMS of the AWS issue is not wired in
/// yet): it holds each dataset's data key, verifies the attestation document it is given against
/// the development root, and encrypts the key to the document's public key as CMS — exactly the
/// answer KMS gives. The runner only ever sees the CMS.
final class AttestingKeyStore: KeyReleaseService, @unchecked Sendable {
    let keys: [String: SecureBytes]
    let verifier: AttestationVerifier
    let allowedPCR0: [UInt8]
    let lock = NSLock()
    var released: [String] = []

    init(keys: [String: SecureBytes], verifier: AttestationVerifier, allowedPCR0: [UInt8]) {
        self.keys = keys
        self.verifier = verifier
        self.allowedPCR0 = allowedPCR0
    }

    func release(dataset: JobPlan.Dataset, attestationDocument: [UInt8]) throws(JobFailure) -> KeyRelease {
        do {
            let verified = try verifier.verify(attestationDocument, expectations: AttestationExpectations(requirePublicKey: true))
            // The key policy's kms:RecipientAttestation:ImageSha384 condition.
            guard verified.pcrs[0] == allowedPCR0 else { throw JobFailure(code: "kms.access_denied", message: "ImageSha384 condition failed") }
            let recipient = try RSA.PublicKey(derRepresentation: verified.publicKey!)
            let cms = try CMS.EnvelopedData.encrypt(keys[dataset.id]!, recipientKey: recipient, subjectKeyIdentifier: [7, 7, 7])
            lock.withLock { released.append(dataset.id) }
            return KeyRelease(datasetID: dataset.id, encryptedDataKeyIndex: 0, ciphertextForRecipient: cms)
        } catch let error as JobFailure {
            throw error
        } catch {
            throw JobFailure(code: "kms.invalid_attestation", message: "\(error)")
        }
    }
}

/// Encrypts with a data key the test knows, under an `aws-kms` EDK (as a KMS keyring would).
struct TestKMSKeyring: Keyring {
    let dataKey: SecureBytes
    func onEncrypt(_ materials: EncryptionMaterials) async throws -> EncryptionMaterials {
        var out = materials
        out.plaintextDataKey = dataKey
        out.encryptedDataKeys.append(
            EncryptedDataKey(providerID: "aws-kms", providerInfo: Array("arn:aws:kms:local:0:key/k".utf8), ciphertext: [1, 2, 3]))
        return out
    }
    func onDecrypt(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) async throws -> DecryptionMaterials {
        throw EnvelopeError(.noDecryptableDataKey, "test keyring")
    }
}

struct JobParty {
    let id: String
    let signingKey: P256.Signing.PrivateKey
    let resultKey: RSA.PrivateKey
    init(_ id: String) throws {
        self.id = id
        signingKey = try P256.Signing.PrivateKey()
        resultKey = try RSA.PrivateKey(bits: 3072)
    }
    var fingerprint: String { Hex.encode(SHA256.hash(try! signingKey.publicKey.derRepresentation)) }
}

/// A two-party vertical join run by the real `cleanroom-enclave` process.
final class JobWorld: @unchecked Sendable {
    let alpha: JobParty, beta: JobParty
    let directory: URL
    let attestor: DevelopmentAttestor
    let enclavePath: String
    var policy: [UInt8] = []
    var bundle: [UInt8] = []
    var data: [String: [UInt8]] = [:]
    var keys: [String: SecureBytes] = [:]
    /// The plaintext CSV of each dataset (to re-encrypt it another way).
    var csv: [String: String] = [:]
    var rows = 400
    /// The features as generated (id → x1, x2), to score the exported model independently.
    var features: [String: (Double, Double)] = [:]
    /// For a union: each party's rows (x1, x2, y) in file order.
    var unionRows: [String: [(Double, Double, Int)]] = [:]
    var validationFraction = 0.25
    /// The policy's training algorithm and hyperparameters, name and collaboration.
    var algorithm = "logistic_regression"
    var hyperparameters: [String: Any] = [:]
    var policyName = "job test"
    var collaborationID = "c"
    /// More binaries whose measurements the policy allows (besides `measuredBinary`).
    var alsoAllowedBinaries: [String] = []
    /// Extra arguments for the enclave process (e.g. `--checkpoint-every`).
    var enclaveArguments: [String] = []

    init(enclavePath: String? = nil) throws {
        alpha = try JobParty("alpha")
        beta = try JobParty("beta")
        directory = try TestEnvironment.temporaryDirectory("job-world")
        self.enclavePath = try enclavePath ?? TestEnvironment.executable("cleanroom-enclave")
        attestor = try DevelopmentAttestor.open(dataDirectory: directory.path, enclaveExecutable: self.enclavePath)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    /// The policy allows the measurement of `measuredBinary` (default: the enclave itself).
    /// With `union`, each party holds whole rows (`x1,x2,y`) — alpha `union.alpha` of them, beta
    /// `union.beta` (noisier labels) — stacked by a `union` join; `unionRows` keeps them in file order.
    func prepare(
        measuredBinary: String? = nil, betaCSV: String? = nil, minRows: Int = 10, union: (alpha: Int, beta: Int)? = nil
    ) async throws {
        let measurement = try measuredBinary.map { try DevelopmentMeasurements(executableAt: $0) } ?? attestor.measurements
        let pcrs = measurement.pcrs
        var alphaCSV = "id,y\n", generatedBeta = "id,x1,x2\n"
        var random = SystemRandomNumberGenerator()
        if let union {
            alphaCSV = "x1,x2,y\n"
            generatedBeta = "x1,x2,y\n"
            for (party, count, noise) in [("alpha", union.alpha, 0.5), ("beta", union.beta, 2.0)] {
                var rows: [(Double, Double, Int)] = []
                for _ in 0..<count {
                    let x1 = Double.random(in: -2...2, using: &random), x2 = Double.random(in: -2...2, using: &random)
                    let y = x1 + 0.5 * x2 + Double.random(in: -noise...noise, using: &random) > 0 ? 1 : 0
                    rows.append((x1, x2, y))
                    if party == "alpha" { alphaCSV += "\(x1),\(x2),\(y)\n" } else { generatedBeta += "\(x1),\(x2),\(y)\n" }
                }
                unionRows[party] = rows
            }
        } else {
            for i in 0..<rows {
                let x1 = Double.random(in: -2...2, using: &random), x2 = Double.random(in: -2...2, using: &random)
                let y = x1 + 0.5 * x2 + Double.random(in: -0.5...0.5, using: &random) > 0 ? 1 : 0
                alphaCSV += "c\(i),\(y)\n"
                features["c\(i)"] = (x1, x2)
                generatedBeta += "c\(i),\(x1),\(x2)\n"
            }
        }
        for (id, party, csv) in [("alpha-labels", alpha, alphaCSV), ("beta-features", beta, betaCSV ?? generatedBeta)] {
            let key = try SecureBytes(randomCount: 32)
            keys[id] = key
            self.csv[id] = csv
            let context = try EncryptionContext([
                ("cleanroom:dataset", id), ("cleanroom:party", party.id), ("cleanroom:owner-key", party.fingerprint),
            ])
            data[id] = try await MessageEncryptor.encrypt(Array(csv.utf8), keyring: TestKMSKeyring(dataKey: key), encryptionContext: context)
        }
        policyShape = (pcrs, minRows, union != nil)
        try approve()
    }

    private var policyShape: (pcrs: [Int: [UInt8]], minRows: Int, union: Bool) = ([:], 0, false)

    /// Makes the policy — naming the digests of the ciphertexts in `data` — and both approvals;
    /// call it again after replacing `data`.
    func approve() throws {
        let (pcrs, minRows, isUnion) = policyShape
        let union: Bool? = isUnion ? true : nil
        let digest = { (id: String) in Hex.encode(SHA256.hash(self.data[id]!)) }
        let unionColumns: [[String: Any]] = [["name": "x1", "type": "float"], ["name": "x2", "type": "float"], ["name": "y", "type": "integer"]]
        var document: [String: Any] = [
            "version": 1, "name": policyName,
            "parties": [alpha, beta].map { party in
                [
                    "id": party.id, "signingKey": try! party.signingKey.publicKey.pemRepresentation,
                    "signingKeyFingerprint": party.fingerprint, "resultKey": try! party.resultKey.publicKey.pemRepresentation,
                ]
            },
            "datasets": union != nil
                ? [
                    ["id": "alpha-labels", "owner": "alpha", "sha256": digest("alpha-labels"), "columns": unionColumns],
                    ["id": "beta-features", "owner": "beta", "sha256": digest("beta-features"), "columns": unionColumns],
                ]
                : [
                    ["id": "alpha-labels", "owner": "alpha", "sha256": digest("alpha-labels"),
                     "columns": [["name": "id", "type": "string"], ["name": "y", "type": "integer"]]],
                    ["id": "beta-features", "owner": "beta", "sha256": digest("beta-features"),
                     "columns": [["name": "id", "type": "string"], ["name": "x1", "type": "float"], ["name": "x2", "type": "float"]]],
                ],
            "join": union != nil ? ["type": "union"] : ["type": "inner", "key": "id"],
            "training": ["algorithm": algorithm, "label": "y", "features": ["x1", "x2"],
                         "validation": ["fraction": validationFraction, "seed": 7]],
            "enclave": ["measurements": ([pcrs] + (try alsoAllowedBinaries.map { try DevelopmentMeasurements(executableAt: $0).pcrs })).map { pcrs in
                            ["pcr0": Hex.encode(pcrs[0]!), "pcr1": Hex.encode(pcrs[1]!), "pcr2": Hex.encode(pcrs[2]!)]
                        },
                        "allowDebug": false],
            "outputs": [
                ["recipient": "alpha", "artifacts": ["model", "metrics", "scores:own"]],
                ["recipient": "beta", "artifacts": union != nil ? ["metrics", "scores:own"] : ["metrics"]],
            ],
            "constraints": ["minRowsPerParty": minRows, "minJoinedRows": minRows, "expiresAt": "2099-01-01T00:00:00Z", "maxRuns": 5],
        ]
        if !hyperparameters.isEmpty, var training = document["training"] as? [String: Any] {
            training["hyperparameters"] = hyperparameters
            document["training"] = training
        }
        policy = Array(try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys]))
        let policyDigest = try PolicyDocument(bytes: policy).digest
        let entries = try [alpha, beta].map { party in
            let message = ApprovalMessage(policyDigest: policyDigest, partyId: party.id, expiresAt: 4_102_444_800)
            return ApprovalBundle.Entry(
                partyId: party.id, expiresAt: 4_102_444_800,
                signature: Data(try party.signingKey.signature(for: message.bytes).derRepresentation).base64EncodedString(),
                signingKey: try party.signingKey.publicKey.pemRepresentation)
        }
        bundle = try ApprovalBundle(policyDigest: policyDigest, approvals: entries).encoded()
    }

    var plan: JobPlan {
        JobPlan(
            jobID: "job-\(UUID().uuidString.prefix(8).lowercased())", collaborationID: collaborationID, policy: policy,
            policyDigest: Hex.decode(try! PolicyDocument(bytes: policy).digest)!, approvalBundle: bundle,
            datasets: ["alpha-labels", "beta-features"].map { id in
                JobPlan.Dataset(
                    id: id, partyID: id.hasPrefix("alpha") ? "alpha" : "beta", objectKey: id,
                    ciphertextSHA256: SHA256.hash(data[id]!), byteCount: UInt64(data[id]!.count))
            })
    }

    var launcher: LocalEnclaveLauncher { launcher(executable: enclavePath) }

    /// A launcher for `executable`, measured by a development attestor under the same CA.
    func launcher(executable: String) -> LocalEnclaveLauncher {
        var configuration = LocalEnclaveLauncher.Configuration(executablePath: executable)
        configuration.extraArguments = ["--attestor", "development"] + enclaveArguments
        configuration.logPath = directory.appendingPathComponent("enclave.log").path
        configuration.terminateGrace = .milliseconds(500)
        let attestor = executable == enclavePath
            ? self.attestor : try! DevelopmentAttestor.open(dataDirectory: directory.path, enclaveExecutable: executable)
        configuration.attestor = { _ in attestor }
        return LocalEnclaveLauncher(configuration: configuration)
    }

    var verifier: AttestationVerifier {
        AttestationVerifier(trustedRoots: [attestor.trustedRoot], clock: { UnixTime.now() }, cache: nil)
    }

    func runner(sink: RecordingSink, keys keyStore: AttestingKeyStore? = nil, plan: JobPlan? = nil) -> (JobRunner, AttestingKeyStore) {
        let store = keyStore ?? AttestingKeyStore(keys: keys, verifier: verifier, allowedPCR0: attestor.measurements.pcr0)
        let runner = JobRunner(
            plan: plan ?? self.plan, launcher: launcher, gate: VerifyingAttestationGate(verifier: verifier), keys: store,
            source: MemorySource(data: data), sink: sink)
        return (runner, store)
    }

    func decrypt(_ output: [UInt8], as party: JobParty) async throws -> [UInt8] {
        let keyring = try RawRSAKeyring(
            keyNamespace: ResultKeyring.keyNamespace, keyName: party.id, privateKey: party.resultKey)
        return try await MessageDecryptor.decrypt(output, keyring: keyring).plaintext
    }
}

/// Processes named cleanroom-enclave that are children of this test process.
func enclaveChildren() -> [pid_t] {
    let me = getpid()
    return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }.filter { pid in
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
        else { return false }
        let name = stat[stat.index(after: open)..<close]
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return name.hasPrefix("cleanroom-encla") && fields.count > 2 && pid_t(fields[1]) == me
    }
}

@Suite(.serialized) struct JobWithEnclaveProcessTests {
    @Test func happyPathDeliversDecryptableOutputsAndAVerifiableReceipt() async throws {
        let world = try JobWorld()
        try await world.prepare()
        let sink = RecordingSink()
        let (runner, keys) = world.runner(sink: sink)
        let plan = runner.plan
        runner.run()
        #expect(runner.state == .succeeded, "\(String(describing: runner.failure))")
        #expect(sink.states == [.attesting, .running, .delivering, .succeeded])
        #expect(keys.released == ["alpha-labels", "beta-features"])
        #expect(sink.events.contains { $0.phase == "training" })

        let model = try await world.decrypt(try #require(sink.outputs["alpha/model"]), as: world.alpha)
        let json = try JSONSerialization.jsonObject(with: Data(model)) as? [String: Any]
        #expect(json?["learner"] != nil, "an XGBoost JSON model")
        let scores = String(decoding: try await world.decrypt(try #require(sink.outputs["alpha/scores:own"]), as: world.alpha), as: UTF8.self)
        #expect(scores.hasPrefix("id,score\n"))
        #expect(scores.split(separator: "\n").count == world.rows + 1)
        let metrics = try await world.decrypt(try #require(sink.outputs["beta/metrics"]), as: world.beta)
        let perParty = try #require(
            (try JSONSerialization.jsonObject(with: Data(metrics)) as? [String: Any])?["perParty"] as? [String: Any])
        #expect(perParty["join"] as? String == "inner")
        #expect((perParty["parties"] as? [Any])?.isEmpty == true, "an inner join has no per-party figures")
        #expect((perParty["note"] as? String)?.contains("every joined row combines the data of all parties") == true)
        // beta cannot open alpha's model.
        await #expect(throws: (any Error).self) { _ = try await world.decrypt(sink.outputs["alpha/model"]!, as: world.beta) }

        let verifier = world.verifier
        let receipt = try SignedReceipt(bytes: try #require(sink.receipt))
        let verified = try ReceiptVerifier(expectedPolicyDigest: Hex.encode(plan.policyDigest), expectedJobID: plan.jobID) { document in
            let doc = try verifier.verify(document, expectations: AttestationExpectations(maxAgeMilliseconds: nil))
            return AttestedFacts(userData: doc.userData ?? [], pcr0: doc.pcrs[0] ?? [], development: doc.isDevelopment)
        }.verify(
            receipt, approvalBundle: world.bundle,
            outputs: sink.outputs.map { key, bytes in
                let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
                return .init(name: parts[1], recipient: parts[0], sha256: SHA256.hash(bytes))
            })
        #expect(verified.checkedOutputs.count == 4)
        #expect(enclaveChildren().isEmpty, "no enclave process remains")

        // XGBoost (PyPI) loads the decrypted model and predicts what the enclave scored, to 1e-6.
        let modelFile = world.directory.appendingPathComponent("model.json")
        try Data(model).write(to: modelFile)
        var rowsCSV = "id,x1,x2,score\n"
        for line in scores.split(separator: "\n").dropFirst() {
            let parts = line.split(separator: ",")
            let (x1, x2) = try #require(world.features[String(parts[0])])
            rowsCSV += "\(parts[0]),\(x1),\(x2),\(parts[1])\n"
        }
        let rowsFile = world.directory.appendingPathComponent("rows.csv")
        try rowsCSV.write(to: rowsFile, atomically: true, encoding: .utf8)
        let check = try ProcessRunner.python(
            """
            import sys, csv, numpy as np, xgboost as xgb
            booster = xgb.Booster(model_file=sys.argv[1])
            rows = list(csv.DictReader(open(sys.argv[2])))
            X = np.array([[float(r['x1']), float(r['x2'])] for r in rows], dtype=np.float32)
            ours = np.array([float(r['score']) for r in rows])
            theirs = booster.predict(xgb.DMatrix(X, feature_names=['x1', 'x2']))
            print(len(rows), float(np.max(np.abs(ours - theirs))))
            """, [modelFile.path, rowsFile.path])
        #expect(check.status == 0, "\(check.stderrText)")
        let fields = check.stdoutText.split(separator: " ")
        #expect(fields.first.flatMap { Int($0) } == world.rows)
        let maxDifference = try #require(fields.last.flatMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        #expect(maxDifference <= 1e-6, "max |ours - xgboost| = \(maxDifference)")
    }

    @Test func changedEnclaveBinaryGetsNoKeys() async throws {
        // The policy allows the measurement of another binary: the gate refuses before any key release.
        let world = try JobWorld()
        try await world.prepare(measuredBinary: "/bin/sh")
        let sink = RecordingSink()
        let (runner, keys) = world.runner(sink: sink)
        runner.run()
        #expect(runner.state == .failed)
        #expect(runner.failure?.code == "attestation.pcr_mismatch")
        #expect(keys.released.isEmpty)
        #expect(enclaveChildren().isEmpty)
    }

    @Test func schemaViolationFailsWithAClearErrorAndNoValues() async throws {
        let world = try JobWorld()
        var csv = "id,x1,x2\n"
        for i in 0..<world.rows { csv += i == 17 ? "c\(i),SECRET-VALUE,1.0\n" : "c\(i),0.5,1.0\n" }
        try await world.prepare(betaCSV: csv)
        let sink = RecordingSink()
        let (runner, _) = world.runner(sink: sink)
        runner.run()
        let failure = try #require(runner.failure)
        #expect(failure.code == "enclave.schema_violation")
        #expect(failure.message.contains("x1"), "\(failure.message)")
        #expect(!failure.message.contains("SECRET-VALUE"))
        #expect(sink.outputs.isEmpty)
    }

    @Test func enclaveKilledMidTrainingFailsCleanlyAndARetrySucceeds() async throws {
        let world = try JobWorld()
        world.rows = 20_000
        try await world.prepare()
        let sink = RecordingSink()
        let (runner, _) = world.runner(sink: sink)
        runner.start()
        let deadline = ContinuousClock.now + .seconds(60)
        while !sink.lock.withLock({ sink.events.contains { $0.phase == "decrypting" || $0.phase == "training" } }),
            ContinuousClock.now < deadline
        {
            usleep(5_000)
        }
        for pid in enclaveChildren() { kill(pid, SIGKILL) }
        #expect(runner.wait(timeout: .seconds(60)) == .failed)
        #expect(runner.failure?.code == "job.enclave_lost")
        #expect(enclaveChildren().isEmpty)

        let retrySink = RecordingSink()
        let (retry, _) = world.runner(sink: retrySink)
        retry.run()
        #expect(retry.state == .succeeded, "\(String(describing: retry.failure))")
    }

    @Test func cancelMidRunStopsTheEnclave() async throws {
        let world = try JobWorld()
        world.rows = 20_000
        try await world.prepare()
        let sink = RecordingSink()
        let (runner, _) = world.runner(sink: sink)
        runner.start()
        let deadline = ContinuousClock.now + .seconds(60)
        while runner.state != .running, ContinuousClock.now < deadline { usleep(5_000) }
        runner.cancel(reason: "cancelled by beta")
        #expect(runner.wait(timeout: .seconds(60)) == .cancelled)
        #expect(enclaveChildren().isEmpty)
        #expect(sink.outputs.isEmpty)
    }
}
