import AWS
import Attestation
import CleanRoom
import Crypto
import Enclave
import Envelope
import Foundation
import GRDB
import LocalServices
import TestSupport
import Testing
@testable import Server

/// An enclave stand-in for `JobStoreWorld`'s policy, speaking the real protocol over a socket pair:
/// attested by a development attestor that reports the measurements the policy allows (so the
/// server's real attestation gate passes it), it takes the keys and the data, then delivers
/// `metrics` to every member and signs a receipt.
final class DeliveringEnclave: EnclaveInstance, @unchecked Sendable {
    let connection: ChannelConnection
    let peer: ChannelConnection
    let attestor: DevelopmentAttestor
    let lock = NSLock()
    var terminated = false
    var summary: String { "delivering stand-in" }
    var localAttestation: LocalAttestation? {
        let attestor = self.attestor
        return { publicKey, userData, nonce in
            try attestor.attestationDocument(publicKey: publicKey, userData: userData, nonce: nonce)
        }
    }

    init(attestor: DevelopmentAttestor, recipients: [String]) throws {
        self.attestor = attestor
        let (a, b) = try ChannelSocket.pair()
        connection = ChannelConnection(fileDescriptor: a)
        peer = ChannelConnection(fileDescriptor: b)
        let peer = self.peer, publicKey = try RSA.PrivateKey(bits: 2048).publicKey.derRepresentation
        Thread.detachNewThread { try? Self.play(peer, publicKey: publicKey, recipients: recipients) }
    }

    static func play(_ c: ChannelConnection, publicKey: [UInt8], recipients: [String]) throws {
        let t = Duration.seconds(10)
        guard case .begin(let begin) = try c.receive(timeout: t) else { return }
        let receiptKey = Array("receipt-key".utf8)
        let userData = AttestationBinding.userData(policyDigest: begin.policyDigest, jobID: begin.jobID, receiptPublicKey: receiptKey)
        try c.send(.attestationRequest(AttestationRequest(publicKey: publicKey, userData: userData, nonce: begin.nonce)), timeout: t)
        guard case .attestationDocument(let document) = try c.receive(timeout: t) else { return }
        try c.send(.hello(EnclaveHello(attestationDocument: document, receiptPublicKey: receiptKey)), timeout: t)
        guard case .jobSpec(let spec) = try c.receive(timeout: t) else { return }
        try c.send(.accepted(approvalBundleDigest: SHA256.hash(spec.approvalBundle)), timeout: t)
        for _ in spec.datasets { guard case .keyRelease = try c.receive(timeout: t) else { return } }
        for _ in spec.datasets {
            guard case .datasetBegin = try c.receive(timeout: t) else { return }
            while case .datasetChunk = try c.receive(timeout: t) {}
        }
        for recipient in recipients {
            let output = Array("metrics ciphertext for \(recipient)".utf8)
            try c.send(.outputBegin(OutputDescriptor(name: "metrics", recipient: recipient)), timeout: t)
            try c.send(.outputChunk(output), timeout: t)
            try c.send(.outputEnd(sha256: SHA256.hash(output)), timeout: t)
        }
        try c.send(.receipt(Array("{}".utf8)), timeout: t)
    }

    func isAlive() -> Bool { lock.withLock { !terminated } }
    func terminate() {
        lock.withLock { terminated = true }
        connection.shutdown()
        peer.shutdown()
    }
}

struct DeliveringLauncher: EnclaveLauncher {
    let attestor: DevelopmentAttestor
    let recipients: [String]
    func launch(jobID: String) throws(EnclaveLaunchError) -> any EnclaveInstance {
        do {
            return try DeliveringEnclave(attestor: attestor, recipients: recipients)
        } catch {
            throw EnclaveLaunchError(.socket, "\(error)")
        }
    }
}

/// What a job that fails while delivering leaves, on the live path (`JobManager.start` → the
/// runner → the manager's end of job): nothing of its outputs. Start-up recovery has its own tests
/// (`JobRecoveryTests`); these prove the running server does the same without a restart.
@Suite struct JobManagerOutputDiscardTests {
    struct NoPlaintextKey: Error {}

