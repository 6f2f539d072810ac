/// One message of the enclave channel protocol (DESIGN §7).
///
/// The conversation, server on the left:
/// ```
/// begin(job id, policy digest, nonce)        →
///   (local mode only:                        ← attestationRequest(public key, user data, nonce)
///    attestationDocument(document)           →   from the launcher's development attestor)
///                                            ← hello(attestation document, receipt public key)
/// jobSpec(policy, approval bundle, datasets) →
///                                            ← accepted(approval-bundle digest)   or error
/// keyRelease(dataset, CMS) × n               →
/// [checkpointKey(CMS) [checkpointResume(sealed)]] → (only when the server stores checkpoints)
/// datasetBegin, datasetChunk…, datasetEnd × n →
///                                            ← progress × m, checkpoint(sealed) × c
///                                            ← outputBegin, outputChunk…, outputEnd × k
///                                            ← receipt
/// cancel (any time)                          →
/// error (any time, either way)              ↔
/// ```
public enum ChannelMessage: Sendable, Equatable {
    case begin(JobBegin)
    case jobSpec(JobSpecification)
    case keyRelease(KeyRelease)
    case datasetBegin(DatasetBegin)
    case datasetChunk([UInt8])
    case datasetEnd(datasetID: String)
    case cancel(reason: String)
    case hello(EnclaveHello)
    case accepted(approvalBundleDigest: [UInt8])
    case progress(ProgressEvent)
    case outputBegin(OutputDescriptor)
    case outputChunk([UInt8])
    case outputEnd(sha256: [UInt8])
    case receipt([UInt8])
    case error(ChannelFailure)
    case attestationRequest(AttestationRequest)
    case attestationDocument([UInt8])
    /// `CiphertextForRecipient` of the checkpoint data key.
    case checkpointKey(ciphertextForRecipient: [UInt8])
    /// A `SealedCheckpoint` to resume from.
    case checkpointResume([UInt8])
    /// A new `SealedCheckpoint` (enclave → server).
    case checkpoint([UInt8])

    /// The frame type this message travels in.
    public var type: ChannelMessageType {
        switch self {
        case .begin: .begin
        case .jobSpec: .jobSpec
        case .keyRelease: .keyRelease
        case .datasetBegin: .datasetBegin
        case .datasetChunk: .datasetChunk
        case .datasetEnd: .datasetEnd
        case .cancel: .cancel
        case .hello: .hello
        case .accepted: .accepted
        case .progress: .progress
        case .outputBegin: .outputBegin
        case .outputChunk: .outputChunk
        case .outputEnd: .outputEnd
        case .receipt: .receipt
        case .error: .error
        case .attestationRequest: .attestationRequest
        case .attestationDocument: .attestationDocument
        case .checkpointKey: .checkpointKey
        case .checkpointResume: .checkpointResume
        case .checkpoint: .checkpoint
        }
    }
}

/// Starts a job: what the enclave must bind into its attestation.
public struct JobBegin: Sendable, Equatable {
    /// Largest nonce (the attestation document's limit).
    public static let maxNonceBytes = 512
    public var jobID: String
    /// SHA-256 of the policy's canonical form (32 bytes).
    public var policyDigest: [UInt8]
    /// The server's fresh nonce, echoed in the attestation document.
    public var nonce: [UInt8]

    public init(jobID: String, policyDigest: [UInt8], nonce: [UInt8]) {
        self.jobID = jobID
        self.policyDigest = policyDigest
        self.nonce = nonce
    }
}

/// The enclave's answer to `begin`: its attestation document and receipt-signing key.
public struct EnclaveHello: Sendable, Equatable {
    /// Largest attestation document accepted.
    public static let maxAttestationBytes = 32 * 1024
    /// Largest receipt public key (SubjectPublicKeyInfo DER).
    public static let maxPublicKeyBytes = 1024
    /// The COSE_Sign1 attestation document.
    public var attestationDocument: [UInt8]
    /// The receipt-signing public key, SubjectPublicKeyInfo DER (ECDSA P-256).
    public var receiptPublicKey: [UInt8]

    public init(attestationDocument: [UInt8], receiptPublicKey: [UInt8]) {
        self.attestationDocument = attestationDocument
        self.receiptPublicKey = receiptPublicKey
    }
}

