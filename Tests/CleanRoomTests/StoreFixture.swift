import Crypto
import Foundation
import TestSupport

@testable import CleanRoom

/// A settable clock for store tests.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int64
    init(_ start: Int64 = 1_800_000_000) { value = start }
    var now: Int64 { lock.withLock { value } }
    func advance(_ seconds: Int64) { lock.withLock { value += seconds } }
}

/// Key material generated once per test process (RSA generation is slow).
enum TestKeys {
    static let resultKeyPEM: String = {
        let key = try! RSA.PrivateKey(bits: 3072)
        return try! key.publicKey.pemRepresentation
    }()
    static let smallRSAKeyPEM: String = {
        let key = try! RSA.PrivateKey(bits: 2048)
        return try! key.publicKey.pemRepresentation
    }()
}

/// A registered party in a fixture: its caller and its approval key.
struct TestParty {
    let registration: Registration
    let signingKey: P256.Signing.PrivateKey
    var caller: Caller { Caller(principal: registration.principal, party: registration.party) }
    var id: String { registration.party.id }

    func approve(_ digest: String, expiresAt: Int64) throws -> [UInt8] {
        try signingKey.signature(for: ApprovalMessage(policyDigest: digest, partyId: id, expiresAt: expiresAt).bytes)
            .derRepresentation
    }
}

/// A fresh store in a temporary directory with a test clock, an audit key and the operator.
final class StoreFixture {
    let directory: URL
    let clock = TestClock()
    let signer: P256AuditSigner
    let store: CleanRoomStore
    let operatorCaller: Caller
    var path: String { directory.appendingPathComponent("cleanroom.sqlite").path }

    init(checkpointInterval: Int64 = 4) throws {
        directory = try TestEnvironment.temporaryDirectory("store")
        signer = try P256AuditSigner(key: try P256.Signing.PrivateKey())
        var configuration = CleanRoomStore.Configuration()
        let clock = self.clock
        configuration.clock = { clock.now }
        configuration.auditSigner = signer
        configuration.checkpointInterval = checkpointInterval
        store = try CleanRoomStore(path: directory.appendingPathComponent("cleanroom.sqlite").path, configuration: configuration)
        let principal = try store.ensureOperatorCredential(secret: "operator-secret")
        operatorCaller = Caller(principal: principal, party: nil)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    func register(_ name: String) throws -> TestParty {
        let key = try P256.Signing.PrivateKey()
        let (token, _) = try store.createEnrollmentToken(caller: operatorCaller)
        let registration = try store.register(
            enrollmentToken: token, name: name, signingKeyPEM: try key.publicKey.pemRepresentation,
            resultKeyPEM: TestKeys.resultKeyPEM)
        return TestParty(registration: registration, signingKey: key)
    }

    /// A dataset with `columns`, marked uploaded as if a whole message had arrived.
    func uploadedDataset(_ party: TestParty, name: String, columns: [DatasetColumn]) throws -> Dataset {
        let dataset = try store.createDataset(name: name, columns: columns, caller: party.caller)
        let upload = try store.beginUpload(datasetId: dataset.id, caller: party.caller)
        let digest = Hex.encode(SHA256.hash(Array(name.utf8)))
        return try store.completeUpload(
            upload,
            result: CompletedUpload(
                objectKey: upload.objectKey, objectVersion: "v1", size: 1234, sha256: digest, suite: 0x0478,
                encryptionContext: ["cleanroom:dataset": dataset.id, "cleanroom:party": party.id]),
            caller: party.caller
        )
    }

    /// Three parties with one uploaded dataset each and a union policy over them.
    func threePartyUnion() throws -> (parties: [TestParty], policy: JSONValue) {
        let columns = [DatasetColumn(name: "age", type: .integer), DatasetColumn(name: "label", type: .boolean)]
        var parties: [TestParty] = []
        var datasets: [JSONValue] = []
        for name in ["Alpha Clinic", "Beta Clinic", "Gamma Clinic"] {
            let party = try register(name)
            let dataset = try uploadedDataset(party, name: "records", columns: columns)
            parties.append(party)
            datasets.append(
                .object([
                    ("id", .string(dataset.id)), ("owner", .string(party.id)),
                    ("columns", .array(columns.map { .object([("name", .string($0.name)), ("type", .string($0.type.rawValue))]) })),
                ]))
        }
        let policy = JSONValue.object([
            ("version", .number(1)), ("name", .string("union test")),
            ("parties", .array(parties.map { .object([("id", .string($0.id))]) })),
            ("datasets", .array(datasets)),
            ("join", .object([("type", .string("union"))])),
            ("training", .object([
                ("algorithm", .string("logistic_regression")), ("label", .string("label")),
                ("features", .array([.string("age")])),
                ("validation", .object([("fraction", .number(0.2)), ("seed", .number(1))])),
            ])),
            ("enclave", .object([
                ("measurements", .array([.object([
                    ("pcr0", .string(String(repeating: "ab", count: 48))), ("pcr1", .string(String(repeating: "cd", count: 48))),
                    ("pcr2", .string(String(repeating: "ef", count: 48))),
                ])])),
                ("allowDebug", .bool(false)),
            ])),
            ("outputs", .array(parties.map { .object([("recipient", .string($0.id)), ("artifacts", .array([.string("model")]))]) })),
            ("constraints", .object([("expiresAt", .string(RFC3339.format(clock.now + 30 * 86400))), ("maxRuns", .number(1))])),
        ])
        return (parties, policy)
    }
}
