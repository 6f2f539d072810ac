/// Cuts a byte stream into parts of exactly the buffer's capacity (the last may be shorter),
/// copying each chunk once, into the part's `UploadBuffer`, and hashes the whole stream on the way.
struct PartReader {
    let stream: ByteStream
    private var iterator: ByteStream.AsyncIterator
    private let hasher = PayloadHasher()
    /// The unused tail of the last chunk read (at most one chunk).
    private var carry: ArraySlice<UInt8> = []
    private(set) var finished = false

    init(stream: ByteStream) {
        self.stream = stream
        self.iterator = stream.makeAsyncIterator()
    }

    /// Fills `buffer` (after `reset()`) up to its capacity, or with what is left of the stream;
    /// an empty buffer means the stream had ended.
    mutating func fill(_ buffer: UploadBuffer) async throws {
        buffer.reset()
        if !carry.isEmpty {
            let n = buffer.append(carry)
            carry = carry.dropFirst(n)
        }
        while buffer.remaining > 0 {
            guard let chunk = try await iterator.next() else {
                finished = true
                return
            }
            hasher.update(chunk)
            let n = buffer.append(chunk[...])
            if n < chunk.count { carry = chunk[n...] }
        }
    }

    /// After a full part: reads ahead to learn whether the stream ended. Returns true at the end.
    mutating func peekEnd() async throws -> Bool {
        if finished { return true }
        if !carry.isEmpty { return false }
        guard let chunk = try await iterator.next() else {
            finished = true
            return true
        }
        hasher.update(chunk)
        carry = chunk[...]
        return false
    }

    /// The SHA-256 of the whole stream, once it has ended; the reader must not be used afterwards.
    func sha256() -> [UInt8] {
        precondition(finished, "the stream has not ended")
        return hasher.finalize()
    }
}
