import Attestation
import CleanRoom
import Crypto
import Foundation
import Testing
import Training
@testable import Enclave

/// The enclave admits exactly the policy's datasets, as their owners' and with the ciphertext the
/// policy names — so an operator cannot swap in another party's or an older upload of a dataset
/// (whose encryption context would otherwise pass the owner-key binding).
@Suite struct AdmissionTests {
    let fixture = try! SessionFixture.shared.get()
    let now: Int64 = 1_800_000_000
    let alphaSHA = [UInt8](repeating: 0xA1, count: 32), betaSHA = [UInt8](repeating: 0xB2, count: 32)

    /// The fixture's policy naming the two test digests; `mutate` edits it further.
    func policy(_ mutate: (inout [String: Any]) -> Void = { _ in }) throws -> [UInt8] {
        let (alpha, beta) = (Hex.encode(alphaSHA), Hex.encode(betaSHA))
        return try fixture.policy { policy in
            var datasets = policy["datasets"] as! [[String: Any]]
            datasets[0]["sha256"] = alpha
            datasets[1]["sha256"] = beta
            policy["datasets"] = datasets
            mutate(&policy)
        }
    }

    /// Admits `manifests` (by default both datasets with the policy's digests) for `policy` (by
    /// default the fixture's with those digests), fully approved, in an enclave attested by
    /// `attestor` (by default one the policy names).
    func admit(
        _ manifests: [DatasetManifest]? = nil, policy: [UInt8]? = nil, attestor: DevelopmentAttestor? = nil
    ) throws -> Admission {
        let policy = try policy ?? self.policy()
        let manifests = manifests ?? [manifest("alpha-data", "alpha", alphaSHA), manifest("beta-data", "beta", betaSHA)]
        let spec = JobSpecification(policy: policy, approvalBundle: try fixture.fullBundle(policy), datasets: manifests)
        return try Admission.check(
            spec: spec, attestedPolicyDigest: Hex.decode(try SessionFixture.digest(policy))!,
            attestation: try fixture.ownAttestation(attestor), now: now)
    }

    func manifest(_ id: String, _ party: String, _ sha: [UInt8]) -> DatasetManifest {
        DatasetManifest(datasetID: id, partyID: party, ciphertextSHA256: sha, byteCount: 100)
    }

    func refusal(_ manifests: [DatasetManifest]) -> EnclaveError? {
        do {
            _ = try admit(manifests)
            return nil
        } catch let error as EnclaveError {
            return error
        } catch {
            return EnclaveError(.internal, "\(error)")
        }
    }

    /// The datasets come in the policy's order: the order sets the joined rows' and so the seeded
    /// train/validation split, which the operator could otherwise choose among (a review noted it).
    @Test func thePolicysDatasetsAreAdmittedInItsOrderOnly() throws {
        let admitted = try admit([manifest("alpha-data", "alpha", alphaSHA), manifest("beta-data", "beta", betaSHA)])
        #expect(admitted.datasets.map(\.id) == ["alpha-data", "beta-data"])
        let error = refusal([manifest("beta-data", "beta", betaSHA), manifest("alpha-data", "alpha", alphaSHA)])
        #expect(error?.code == .manifestMismatch)
        #expect(error?.message.contains("policy's order") == true, "\(String(describing: error))")
    }

    @Test func anotherCiphertextThanThePolicyNamesIsRefused() {
        let older = [UInt8](repeating: 0xB3, count: 32)
        let error = refusal([manifest("alpha-data", "alpha", alphaSHA), manifest("beta-data", "beta", older)])
        #expect(error?.code == .manifestMismatch)
        #expect(error?.message.contains("beta-data") == true, "\(String(describing: error))")
    }

