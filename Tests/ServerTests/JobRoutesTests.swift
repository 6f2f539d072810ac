import AWS
import CleanRoom
import Foundation
import HTTPServer
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
}
