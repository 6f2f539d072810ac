import Enclave

/// Everything a job run needs, gathered when the job was accepted (after the unanimity, expiry,
/// run-limit and dataset checks passed in the same transaction that created the job).
public struct JobPlan: Sendable {
    /// One dataset to release and stream.
    public struct Dataset: Sendable, Equatable {
        public var id: String
        public var partyID: String
        /// Where the ciphertext lives in the object store.
        public var objectKey: String
        public var ciphertextSHA256: [UInt8]
        public var byteCount: UInt64

        public init(id: String, partyID: String, objectKey: String, ciphertextSHA256: [UInt8], byteCount: UInt64) {
            self.id = id
            self.partyID = partyID
            self.objectKey = objectKey
            self.ciphertextSHA256 = ciphertextSHA256
            self.byteCount = byteCount
        }

        var manifest: DatasetManifest {
            DatasetManifest(datasetID: id, partyID: partyID, ciphertextSHA256: ciphertextSHA256, byteCount: byteCount)
        }
    }

    public var jobID: String
    public var collaborationID: String
    /// The policy document exactly as stored.
    public var policy: [UInt8]
    /// SHA-256 of the policy's canonical form (32 bytes).
    public var policyDigest: [UInt8]
    /// The approval bundle as the enclave will receive it.
    public var approvalBundle: [UInt8]
    public var datasets: [Dataset]

    public init(
        jobID: String, collaborationID: String, policy: [UInt8], policyDigest: [UInt8], approvalBundle: [UInt8],
        datasets: [Dataset]
    ) {
        self.jobID = jobID
        self.collaborationID = collaborationID
        self.policy = policy
        self.policyDigest = policyDigest
        self.approvalBundle = approvalBundle
        self.datasets = datasets
    }
}
