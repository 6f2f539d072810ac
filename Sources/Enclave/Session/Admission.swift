import Attestation
import CleanRoom
import Crypto

/// A job specification the enclave accepted: the policy digest matched the attested one, the
/// policy parsed and has not expired, it allows the image this enclave runs, every approval
/// verified and covers every party, and the manifests match the policy's datasets one for one.
public struct Admission: Sendable {
    public let policy: JobPolicy
    public let policyDigest: String
    public let approvals: VerifiedApprovalBundle
    /// The policy's datasets, in its order: the order the server streams them in.
    public let datasets: [JobPolicy.Dataset]

    public func dataset(_ id: String) -> JobPolicy.Dataset? { datasets.first { $0.id == id } }

    /// Runs every admission check on `spec`; `attestation` is this enclave's own attestation
    /// document (the one it sent the server).
    public static func check(
        spec: JobSpecification, attestedPolicyDigest: [UInt8], attestation: AttestationDocument, now: Int64
    ) throws(EnclaveError) -> Admission {
        let document: PolicyDocument
        do {
            document = try PolicyDocument(bytes: spec.policy)
        } catch {
            throw EnclaveError(.policyInvalid, "the policy does not validate: \(error)")
        }
        guard document.digest == Hex.encode(attestedPolicyDigest) else {
            throw EnclaveError(.policyDigestMismatch, "the policy received is not the one this enclave attested to")
        }
        let policy = try JobPolicy(bytes: spec.policy)
        guard let expiry = RFC3339.parse(policy.constraints.expiresAt) else {
            throw EnclaveError(.policyInvalid, "the policy's constraints.expiresAt is not an RFC 3339 time")
        }
        guard expiry > now else { throw EnclaveError(.policyExpired, "the policy expired at \(policy.constraints.expiresAt)") }
        try checkImage(attestation, allowedBy: policy.enclave)
        let bundle = try ApprovalBundle(bytes: spec.approvalBundle)
        let approvals = try bundle.verify(against: policy, policyDigest: document.digest, now: now)

        guard spec.datasets.count == policy.datasets.count,
            Set(spec.datasets.map(\.datasetID)) == Set(policy.datasets.map(\.id))
        else {
            throw EnclaveError(.manifestMismatch, "the datasets offered are not exactly the policy's datasets")
        }
        // The order sets the joined rows' order, and so the seeded train/validation split: the
        // policy's, so that the operator cannot pick among splits by reordering.
        guard spec.datasets.map(\.datasetID) == policy.datasets.map(\.id) else {
            throw EnclaveError(.manifestMismatch, "the datasets are not offered in the policy's order")
        }
        var ordered: [JobPolicy.Dataset] = []
        for manifest in spec.datasets {
            let dataset = policy.datasets.first { $0.id == manifest.datasetID }!
            guard manifest.partyID == dataset.owner else {
                throw EnclaveError(.manifestMismatch, "dataset \(dataset.id) is offered as \(manifest.partyID)'s, the policy says \(dataset.owner)'s")
            }
            // Without a digest the approvals would cover any upload of the dataset by its owner.
            guard let declared = dataset.sha256 else {
                throw EnclaveError(
                    .policyInvalid, "dataset \(dataset.id) names no ciphertext sha256: the policy approves no particular upload")
            }
            guard declared == Hex.encode(manifest.ciphertextSHA256) else {
                throw EnclaveError(.manifestMismatch, "dataset \(dataset.id) is offered with another ciphertext than the policy names")
            }
            ordered.append(dataset)
        }
        return Admission(policy: policy, policyDigest: document.digest, approvals: approvals, datasets: ordered)
    }

    /// The parties approved running the policy only in the images it names: the server's key
    /// release gate checks this too, and KMS allows every image of every policy an owner approved,
    /// so without this check an operator could run the policy in another approved policy's image.
    static func checkImage(_ attestation: AttestationDocument, allowedBy rules: JobPolicy.EnclaveRules) throws(EnclaveError) {
        guard let sets = rules.pcrSets else {
            throw EnclaveError(.policyInvalid, "a measurement set of the policy is not valid hex")
        }
        // The same rules the server's gate and `verify` apply, through the same policies.
        let context = AttestationPolicyContext(verificationTime: UnixTime(milliseconds: attestation.timestamp))
        for rule in [DebugModePolicy(allowDebug: rules.allowDebug), PCRPolicy(allowedSets: sets)] as [any AttestationPolicy] {
            if case .failsToMeetPolicy(let error) = rule.evaluate(attestation, context: context) {
                throw EnclaveError(.measurementNotAllowed, "this enclave's image is not allowed by the policy: \(error.message)")
            }
        }
    }
}
