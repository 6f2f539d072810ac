import Enclave

/// What the server learned from a verified attestation document.
public struct AttestedEnclave: Sendable, Equatable {
    /// The enclave's RSA public key (SPKI DER) that key releases are encrypted to.
    public var publicKey: [UInt8]
    /// PCR0 of the enclave image.
    public var pcr0: [UInt8]
    /// Whether the document chains to the development root (local mode).
    public var development: Bool

    public init(publicKey: [UInt8], pcr0: [UInt8], development: Bool) {
        self.publicKey = publicKey
        self.pcr0 = pcr0
        self.development = development
    }
}

/// Verifies an enclave's attestation for a job (DESIGN §2.4): COSE signature, chain to the
/// configured root, freshness, the server's own nonce, `user_data` equal to the expected
/// binding, PCRs in the policy's allowed set, debug mode only if the policy allows it.
public protocol AttestationGate: Sendable {
    func verify(
        document: [UInt8], nonce: [UInt8], expectedUserData: [UInt8], policy: [UInt8]
    ) throws(JobFailure) -> AttestedEnclave
}

/// Releases a dataset's data key to an attested enclave: KMS `Decrypt` with the dataset's
/// encrypted data key, its encryption context, and `Recipient` = the attestation document.
/// Returns `CiphertextForRecipient` untouched; the server never sees the plaintext key.
public protocol KeyReleaseService: Sendable {
    func release(dataset: JobPlan.Dataset, attestationDocument: [UInt8]) throws(JobFailure) -> KeyRelease
}

/// Streams a dataset's ciphertext from the object store in chunks of 1 to `chunkSize` bytes. A
/// chunk's memory is valid only during the call to `body` (the source may reuse it).
public protocol CiphertextSource: Sendable {
    func stream(
        dataset: JobPlan.Dataset, chunkSize: Int, _ body: (UnsafeRawBufferPointer) throws(JobFailure) -> Void
    ) throws(JobFailure)
}

/// Where a job's results go, and who hears about its progress.
public protocol JobEventSink: Sendable {
    /// Persists and audits a state change.
    func transition(jobID: String, to state: JobState, failure: JobFailure?)
    /// Publishes a progress event (to SSE subscribers).
    func progress(jobID: String, _ event: ProgressEvent)
    /// Starts storing one output; the writer is finished or aborted by the runner.
    func beginOutput(jobID: String, descriptor: OutputDescriptor) throws(JobFailure) -> any OutputWriter
    /// Stores the signed receipt (after every output was finished).
    func storeReceipt(jobID: String, receipt: [UInt8], attestationDocument: [UInt8]) throws(JobFailure)
}

/// One output being written; nothing is visible until `finish` succeeds.
public protocol OutputWriter: AnyObject {
    func write(_ chunk: [UInt8]) throws(JobFailure)
    /// Commits the output if its SHA-256 equals `sha256`.
    func finish(sha256: [UInt8]) throws(JobFailure)
    /// Drops whatever was written.
    func abort()
}
