/// Where one output's ciphertext goes while it is produced, in order (the channel, in a session).
/// Writes may be of any size; the sink cuts them into channel chunks and hashes them as they pass.
public protocol CiphertextSink: AnyObject {
    func write(_ ciphertext: UnsafeRawBufferPointer) throws(EnclaveError)
}

extension CiphertextSink {
    /// Writes bytes held in an array.
    public func write(_ ciphertext: [UInt8]) throws(EnclaveError) {
        try ciphertext.withRawBytes { (raw) throws(EnclaveError) in try write(raw) }
    }
}

/// One output the policy grants, produced only when the session streams it: `produce` writes the
/// whole output (an Encryption SDK message to the recipient's result key) to the sink, frame by
/// frame, so an output of any size needs memory for one chunk, not for the whole message.
public struct OutputProducer {
    public var name: String
    public var recipient: String
    /// Writes the output's ciphertext to the sink, in order. Called at most once.
    public var produce: (any CiphertextSink) async throws(EnclaveError) -> Void

    public init(
        name: String, recipient: String, produce: @escaping (any CiphertextSink) async throws(EnclaveError) -> Void
    ) {
        self.name = name
        self.recipient = recipient
        self.produce = produce
    }

    /// An output whose ciphertext is already in memory (small outputs, tests).
    public init(name: String, recipient: String, ciphertext: [UInt8]) {
        self.init(name: name, recipient: recipient, produce: { (sink) throws(EnclaveError) in try sink.write(ciphertext) })
    }
}