    /// A manager over the world's store whose jobs run the delivering stand-in, verified by the
    /// real attestation gate, with keys released through `KMSKeyRelease` from the stored datasets'
    /// headers (the KMS answers a CMS, never a key).
    static func manager(_ world: JobStoreWorld, _ objects: FileObjectStore) async throws -> JobManager {
        let pcr = { (byte: UInt8) in [UInt8](repeating: byte, count: 48) }
        let attestor = DevelopmentAttestor(
            ca: try DevelopmentCA.openOrCreate(dataDirectory: world.directory.path),
            measurements: DevelopmentMeasurements(pcr0: pcr(0xAB), pcr1: pcr(0xCD), pcr2: pcr(0xEF)))
        // Each dataset's ciphertext, with the aws-kms encrypted data key key release looks for.
        let datasets = try await world.store.pool.read { db in try Dataset.fetchAll(db) }
        for dataset in datasets {
            let key = try #require(dataset.objectKey)
            let message = try await MessageEncryptor.encrypt(
                Array("id,value\n1,2\n".utf8), keyring: TestKMSKeyring(dataKey: try SecureBytes(randomCount: 32)),
                encryptionContext: try EncryptionContext([("cleanroom:dataset", dataset.id)]))
            _ = try await objects.put(key: key, body: ByteStream(bytes: message))
        }
        return JobManager(
            store: world.store, objects: objects,
            services: JobManager.Services(
                launcher: DeliveringLauncher(attestor: attestor, recipients: world.members.map(\.id)),
                verifier: AttestationVerifier(trustedRoots: [attestor.trustedRoot], clock: { UnixTime.now() }, cache: nil),
                decrypt: { request in
                    KMSWire.DecryptResponse(plaintext: nil, keyId: request.keyId ?? "k", ciphertextForRecipient: Data([0x30, 0x80]))
                }),
            feedRetention: 0)
    }

    /// Waits until `done` holds (the manager discards off the runner's thread, after the job ended).
    static func eventually(_ seconds: Double = 20, _ done: () throws -> Bool) async throws -> Bool {
        let deadline = Date(timeIntervalSinceNow: seconds)
        while Date() < deadline {
            if try done() { return true }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        return try done()
    }

    /// The database refuses to record the second output (a full disk, here a trigger): the job fails
    /// while delivering with one output recorded and the other stored but not recorded, and the
    /// manager discards both objects and the record, audited as `job.outputs_discarded`.
    @Test func aJobThatFailsWhileDeliveringHasTheOutputsItStoredDiscarded() async throws {
        let world = try JobStoreWorld()
        for member in world.members { try world.approve(member) }
        let objects = try FileObjectStore(root: world.directory.appendingPathComponent("objects"))
        let manager = try await Self.manager(world, objects)
        try await world.store.pool.write { db in
            try db.execute(
                sql: """
                    CREATE TRIGGER refuse_second_output BEFORE INSERT ON output
                    WHEN (SELECT count(*) FROM output WHERE jobId = NEW.jobId) >= 1
                    BEGIN SELECT RAISE(ABORT, 'disk full'); END
                    """)
        }
        let alpha = world.members[0]
        let started = try await manager.start(collaborationId: world.collaborationId, caller: alpha.caller)
        let jobID = started.id

        let ended = try await Self.eventually {
            try world.store.auditEntries().contains { $0.action == "job.outputs_discarded" && $0.subject == jobID }
        }
        #expect(ended, "the outputs of the failed job were discarded")
        let job = try world.jobs.job(id: jobID, caller: alpha.caller)
        #expect(job.status == "failed" && job.error?.hasPrefix("output.record: ") == true, "\(job)")
        let actions = try world.store.auditEntries().filter { $0.subject == jobID }.map(\.action)
        #expect(actions.contains("job.delivering"), "it failed while delivering: \(actions)")
        #expect(try world.recordedOutputs(jobID).isEmpty)
        #expect(try await objects.list(prefix: StoredJobSink.outputsPrefix(jobID: jobID)).isEmpty)
        let discarded = try world.store.auditEntries().first { $0.action == "job.outputs_discarded" && $0.subject == jobID }
        #expect(discarded?.details.contains("\"count\":1") == true, "\(discarded?.details ?? "")")
        #expect(manager.runningJobs.isEmpty)
    }
}
