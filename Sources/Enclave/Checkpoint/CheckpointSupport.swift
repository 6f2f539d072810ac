import Crypto
import Foundation

/// What a workload needs to checkpoint a long training run: the sealing key (derived from the
/// checkpoint data key KMS released to this attested enclave and the datasets' keys, never known
/// to the server), the binding every checkpoint is sealed to, and the opened checkpoint of an
/// earlier run to resume from, if the server sent one and it opened.
public final class CheckpointSupport: @unchecked Sendable {
    /// The iteration the resumed state was taken after.
    public let resumeIteration: UInt32?
    /// The training state to resume from (plaintext; it stays in the enclave).
    public let resumeState: [UInt8]?
    let dataKey: SecureBytes
    let binding: SealedCheckpoint.Binding
    let deliver: @Sendable ([UInt8]) -> Void

    public init(
        dataKey: SecureBytes, binding: SealedCheckpoint.Binding, resume: (iteration: UInt32, plaintext: [UInt8])?,
        deliver: @escaping @Sendable ([UInt8]) -> Void
    ) {
        self.dataKey = dataKey
        self.binding = binding
        resumeIteration = resume?.iteration
        resumeState = resume?.plaintext
        self.deliver = deliver
    }

    /// Seals a training state taken after `iteration` and hands it to the server.
    public func save(_ state: [UInt8], iteration: UInt32) {
        guard let sealed = try? SealedCheckpoint.seal(state, iteration: iteration, dataKey: dataKey, binding: binding)
        else { return }
        deliver(sealed)
    }
}

extension EnclaveWorkload {
    /// Workloads that cannot checkpoint ignore the support.
    public func useCheckpoints(_ support: CheckpointSupport) {}
}