/// What the enclave needs to run the job; it trusts none of it before checking it.
public struct JobSpecification: Sendable, Equatable {
    /// The policy document exactly as stored (JSON); the enclave recomputes its digest.
    public var policy: [UInt8]
    /// The signed approval bundle (JSON); the enclave verifies every signature.
    public var approvalBundle: [UInt8]
    /// One manifest per dataset, in the order their ciphertext will be streamed.
    public var datasets: [DatasetManifest]

    public init(policy: [UInt8], approvalBundle: [UInt8], datasets: [DatasetManifest]) {
        self.policy = policy
        self.approvalBundle = approvalBundle
        self.datasets = datasets
    }
}

/// A dataset as the server will stream it.
public struct DatasetManifest: Sendable, Equatable {
    public var datasetID: String
    /// The party that owns the dataset.
    public var partyID: String
    /// SHA-256 of the whole ciphertext object.
    public var ciphertextSHA256: [UInt8]
    /// Length of the ciphertext object.
    public var byteCount: UInt64

    public init(datasetID: String, partyID: String, ciphertextSHA256: [UInt8], byteCount: UInt64) {
        self.datasetID = datasetID
        self.partyID = partyID
        self.ciphertextSHA256 = ciphertextSHA256
        self.byteCount = byteCount
    }
}

/// A dataset's data key as released by KMS: `CiphertextForRecipient`, a CMS EnvelopedData
/// only the enclave's attested RSA key opens. The server never sees the key inside.
public struct KeyRelease: Sendable, Equatable {
    public var datasetID: String
    /// Index of the encrypted data key in the message header that KMS decrypted.
    public var encryptedDataKeyIndex: UInt32
    public var ciphertextForRecipient: [UInt8]

    public init(datasetID: String, encryptedDataKeyIndex: UInt32, ciphertextForRecipient: [UInt8]) {
        self.datasetID = datasetID
        self.encryptedDataKeyIndex = encryptedDataKeyIndex
        self.ciphertextForRecipient = ciphertextForRecipient
    }
}

/// Announces the ciphertext stream of one dataset.
public struct DatasetBegin: Sendable, Equatable {
    public var datasetID: String
    public var byteCount: UInt64

    public init(datasetID: String, byteCount: UInt64) {
        self.datasetID = datasetID
        self.byteCount = byteCount
    }
}

/// A progress report from the enclave. It carries no data values.
public struct ProgressEvent: Sendable, Equatable, Codable {
    /// The job phase: verifying, decrypting, validating, joining, training, evaluating, encrypting.
    public var phase: String
    /// The current iteration (training) or step, 0 if not meaningful.
    public var iteration: UInt32
    /// The number of iterations or steps, 0 if unknown.
    public var total: UInt32
    /// The training loss after `iteration`, if training.
    public var loss: Double?
    /// A short human-readable note.
    public var message: String

    public init(phase: String, iteration: UInt32 = 0, total: UInt32 = 0, loss: Double? = nil, message: String = "") {
        self.phase = phase
        self.iteration = iteration
        self.total = total
        self.loss = loss
        self.message = message
    }
}

/// Announces one encrypted output: which artifact, for which recipient party.
public struct OutputDescriptor: Sendable, Equatable {
    /// The artifact: `model`, `metrics` or `scores:own`.
    public var name: String
    /// The recipient party id.
    public var recipient: String

    public init(name: String, recipient: String) {
        self.name = name
        self.recipient = recipient
    }
}

/// An error reported over the channel by either side.
public struct ChannelFailure: Sendable, Equatable, Error, CustomStringConvertible {
    /// A stable code, e.g. `enclave.schema_violation`.
    public var code: String
    /// What failed; never a data value or key material.
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// Local mode: the values the enclave asks the launcher's development attestor to bind. The
/// launcher measures the executable itself, so the enclave cannot choose its own PCR0.
public struct AttestationRequest: Sendable, Equatable {
    /// Largest value of each field (the attestation document's limit).
    public static let maxFieldBytes = 1024
    public var publicKey: [UInt8]
    public var userData: [UInt8]
    public var nonce: [UInt8]

    public init(publicKey: [UInt8], userData: [UInt8], nonce: [UInt8]) {
        self.publicKey = publicKey
        self.userData = userData
        self.nonce = nonce
    }
}

/// The size facts of a sealed checkpoint that the codec checks; the format itself is
/// `SealedCheckpoint` (header 9 bytes, nonce 12, tag 16).
public enum SealedCheckpointLayout {
    /// The smallest well-formed sealed checkpoint (an empty plaintext).
    public static let minimumBytes = 9 + 12 + 16
}
