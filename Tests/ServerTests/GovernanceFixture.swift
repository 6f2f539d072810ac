import AWS
import Attestation
import CleanRoom
import Crypto
import Envelope
import Foundation
import HTTPServer
import Logging
import TestSupport

@testable import Server

/// A governance API over a real store and object store in a temporary directory, called through
/// the router with no sockets.
final class GovernanceFixture: @unchecked Sendable {
    let directory: URL
    let store: CleanRoomStore
    let objects: any ObjectStore
    /// Runs jobs with an enclave program that does not exist: every job that starts fails at launch.
    let jobs: JobManager
    /// Sends pings only (never started): webhooks may reach http://127.0.0.1 here.
    let webhooks: WebhookDispatcher
    let router: Router
    let operatorToken = "cro_test-operator-token"

    static let resultKeyPEM: String = {
        let key = try! RSA.PrivateKey(bits: 3072)
        return try! key.publicKey.pemRepresentation
    }()

    /// `objects` makes the object store from the data directory (default: the embedded file store);
    /// `logger` is the routes' log.
    init(
        objects makeObjects: ((DataDirectory) throws -> any ObjectStore)? = nil,
        logger: Logger = Logger(label: "cleanroomd.api")
    ) throws {
        directory = try TestEnvironment.temporaryDirectory("governance")
        let data = DataDirectory(path: directory.path)
        store = try GovernanceSetup.openStore(dataDirectory: data, operatorToken: operatorToken)
        objects = try makeObjects?(data) ?? GovernanceSetup.makeObjectStore(dataDirectory: data)
        struct NoKMS: Error {}
        jobs = JobManager(
            store: store, objects: objects,
            services: JobManager.Services(
                launcher: LocalEnclaveLauncher(
                    configuration: .init(executablePath: directory.appendingPathComponent("no-enclave").path)),
                verifier: AttestationVerifier(trustedRoots: [.awsNitroEnclavesRootG1]), decrypt: { _ in throw NoKMS() }))
        var webhookConfiguration = WebhookDispatcher.Configuration()
        webhookConfiguration.target = WebhookTargetPolicy(allowHTTP: true, allowedNetworks: [try IPNetwork(cidr: "127.0.0.1/32")])
        webhookConfiguration.timeout = 2
        webhooks = WebhookDispatcher(store: store, configuration: webhookConfiguration, logger: logger)
        router = Router()
        router.register(GovernanceRoutes(store: store, objects: objects, jobs: jobs, webhooks: webhooks, logger: logger))
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    struct Reply {
        let status: Int
        let json: [String: Any]
        var code: String? { (json["error"] as? [String: Any])?["code"] as? String }
        subscript(key: String) -> Any? { json[key] }
    }

    func call(_ method: HTTPMethod, _ path: String, token: String?, body: [UInt8] = []) async throws -> Reply {
        var headers: HTTPHeaders = ["Host": "localhost"]
        if let token { headers.add("Authorization", "Bearer \(token)") }
        if !body.isEmpty { headers.add("Content-Type", "application/json") }
        let response = await router.respond(to: Request(method: method, target: path, headers: headers, body: body))
        let bytes = try await response.collectBody()
        let json = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] ?? [:]
        return Reply(status: response.status.code, json: json)
    }

    func call(_ method: HTTPMethod, _ path: String, token: String?, json: Any) async throws -> Reply {
        try await call(method, path, token: token, body: Array(try JSONSerialization.data(withJSONObject: json)))
    }

    /// A registered party: its id, first principal's token (all party roles) and signing key.
    struct Party {
        let id: String
        let token: String
        let signingKey: P256.Signing.PrivateKey
    }

    func register(_ name: String) async throws -> Party {
        let enrollment = try await call(.post, "/v1/enrollment-tokens", token: operatorToken)
        let token = try require2(enrollment["token"] as? String)
        let key = try P256.Signing.PrivateKey()
        let reply = try await call(
            .post, "/v1/register", token: token,
            json: ["name": name, "signingKey": try key.publicKey.pemRepresentation, "resultKey": Self.resultKeyPEM])
        guard reply.status == 201, let party = reply["party"] as? [String: Any], let id = party["id"] as? String,
            let credential = (reply["credential"] as? [String: Any])?["token"] as? String
        else { throw TestEnvironmentError("registration failed: \(reply.status) \(reply.json)") }
        return Party(id: id, token: credential, signingKey: key)
    }

    /// A new principal of `party` holding exactly `roles`; returns its id and token.
    func principal(_ party: Party, roles: [String]) async throws -> (id: String, token: String) {
        let reply = try await call(
            .post, "/v1/parties/\(party.id)/principals", token: party.token, json: ["name": "p", "roles": roles])
        guard reply.status == 201, let principal = reply["principal"] as? [String: Any], let id = principal["id"] as? String,
            let token = (reply["credential"] as? [String: Any])?["token"] as? String
        else { throw TestEnvironmentError("principal creation failed: \(reply.status) \(reply.json)") }
        return (id, token)
    }

    /// A well-formed Encryption SDK message for `datasetId` of `party`, made with a raw AES keyring.
    func ciphertext(datasetId: String, party: Party, plaintext: [UInt8] = Array("a,b\n1,2\n".utf8)) async throws -> [UInt8] {
        let fingerprint = Hex.encode(SHA256.hash(try party.signingKey.publicKey.derRepresentation))
        return try await TestCiphertext.make(
            plaintext: plaintext,
            context: ["cleanroom:dataset": datasetId, "cleanroom:party": party.id, "cleanroom:owner-key": fingerprint])
    }