    /// A policy that names no digest would approve any upload of the dataset by its owner (the
    /// server fills the digest in, but the enclave does not trust the server to).
    @Test func aPolicyDatasetWithoutItsCiphertextDigestIsRefused() throws {
        let policy = try fixture.policy { policy in
            var datasets = policy["datasets"] as! [[String: Any]]
            datasets[1]["sha256"] = nil
            policy["datasets"] = datasets
        }
        #expect {
            try admit(
                [manifest("alpha-data", "alpha", SessionFixture.placeholderDigests[0]), manifest("beta-data", "beta", betaSHA)],
                policy: policy)
        } throws: { error in
            let error = error as? EnclaveError
            return error?.code == .policyInvalid && error?.message.contains("beta-data names no ciphertext sha256") == true
        }
    }

    /// The policy runs only in the images it names, whatever the server's gate let through (in a
    /// review, an enclave whose image another approved policy names ran this one).
    @Test func anImageThePolicyDoesNotNameIsRefused() throws {
        let other = DevelopmentAttestor(
            ca: fixture.attestor.ca, measurements: DevelopmentMeasurements(pcr0: [UInt8](repeating: 0xAB, count: 48)))
        #expect { try admit(attestor: other) } throws: { error in
            let error = error as? EnclaveError
            return error?.code == .measurementNotAllowed && error?.message.contains("PCR0 abababab") == true
        }
    }

    /// A debug-mode enclave (PCR0 all zeros) runs the policy only if the policy allows debug, even
    /// when its measurements list the zeros.
    @Test func aDebugEnclaveIsRefusedUnlessThePolicyAllowsDebug() throws {
        let debug = DevelopmentAttestor(
            ca: fixture.attestor.ca, measurements: DevelopmentMeasurements(pcr0: [UInt8](repeating: 0, count: 48)))
        let pcrs = debug.measurements.pcrs
        for allowDebug in [false, true] {
            let policy = try policy { policy in
                policy["enclave"] = [
                    "measurements": [["pcr0": Hex.encode(pcrs[0]!), "pcr1": Hex.encode(pcrs[1]!), "pcr2": Hex.encode(pcrs[2]!)]],
                    "allowDebug": allowDebug,
                ]
            }
            if allowDebug {
                _ = try admit(policy: policy, attestor: debug)
            } else {
                #expect { try admit(policy: policy, attestor: debug) } throws: { ($0 as? EnclaveError)?.code == .measurementNotAllowed }
            }
        }
    }

    @Test func aDatasetOfferedAsAnotherPartysIsRefused() {
        let error = refusal([manifest("alpha-data", "beta", alphaSHA), manifest("beta-data", "beta", betaSHA)])
        #expect(error?.code == .manifestMismatch)
    }

    @Test func missingOrExtraDatasetsAreRefused() {
        #expect(refusal([manifest("alpha-data", "alpha", alphaSHA)])?.code == .manifestMismatch)
        #expect(
            refusal([
                manifest("alpha-data", "alpha", alphaSHA), manifest("gamma-data", "beta", betaSHA),
            ])?.code == .manifestMismatch)
        #expect(
            refusal([
                manifest("alpha-data", "alpha", alphaSHA), manifest("beta-data", "beta", betaSHA),
                manifest("beta-data", "beta", betaSHA),
            ])?.code == .manifestMismatch)
    }
}

/// `scores:own` names the recipient's ids whatever the join key's type.
@Suite struct OwnScoresTests {
    let fixture = try! SessionFixture.shared.get()

    @Test func scoresNameIntegerJoinKeysToo() throws {
        let policy = try fixture.policy { policy in
            var datasets = policy["datasets"] as! [[String: Any]]
            for index in datasets.indices {
                var columns = datasets[index]["columns"] as! [[String: Any]]
                columns[0]["type"] = "integer"
                datasets[index]["columns"] = columns
            }
            policy["datasets"] = datasets
        }
        let admission = try fixture.admission(policy)
        let combined = try CSVTableReader.read(Array("id,y,x\n7,1,0.5\n,0,0.25\n42,0,1.5\n".utf8), typeOverrides: ["id": .integer])
        let csv = try TrainingWorkload.ownScores(
            recipient: "alpha", admission: admission, rowCounts: [], combined: combined, scores: [0.25, 0.5, 0.75])
        #expect(String(decoding: csv, as: UTF8.self) == "id,score\n7,0.25\n42,0.75\n")
    }
}
