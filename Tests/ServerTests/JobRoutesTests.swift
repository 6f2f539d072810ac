import AWS
import CleanRoom
import Crypto
import Foundation
import HTTPServer
import LocalServices
import Testing

@testable import Server

/// The job routes through the router (no sockets), over a real store and object store.
@Suite struct JobRoutesTests {
    /// A job's receipt is served as its outputs are: once the job has succeeded, never before and
    /// never for one that did not (a crash review found a failed job serving the receipt it had
    /// stored, which names outputs that were discarded). The stored object is left as it was.
    @Test func aJobThatDidNotSucceedServesNoReceiptEvenWhenOneIsStored() async throws {
        let fixture = try GovernanceFixture()
        let party = try await fixture.register("Alpha")
        let (collaboration, _, _) = try await fixture.approvedCollaboration(party, name: "receipts")
        let caller = try require2(try fixture.store.authenticate(bearer: party.token))
        let jobs = JobStore(store: fixture.store)
        let plan = try jobs.startJob(collaborationId: collaboration, caller: caller)
        let receipt = Array(#"{"receipt":"of a job that failed"}"#.utf8)
        _ = try await fixture.objects.put(key: StoredJobSink.receiptKey(jobID: plan.jobID), body: ByteStream(bytes: receipt))
        for state in [JobState.attesting, .running, .delivering] {
            _ = try jobs.transition(jobID: plan.jobID, to: state, failure: nil)
        }
        func message(_ reply: GovernanceFixture.Reply) -> String? {
            (reply["error"] as? [String: Any])?["message"] as? String
        }

        let delivering = try await fixture.call(.get, "/v1/jobs/\(plan.jobID)/receipt", token: party.token)
        #expect(delivering.status == 409 && delivering.code == "receipt_unavailable", "\(delivering.json)")
        #expect(
            message(delivering)
                == "job \(plan.jobID) is delivering: it has a receipt once it has succeeded; follow it with `cleanroom job watch \(plan.jobID)`")

        _ = try jobs.transition(
            jobID: plan.jobID, to: .failed, failure: JobFailure(code: "output.store", message: "could not store output model"))
        let failed = try await fixture.call(.get, "/v1/jobs/\(plan.jobID)/receipt", token: party.token)
        #expect(failed.status == 409 && failed.code == "receipt_unavailable", "\(failed.json)")
        #expect(
            message(failed)
                == "job \(plan.jobID) failed, so it has no receipt (only a job that succeeded has one): see why with `cleanroom job status \(plan.jobID)` and start a new job once the cause is fixed")
        // Refused, not deleted: the object is still there.
        var stored: [UInt8] = []
        for try await chunk in try await fixture.objects.get(key: StoredJobSink.receiptKey(jobID: plan.jobID)).body { stored += chunk }
        #expect(stored == receipt)

        // A job that succeeded serves its receipt, byte for byte.
        let (succeeded, _) = try await fixture.recordedJob(party, collaboration: collaboration)
        let served = try await fixture.call(.get, "/v1/jobs/\(succeeded)/receipt", token: party.token)
        #expect(served.status == 200, "\(served.json)")
    }

    /// A party sees, by id and listed, exactly the jobs whose policy (the version each job ran) names
    /// it: one a revision dropped lists the jobs it was in and none of the revised policy's; a party
    /// never named in a job's policy nor a member gets 404 for the list, as for any collaboration it
    /// is not in (a review found the dropped party reaching its jobs by id but refused the list).
    @Test func aPartyDroppedByARevisionListsTheJobsItWasInAndNoLaterOnes() async throws {
        let world = try JobStoreWorld(maxRuns: 2)
        for member in world.members { try world.approve(member) }
        let alpha = world.members[0], beta = world.members[1], gamma = world.outsider!
        let earlier = try world.jobs.startJob(collaborationId: world.collaborationId, caller: alpha.caller).jobID
        try world.succeed(earlier)
        try world.reviseReplacingSecondMemberWithOutsider()
        for member in [alpha, gamma] { try world.approve(member) }
        let later = try world.jobs.startJob(collaborationId: world.collaborationId, caller: gamma.caller).jobID

        let objects = try FileObjectStore(root: world.directory.appendingPathComponent("objects"))
        let router = Router()
        router.register(GovernanceRoutes(store: world.store, objects: objects, jobs: JobRecoveryTests.manager(world, objects)))
        func get(_ path: String, as member: JobStoreWorld.Member) async throws -> (status: Int, json: [String: Any]) {
            let headers: HTTPHeaders = ["Host": "localhost", "Authorization": "Bearer \(member.registration.credential)"]
            let response = await router.respond(to: Request(method: .get, target: path, headers: headers, body: []))
            let body = try await response.collectBody()
            return (response.status.code, (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:])
        }
        func listed(_ member: JobStoreWorld.Member) async throws -> [String]? {
            let reply = try await get("/v1/collaborations/\(world.collaborationId)/jobs", as: member)
            guard reply.status == 200 else { return nil }
            return (reply.json["items"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
        }

        #expect(try await listed(beta) == [earlier])
        #expect(try await get("/v1/jobs/\(earlier)", as: beta).status == 200)
        #expect(try await get("/v1/jobs/\(later)", as: beta).status == 404)
        #expect(try await listed(gamma) == [later])
        #expect(try await get("/v1/jobs/\(earlier)", as: gamma).status == 404)
        #expect(Set(try await listed(alpha) ?? []) == [earlier, later])

        // A party in no job's policy and not a member: the collaboration does not exist for it.
        let op = Caller(principal: try world.store.ensureOperatorCredential(secret: "operator-secret"), party: nil)
        let key = try P256.Signing.PrivateKey()
        let registration = try world.store.register(
            enrollmentToken: try world.store.createEnrollmentToken(caller: op).0, name: "Delta Stranger",
            signingKeyPEM: try key.publicKey.pemRepresentation, resultKeyPEM: JobStoreWorld.resultKeyPEM)
        let stranger = try await get(
            "/v1/collaborations/\(world.collaborationId)/jobs", as: JobStoreWorld.Member(registration: registration, key: key))
        #expect(stranger.status == 404 && (stranger.json["error"] as? [String: Any])?["code"] as? String == "not_found")
    }
}
