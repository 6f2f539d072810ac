import CleanRoom
import Enclave
import Foundation
import TestSupport
import Testing

@testable import Server

/// A policy whose training section the enclave's trainer would refuse is refused when proposed
/// (400 `invalid_policy` naming the parameter), not after every approval and a used run. A review
/// proposed the README's example policy: its hyperparameters were not the trainer's names, and the
/// first job failed in 0.1 s as `enclave.policy_invalid`, counted against `maxRuns`.
@Suite struct ProposalTrainingCheckTests {
    @Test(arguments: [
        (["l2": 1.0], "unknown parameter 'l2'"),
        (["max_iter": 0], "max_iter"),
        (["tol": 5], "tol"),
    ] as [([String: Double], String)])
    func aHyperparameterTheTrainerRefusesIsRefusedAtProposal(parameters: [String: Double], named: String) async throws {
        let fixture = try GovernanceFixture()
        let alpha = try await fixture.register("Alpha")
        let dataset = try await fixture.uploadedDataset(alpha, name: "d", columns: GovernanceFixture.columns)
        var policy = GovernanceFixture.policy(party: alpha.id, dataset: dataset, name: "p")
        var training = try #require(policy["training"] as? [String: Any])
        training["hyperparameters"] = parameters
        policy["training"] = training
        let refused = try await fixture.call(.post, "/v1/collaborations", token: alpha.token, json: ["policy": policy])
        #expect(refused.status == 400)
        #expect(refused.code == "invalid_policy")
        let message = (refused.json["error"] as? [String: Any])?["message"] as? String ?? ""
        #expect(message.contains("training section cannot run") && message.contains(named), "\(message)")
        let listed = try await fixture.call(.get, "/v1/collaborations", token: alpha.token)
        #expect((listed["items"] as? [Any])?.isEmpty == true, "nothing was created")

        // The trainer's names are accepted.
        training["hyperparameters"] = ["lambda": 1.0, "max_iter": 200, "tol": 1e-6]
        policy["training"] = training
        let accepted = try await fixture.call(.post, "/v1/collaborations", token: alpha.token, json: ["policy": policy])
        #expect(accepted.status == 201, "\(accepted.json)")
    }

    /// A request whose JSON holds a NUL is refused before it reaches SQLite, which ends a string at
    /// the NUL (a review's digest + NUL was looked up as the digest, and answered as another policy's).
    @Test func aNULInARequestIsRefused() async throws {
        let fixture = try GovernanceFixture()
        let alpha = try await fixture.register("Alpha")
        let (collaboration, _, digest) = try await fixture.approvedCollaboration(alpha, name: "nul")
        let reply = try await fixture.call(
            .post, "/v1/collaborations/\(collaboration)/approvals", token: alpha.token,
            json: ["policyDigest": digest + "\u{0}zz", "expiresAt": "2098-01-01T00:00:00Z", "signature": "AAAA"])
        #expect(reply.status == 400 && reply.code == "invalid_json", "\(reply.json)")
        #expect("\(reply.json)".contains("(NUL) in a string"), "\(reply.json)")
        var policy = GovernanceFixture.policy(party: alpha.id, dataset: "ds-x", name: "p")
        policy["description"] = "nul\u{0}here"
        let proposal = try await fixture.call(.post, "/v1/collaborations", token: alpha.token, json: ["policy": policy])
        #expect(proposal.status == 400 && proposal.code == "invalid_json", "\(proposal.json)")
        #expect("\(proposal.json)".contains("(NUL) in a string"), "\(proposal.json)")
    }

    /// The shipped example policies train as written.
    @Test(arguments: ["hospitals-union.json", "bank-retailer-inner-join.json"])
    func theExamplePoliciesTrainingSectionsRun(name: String) throws {
        let url = TestEnvironment.repoRoot.appendingPathComponent("policies/examples/\(name)")
        let policy = try JobPolicy(bytes: Array(try Data(contentsOf: url)))
        try TrainingWorkload.checkTraining(policy)
    }
}
