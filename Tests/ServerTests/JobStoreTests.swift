import CleanRoom
import Crypto
import Enclave
import Foundation
import GRDB
import TestSupport
import Testing
@testable import Server

/// A domain store with two registered parties, one uploaded dataset each, and a proposed policy.
final class JobStoreWorld: @unchecked Sendable {
    final class Clock: @unchecked Sendable {
        let lock = NSLock()
        var value = Int64(Date().timeIntervalSince1970)
        var now: Int64 { lock.withLock { value } }
        func advance(_ seconds: Int64) { lock.withLock { value += seconds } }
    }

    struct Member {
        let registration: Registration
        let key: P256.Signing.PrivateKey
        var caller: Caller { Caller(principal: registration.principal, party: registration.party) }
        var id: String { registration.party.id }
    }

    static let resultKeyPEM: String = try! RSA.PrivateKey(bits: 3072).publicKey.pemRepresentation

    let directory: URL
    let clock = Clock()
    let store: CleanRoomStore
    let jobs: JobStore
    var members: [Member] = []
    var outsider: Member!
    var collaborationId = ""
    var digest = ""

    init(maxRuns: Int = 1) throws {
        directory = try TestEnvironment.temporaryDirectory("job-store")
        var configuration = CleanRoomStore.Configuration()
        let clock = self.clock
        configuration.clock = { clock.now }
        store = try CleanRoomStore(path: directory.appendingPathComponent("db.sqlite").path, configuration: configuration)
        jobs = JobStore(store: store)
        let op = Caller(principal: try store.ensureOperatorCredential(secret: "operator-secret"), party: nil)
        func register(_ name: String) throws -> Member {
            let key = try P256.Signing.PrivateKey()
            let (token, _) = try store.createEnrollmentToken(caller: op)
            return Member(
                registration: try store.register(
                    enrollmentToken: token, name: name, signingKeyPEM: try key.publicKey.pemRepresentation,
                    resultKeyPEM: Self.resultKeyPEM),
                key: key)
        }
        members = [try register("Alpha Bank"), try register("Beta Shop")]
        outsider = try register("Gamma Outsider")
        var datasets: [JSONValue] = []
        for (member, columns) in zip(members, [[("id", "string"), ("y", "integer")], [("id", "string"), ("x", "float")]]) {
            let dataset = try store.createDataset(
                name: "data", columns: columns.map { DatasetColumn(name: $0.0, type: .init(rawValue: $0.1)!) }, caller: member.caller)
            let upload = try store.beginUpload(datasetId: dataset.id, caller: member.caller)
            _ = try store.completeUpload(
                upload,
                result: CompletedUpload(
                    objectKey: upload.objectKey, objectVersion: "v1", size: 100, sha256: Hex.encode(SHA256.hash(Array(dataset.id.utf8))),
                    suite: 0x0478, encryptionContext: ["cleanroom:dataset": dataset.id, "cleanroom:party": member.id]),
                caller: member.caller)
            datasets.append(.object([
                ("id", .string(dataset.id)), ("owner", .string(member.id)),
                ("columns", .array(columns.map { .object([("name", .string($0.0)), ("type", .string($0.1))]) })),
            ]))
        }
        let policy = JSONValue.object([
            ("version", .number(1)), ("name", .string("job store test")),
            ("parties", .array(members.map { .object([("id", .string($0.id))]) })),
            ("datasets", .array(datasets)),
            ("join", .object([("type", .string("inner")), ("key", .string("id"))])),
            ("training", .object([
                ("algorithm", .string("logistic_regression")), ("label", .string("y")), ("features", .array([.string("x")])),
                ("validation", .object([("fraction", .number(0.2)), ("seed", .number(1))])),
            ])),
            ("enclave", .object([
                ("measurements", .array([.object([
                    ("pcr0", .string(String(repeating: "ab", count: 48))), ("pcr1", .string(String(repeating: "cd", count: 48))),
                    ("pcr2", .string(String(repeating: "ef", count: 48))),
                ])])),
                ("allowDebug", .bool(false)),
            ])),
            ("outputs", .array(members.map { .object([("recipient", .string($0.id)), ("artifacts", .array([.string("metrics")]))]) })),
            ("constraints", .object([
                ("expiresAt", .string(RFC3339.format(clock.now + 30 * 86400))), ("maxRuns", .number(Double(maxRuns))),
            ])),
        ])
        let view = try store.propose(policy: policy, caller: members[0].caller)
        collaborationId = view.collaboration.id
        digest = view.policy.digest
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    @discardableResult
    func approve(_ member: Member) throws -> Approval {
        let expiry = clock.now + 7 * 86400
        let message = ApprovalMessage(policyDigest: digest, partyId: member.id, expiresAt: expiry)
        return try store.submitApproval(
            collaborationId: collaborationId, policyDigest: digest, expiresAt: expiry,
            signature: try member.key.signature(for: message.bytes).derRepresentation, caller: member.caller)
    }

    func refusal(_ caller: Caller) -> String? {
        do {
            _ = try jobs.startJob(collaborationId: collaborationId, caller: caller)
            return nil
        } catch let error as DomainError {
            return error.code
        } catch {
            return "unexpected \(error)"
        }
    }
}

@Suite struct JobStoreTests {
    @Test func unanimousApprovalStartsAJobWhoseBundleTheEnclaveAccepts() throws {
        let world = try JobStoreWorld()
        for member in world.members { try world.approve(member) }
        let plan = try world.jobs.startJob(collaborationId: world.collaborationId, caller: world.members[1].caller)
        #expect(plan.datasets.count == 2)
        #expect(Hex.encode(plan.policyDigest) == world.digest)
        // The enclave's own checks accept what the server hands over.
        let policy = try JobPolicy(bytes: plan.policy)
        let verified = try ApprovalBundle(bytes: plan.approvalBundle).verify(
            against: policy, policyDigest: world.digest, now: world.clock.now)
        #expect(verified.approvedKeyFingerprints.count == 2)
        let job = try world.jobs.job(id: plan.jobID, caller: world.members[0].caller)
        #expect(job.status == "pending")
        #expect(try world.store.auditEntries().contains { $0.action == "job.start" && $0.subject == plan.jobID })
    }

