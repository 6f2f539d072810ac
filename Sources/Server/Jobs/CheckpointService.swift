import Enclave

/// What the server hands a new enclave for checkpointing: the checkpoint data key as KMS
/// released it to that enclave, and the latest stored checkpoint of the same collaboration and
/// policy, if there is one whose key KMS released.
public struct CheckpointGrant: Sendable, Equatable {
    /// `CiphertextForRecipient`: the data key in a CMS EnvelopedData to the attested enclave key.
    public var ciphertextForRecipient: [UInt8]
    /// A `SealedCheckpoint` to resume from.
    public var sealedCheckpoint: [UInt8]?
    /// Why a stored checkpoint is not offered (reported as progress), if one exists.
    public var note: String?

    public init(ciphertextForRecipient: [UInt8], sealedCheckpoint: [UInt8]? = nil, note: String? = nil) {
        self.ciphertextForRecipient = ciphertextForRecipient
        self.sealedCheckpoint = sealedCheckpoint
        self.note = note
    }
}

/// Stores the sealed training checkpoints of long jobs (DESIGN §7) — the latest per collaboration
/// and policy digest — and obtains their data key from KMS for the attested enclave only. The
/// server never holds the plaintext key or a plaintext checkpoint.
public protocol CheckpointService: Sendable {
    /// The key (and checkpoint) for a run whose enclave presented `attestationDocument`.
    func grant(plan: JobPlan, attestationDocument: [UInt8]) throws(JobFailure) -> CheckpointGrant
    /// Stores `sealed` as the latest checkpoint of the plan's collaboration and policy.
    func store(plan: JobPlan, sealed: [UInt8]) throws(JobFailure)
    /// The job ended: after a success its checkpoint is dropped; after a failure or cancel it is
    /// kept for a retry.
    func ended(plan: JobPlan, succeeded: Bool)
    /// Drops the stored checkpoint of a collaboration's policy whose job succeeded with no runner to
    /// end it (start-up found it delivered), as `ended(plan:succeeded: true)` does for a runner's.
    /// Nothing stored is not an error.
    func drop(collaborationID: String, policyDigest: [UInt8]) throws(JobFailure)
}

/// Audits each checkpoint key release (attested PCR0, whether a checkpoint was resumed — never
/// the key) before it is forwarded; a release that cannot be audited is not forwarded.
struct AuditedCheckpoints: CheckpointService {
    let inner: any CheckpointService
    let jobs: JobStore
    let jobID: String
    /// The attested enclave's PCR0, once the gate verified it.
    let attestedPCR0: @Sendable () -> [UInt8]?

    func grant(plan: JobPlan, attestationDocument: [UInt8]) throws(JobFailure) -> CheckpointGrant {
        guard let pcr0 = attestedPCR0() else {
            throw JobFailure(code: "job.protocol", message: "a checkpoint key was asked before the enclave was attested")
        }
        let grant = try inner.grant(plan: plan, attestationDocument: attestationDocument)
        do {
            try jobs.auditCheckpointKey(jobID: jobID, pcr0: pcr0, resumed: grant.sealedCheckpoint != nil)
        } catch {
            throw JobFailure(code: "audit.failed", message: "the checkpoint key release could not be audited; nothing was forwarded")
        }
        return grant
    }

    func store(plan: JobPlan, sealed: [UInt8]) throws(JobFailure) { try inner.store(plan: plan, sealed: sealed) }
    func ended(plan: JobPlan, succeeded: Bool) { inner.ended(plan: plan, succeeded: succeeded) }
    func drop(collaborationID: String, policyDigest: [UInt8]) throws(JobFailure) {
        try inner.drop(collaborationID: collaborationID, policyDigest: policyDigest)
    }
}