    /// Creates and uploads a dataset; returns its id.
    func uploadedDataset(_ party: Party, name: String, columns: [[String: Any]]) async throws -> String {
        let created = try await call(.post, "/v1/datasets", token: party.token, json: ["name": name, "columns": columns])
        guard created.status == 201, let id = created["id"] as? String else {
            throw TestEnvironmentError("dataset creation failed: \(created.json)")
        }
        let upload = try await call(
            .put, "/v1/datasets/\(id)/content", token: party.token, body: try await ciphertext(datasetId: id, party: party))
        guard upload.status == 200 else { throw TestEnvironmentError("upload failed: \(upload.status) \(upload.json)") }
        return id
    }

    /// A single-party policy over one dataset.
    static func policy(party: String, dataset: String, name: String = "solo") -> [String: Any] {
        [
            "version": 1, "name": name,
            "parties": [["id": party]],
            "datasets": [["id": dataset, "owner": party, "columns": [["name": "a", "type": "integer"], ["name": "b", "type": "integer"]]]],
            "join": ["type": "union"],
            "training": ["algorithm": "logistic_regression", "label": "b", "features": ["a"], "validation": ["fraction": 0.2, "seed": 1]],
            "enclave": ["measurements": [["pcr0": String(repeating: "ab", count: 48), "pcr1": String(repeating: "cd", count: 48), "pcr2": String(repeating: "ef", count: 48)]], "allowDebug": false],
            "outputs": [["recipient": party, "artifacts": ["model", "metrics"]]],
            "constraints": ["expiresAt": "2099-01-01T00:00:00Z", "maxRuns": 2],
        ]
    }

    nonisolated(unsafe) static let columns: [[String: Any]] = [["name": "a", "type": "integer"], ["name": "b", "type": "integer"]]

    /// Proposes a one-party collaboration and approves it; returns (collaboration id, approval id, digest).
    func approvedCollaboration(_ party: Party, name: String) async throws -> (String, String, String) {
        let dataset = try await uploadedDataset(party, name: name, columns: Self.columns)
        let proposed = try await call(
            .post, "/v1/collaborations", token: party.token, json: ["policy": Self.policy(party: party.id, dataset: dataset, name: name)])
        guard proposed.status == 201, let id = proposed["id"] as? String, let digest = proposed["currentDigest"] as? String else {
            throw TestEnvironmentError("proposal failed: \(proposed.status) \(proposed.json)")
        }
        let approval = try await approve(party, collaboration: id, digest: digest)
        guard approval.status == 201, let approvalId = approval["id"] as? String else {
            throw TestEnvironmentError("approval failed: \(approval.json)")
        }
        return (id, approvalId, digest)
    }

    /// A job of `collaboration` recorded through the start gate but not run, marked succeeded, with
    /// one output for `party` and the job's receipt, attestation document and approval bundle stored
    /// (the bytes are placeholders: this serves the API, not verification). Returns (job id, output id).
    func recordedJob(_ party: Party, collaboration: String) async throws -> (job: String, output: String) {
        let caller = try require2(try store.authenticate(bearer: party.token))
        let plan = try JobStore(store: store).startJob(collaborationId: collaboration, caller: caller)
        let key = StoredJobSink.outputKey(jobID: plan.jobID, recipient: party.id, name: "model")
        let content = Array("ciphertext of \(plan.jobID)".utf8)
        _ = try await objects.put(key: key, body: ByteStream(bytes: content))
        for (documentKey, bytes) in [
            (StoredJobSink.receiptKey(jobID: plan.jobID), Array("{}".utf8)),
            (StoredJobSink.attestationKey(jobID: plan.jobID), [0xA0]),
            (JobManager.approvalBundleKey(jobID: plan.jobID), plan.approvalBundle),
        ] {
            _ = try await objects.put(key: documentKey, body: ByteStream(bytes: bytes))
        }
        let jobs = JobStore(store: store)
        let output = try jobs.recordOutput(
            jobID: plan.jobID, recipient: party.id, name: "model", objectKey: key, sha256: SHA256.hash(content),
            size: Int64(content.count))
        for state in [JobState.attesting, .running, .delivering, .succeeded] {
            _ = try jobs.transition(jobID: plan.jobID, to: state, failure: nil)
        }
        return (plan.jobID, output.id)
    }

    func approve(_ party: Party, collaboration: String, digest: String, expiresAt: String = "2098-01-01T00:00:00Z",
                 token: String? = nil) async throws -> Reply {
        let message = ApprovalMessage(policyDigest: digest, partyId: party.id, expiresAt: RFC3339.parse(expiresAt)!)
        let signature = try party.signingKey.signature(for: message.bytes).derRepresentation
        return try await call(
            .post, "/v1/collaborations/\(collaboration)/approvals", token: token ?? party.token,
            json: ["policyDigest": digest, "expiresAt": expiresAt, "signature": Data(signature).base64EncodedString()])
    }
}

func require2<T>(_ value: T?, _ message: String = "missing value") throws -> T {
    guard let value else { throw TestEnvironmentError(message) }
    return value
}

/// Real Encryption SDK messages made with the project's encryptor and a raw AES keyring.
enum TestCiphertext {
    static func make(
        plaintext: [UInt8], context: [String: String], suite: AlgorithmSuite = .aes256GCMHKDFSHA512Commit,
        frameLength: Int = 64
    ) async throws -> [UInt8] {
        let keyring = try RawAESKeyring(keyNamespace: "test", keyName: "key", wrappingKey: try SecureBytes(randomCount: 32))
        return try await MessageEncryptor.encrypt(
            plaintext, keyring: keyring, encryptionContext: EncryptionContext(context), suite: suite, frameLength: frameLength)
    }
}