    @Test func missingOrRevokedApprovalIsRefusedByName() throws {
        let world = try JobStoreWorld()
        try world.approve(world.members[0])
        #expect(world.refusal(world.members[0].caller) == "approval_missing")
        let approval = try world.approve(world.members[1])
        _ = try world.store.revokeApproval(collaborationId: world.collaborationId, approvalId: approval.id, caller: world.members[1].caller)
        #expect(world.refusal(world.members[0].caller) == "approval_missing")
    }

    @Test func runLimitAndExpiryAreEnforced() throws {
        let world = try JobStoreWorld(maxRuns: 1)
        for member in world.members { try world.approve(member) }
        _ = try world.jobs.startJob(collaborationId: world.collaborationId, caller: world.members[0].caller)
        #expect(world.refusal(world.members[0].caller) == "run_limit_reached")

        let later = try JobStoreWorld(maxRuns: 3)
        for member in later.members { try later.approve(member) }
        later.clock.advance(31 * 86400)
        #expect(later.refusal(later.members[0].caller) == "policy_expired")
    }

    /// A second start while a job of the collaboration has not ended would repeat it (training is
    /// seeded) and use up a run: it is refused, naming the job; once that job ended, a start works.
    @Test func aStartWhileAJobIsUnderWayIsRefused() throws {
        let world = try JobStoreWorld(maxRuns: 3)
        for member in world.members { try world.approve(member) }
        let first = try world.jobs.startJob(collaborationId: world.collaborationId, caller: world.members[0].caller)
        for state in [JobState.pending, .attesting, .running, .delivering] {
            if state != .pending { _ = try world.jobs.transition(jobID: first.jobID, to: state, failure: nil) }
            #expect(throws: DomainError(
                .conflict, "job_in_progress",
                "job \(first.jobID) of this collaboration is still \(state.rawValue): watch it (cleanroom job watch \(first.jobID)) or cancel it before starting another")) {
                try world.jobs.startJob(collaborationId: world.collaborationId, caller: world.members[1].caller)
            }
        }
        #expect(try world.jobs.jobs(collaborationId: world.collaborationId, caller: world.members[0].caller).count == 1)
        _ = try world.jobs.transition(jobID: first.jobID, to: .failed, failure: JobFailure(code: "x", message: "y"))
        let second = try world.jobs.startJob(collaborationId: world.collaborationId, caller: world.members[1].caller)
        #expect(second.jobID != first.jobID)
    }

    /// A job's members are the parties of the policy it ran, for each job and for the job list alike.
    /// A revision that replaces a party keeps the job, its outputs and documents the replaced party's,
    /// and shows the newcomer nothing of it (a review found the newcomer reading the old policy and
    /// receipt, the replaced party locked out); the replaced party lists the jobs it was in, and none
    /// of the revised policy's (it reached its jobs by id but could not list them).
    @Test func aRevisionDoesNotChangeWhoSeesAnEarlierJob() throws {
        let world = try JobStoreWorld(maxRuns: 2)
        for member in world.members { try world.approve(member) }
        let plan = try world.jobs.startJob(collaborationId: world.collaborationId, caller: world.members[0].caller)
        let alpha = world.members[0], beta = world.members[1], gamma = world.outsider!
        _ = try world.jobs.recordOutput(
            jobID: plan.jobID, recipient: beta.id, name: "metrics", objectKey: "k", sha256: [UInt8](repeating: 1, count: 32), size: 1)
        try world.succeed(plan.jobID)

        try world.reviseReplacingSecondMemberWithOutsider()
        #expect(try !world.store.isMember(partyId: beta.id, collaborationId: world.collaborationId))
        #expect(try world.store.isMember(partyId: gamma.id, collaborationId: world.collaborationId))

        #expect(try world.jobs.job(id: plan.jobID, caller: beta.caller).id == plan.jobID)
        #expect(try world.jobs.outputs(jobID: plan.jobID, caller: beta.caller).map(\.name) == ["metrics"])
        #expect(try world.jobs.job(id: plan.jobID, caller: alpha.caller).id == plan.jobID)
        #expect(throws: DomainError(.notFound, "not_found", "no such job")) {
            try world.jobs.job(id: plan.jobID, caller: gamma.caller)
        }
        // The collaboration's job list shows the newcomer none of the earlier jobs, and the dropped
        // party exactly those.
        #expect(try world.jobs.jobs(collaborationId: world.collaborationId, caller: gamma.caller).isEmpty)
        #expect(try world.jobs.jobs(collaborationId: world.collaborationId, caller: alpha.caller).map(\.id) == [plan.jobID])
        #expect(try world.jobs.jobs(collaborationId: world.collaborationId, caller: beta.caller).map(\.id) == [plan.jobID])

        // A job of the revised policy: the newcomer's, not the dropped party's, by id or listed.
        for member in [alpha, gamma] { try world.approve(member) }
        let later = try world.jobs.startJob(collaborationId: world.collaborationId, caller: gamma.caller)
        #expect(try world.jobs.job(id: later.jobID, caller: gamma.caller).id == later.jobID)
        #expect(throws: DomainError(.notFound, "not_found", "no such job")) {
            try world.jobs.job(id: later.jobID, caller: beta.caller)
        }
        #expect(try world.jobs.jobs(collaborationId: world.collaborationId, caller: gamma.caller).map(\.id) == [later.jobID])
        #expect(try world.jobs.jobs(collaborationId: world.collaborationId, caller: beta.caller).map(\.id) == [plan.jobID])
        #expect(
            Set(try world.jobs.jobs(collaborationId: world.collaborationId, caller: alpha.caller).map(\.id))
                == [plan.jobID, later.jobID])
    }

    /// A suspended party can no longer watch, cancel or download, so no job runs on its data or for
    /// it, even on a policy it approved before (an adversarial review found one that did).
    @Test func aSuspendedMemberStopsJobStarts() throws {
        let world = try JobStoreWorld(maxRuns: 2)
        for member in world.members { try world.approve(member) }
        let op = Caller(principal: try world.store.ensureOperatorCredential(secret: "operator-secret"), party: nil)
        _ = try world.store.suspendParty(id: world.members[1].id, caller: op)
        #expect(world.refusal(world.members[0].caller) == "member_suspended")
        #expect(try world.jobs.jobs(collaborationId: world.collaborationId, caller: world.members[0].caller).isEmpty)
        // A suspended outsider does not matter.
        let other = try JobStoreWorld(maxRuns: 2)
        for member in other.members { try other.approve(member) }
        let otherOp = Caller(principal: try other.store.ensureOperatorCredential(secret: "operator-secret"), party: nil)
        _ = try other.store.suspendParty(id: other.outsider.id, caller: otherOp)
        #expect(other.refusal(other.members[0].caller) == nil)
    }

    /// A start can be pinned to the digest the caller reviewed: another one is refused and starts nothing.
    @Test func aStartPinnedToAnotherDigestIsRefused() throws {
        let world = try JobStoreWorld(maxRuns: 2)
        for member in world.members { try world.approve(member) }
        let other = String(repeating: "0", count: 64)
        #expect(throws: DomainError(.conflict, "policy_changed", "the collaboration's current policy is \(world.digest), not \(other): review it before starting a job")) {
            try world.jobs.startJob(collaborationId: world.collaborationId, caller: world.members[0].caller, expectedDigest: other)
        }
        #expect(try world.jobs.jobs(collaborationId: world.collaborationId, caller: world.members[0].caller).isEmpty)
        let plan = try world.jobs.startJob(
            collaborationId: world.collaborationId, caller: world.members[0].caller, expectedDigest: world.digest.uppercased())
        #expect(Hex.encode(plan.policyDigest) == world.digest)

        // The pinned digest is checked first: before approvals are missing for a digest nobody approved yet.
        let unapproved = try JobStoreWorld(maxRuns: 2)
        let stale = String(repeating: "1", count: 64)
        #expect(throws: DomainError(.conflict, "policy_changed", "the collaboration's current policy is \(unapproved.digest), not \(stale): review it before starting a job")) {
            try unapproved.jobs.startJob(collaborationId: unapproved.collaborationId, caller: unapproved.members[0].caller, expectedDigest: stale)
        }
        #expect(unapproved.refusal(unapproved.members[0].caller) == "approval_missing")
    }

    @Test func nonMemberSeesNothing() throws {
        let world = try JobStoreWorld()
        for member in world.members { try world.approve(member) }
        #expect(world.refusal(world.outsider.caller) == "not_found")
        let plan = try world.jobs.startJob(collaborationId: world.collaborationId, caller: world.members[0].caller)
        #expect(throws: DomainError.self) { try world.jobs.job(id: plan.jobID, caller: world.outsider.caller) }
    }

    @Test func transitionsAreAuditedAndOutputsAreVisibleOnlyToTheirRecipient() throws {
        let world = try JobStoreWorld()
        for member in world.members { try world.approve(member) }
        let plan = try world.jobs.startJob(collaborationId: world.collaborationId, caller: world.members[0].caller)
        for state in [JobState.attesting, .running, .delivering] { try world.jobs.transition(jobID: plan.jobID, to: state, failure: nil) }
        let alpha = world.members[0], beta = world.members[1]
        let own = try world.jobs.recordOutput(
            jobID: plan.jobID, recipient: alpha.id, name: "metrics", objectKey: "jobs/\(plan.jobID)/a", sha256: SHA256.hash([1]), size: 1)
        _ = try world.jobs.recordOutput(
            jobID: plan.jobID, recipient: beta.id, name: "metrics", objectKey: "jobs/\(plan.jobID)/b", sha256: SHA256.hash([2]), size: 1)
        try world.jobs.transition(jobID: plan.jobID, to: .succeeded, failure: nil)
        #expect(try world.jobs.outputs(jobID: plan.jobID, caller: alpha.caller).map(\.id) == [own.id])
        #expect(try world.jobs.output(jobID: plan.jobID, outputID: own.id, caller: alpha.caller).id == own.id)
        do {
            _ = try world.jobs.output(jobID: plan.jobID, outputID: own.id, caller: beta.caller)
            Issue.record("beta must not see alpha's output")
        } catch let error as DomainError {
            #expect(error.kind == .notFound)
        }
        let actions = try world.store.auditEntries().filter { $0.subject == plan.jobID }.map(\.action)
        #expect(actions == ["job.start", "job.attesting", "job.running", "job.delivering", "job.succeeded"])
        #expect(try world.jobs.job(id: plan.jobID, caller: beta.caller).status == "succeeded")
    }

    /// A job that ended stays ended: a late cancel (or any other move) racing the end is refused by
    /// the store, changes nothing and audits nothing; moves the life cycle forbids are refused too.
    @Test func aJobThatEndedCannotBeMovedAgain() throws {
        let world = try JobStoreWorld()
        for member in world.members { try world.approve(member) }
        let plan = try world.jobs.startJob(collaborationId: world.collaborationId, caller: world.members[0].caller)
        #expect(try world.jobs.transition(jobID: plan.jobID, to: .running, failure: nil) == false)
        for state in [JobState.attesting, .running, .delivering, .succeeded] {
            #expect(try world.jobs.transition(jobID: plan.jobID, to: state, failure: nil))
        }
        let entries = try world.store.auditEntries().count
        #expect(
            try world.jobs.transition(
                jobID: plan.jobID, to: .cancelled, failure: JobFailure(code: "job.cancelled", message: "late")) == false)
        #expect(try world.jobs.job(id: plan.jobID, caller: world.members[0].caller).status == "succeeded")
        #expect(try world.store.auditEntries().count == entries)
    }

}

