import Crypto

extension EnclaveSession {
    /// Step 5: streams each output as `outputBegin`, `outputChunk`s sent as soon as a chunk of
    /// ciphertext exists, and `outputEnd` with the SHA-256 computed on the way; returns the
    /// receipt's entries.
    func deliver(_ outputs: [OutputProducer]) async throws(EnclaveError) -> [Receipt.Output] {
        var entries: [Receipt.Output] = []
        for output in outputs {
            try send(.outputBegin(OutputDescriptor(name: output.name, recipient: output.recipient)))
            let stream = ChannelOutputStream(
                connection: connection, chunkSize: connection.limits.chunkSize, timeout: timeouts.send, name: output.name)
            try await output.produce(stream)
            let (digest, byteCount) = try stream.finish()
            try send(.outputEnd(sha256: digest))
            entries.append(
                Receipt.Output(
                    name: output.name, recipient: output.recipient, ciphertextSHA256: Hex.encode(digest),
                    byteCount: byteCount))
        }
        return entries
    }
}

/// An output's ciphertext on its way to the server: cut into `outputChunk` frames of `chunkSize`
/// bytes (one reusable buffer; whole chunks of a large write go out without being copied) and
/// hashed as it passes, so the receipt's digest is of exactly the bytes sent.
final class ChannelOutputStream: CiphertextSink {
    let connection: ChannelConnection
    let chunkSize: Int
    let timeout: Duration
    let name: String
    private var buffer: [UInt8] = []
    private var hash = SHA256()
    private(set) var byteCount: Int64 = 0
    private var finished = false

    init(connection: ChannelConnection, chunkSize: Int, timeout: Duration, name: String) {
        self.connection = connection
        self.chunkSize = max(chunkSize, 1)
        self.timeout = timeout
        self.name = name
        buffer.reserveCapacity(self.chunkSize)
    }

    func write(_ ciphertext: UnsafeRawBufferPointer) throws(EnclaveError) {
        guard !finished else { throw EnclaveError(.internal, "output \(name) was written after it ended") }
        guard ciphertext.count > 0 else { return }
        hash.update(ciphertext)
        byteCount += Int64(ciphertext.count)
        var rest = ciphertext
        if !buffer.isEmpty {
            let take = min(chunkSize - buffer.count, rest.count)
            buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest[0..<take]))
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
            if buffer.count == chunkSize { try flush() }
        }
        while rest.count >= chunkSize {
            try sendChunk(UnsafeRawBufferPointer(rebasing: rest[0..<chunkSize]))
            rest = UnsafeRawBufferPointer(rebasing: rest[chunkSize...])
        }
        if rest.count > 0 { buffer.append(contentsOf: rest) }
    }

    /// Sends what is buffered; returns the SHA-256 and length of everything written.
    func finish() throws(EnclaveError) -> (sha256: [UInt8], byteCount: Int64) {
        if !finished { try flush() }
        finished = true
        return (hash.finalize(), byteCount)
    }

    private func flush() throws(EnclaveError) {
        guard !buffer.isEmpty else { return }
        try buffer.withRawBytes { (raw) throws(EnclaveError) in try sendChunk(raw) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func sendChunk(_ bytes: UnsafeRawBufferPointer) throws(EnclaveError) {
        do {
            try connection.sendData(.outputChunk, bytes, timeout: timeout)
        } catch {
            throw EnclaveError(.protocolViolation, "sending output \(name): \(error.message)")
        }
    }
}