extension JobStoreWorld {
    /// Alpha revises the policy: the outsider (Gamma) instead of Beta, over Alpha's dataset alone.
    /// The revision becomes `digest` (for `approve`).
    func reviseReplacingSecondMemberWithOutsider() throws {
        let current = try #require(try store.policyVersion(digest: digest))
        let parties = [members[0].id, outsider.id]
        var revised = try JSONParser.parse(Array(current.canonical.utf8))
        revised = revised.setting("parties", to: .array(parties.map { .object([("id", .string($0))]) }))
        revised = revised.setting("datasets", to: .array(Array((revised["datasets"]?.arrayValue ?? []).prefix(1))))
        var training = revised["training"] ?? .object([])
        training = training.setting("label", to: .string("y")).setting("features", to: .array([.string("id")]))
        revised = revised.setting("training", to: training).setting("join", to: .object([("type", .string("union"))]))
        revised = revised.setting(
            "outputs", to: .array(parties.map { .object([("recipient", .string($0)), ("artifacts", .array([.string("metrics")]))]) }))
        digest = try store.revisePolicy(collaborationId: collaborationId, policy: revised, caller: members[0].caller).policy.digest
    }

    /// Moves a job on to `succeeded` from wherever it is.
    func succeed(_ jobID: String) throws {
        for state in [JobState.attesting, .running, .delivering, .succeeded] {
            _ = try jobs.transition(jobID: jobID, to: state, failure: nil)
        }
    }

    /// Every output recorded for a job, visible or not.
    func recordedOutputs(_ jobID: String) throws -> [Output] {
        try store.pool.read { db in try Output.filter(Column("jobId") == jobID).fetchAll(db) }
    }
}
