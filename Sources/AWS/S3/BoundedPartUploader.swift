/// Uploads the parts of one stream concurrently while keeping at most `maxBuffers` part
/// buffers alive — the part being filled counts as one of them — so an upload holds at most
/// `maxBuffers × partSize` bytes whatever the object size. Buffers are recycled from part to
/// part; a part's buffer is filled again only after its upload has finished.
struct BoundedPartUploader {
    let partSize: Int
    let maxBuffers: Int
    let gauge: UploadMemoryGauge?
    /// S3's limit on the number of parts.
    var maxParts = 10_000

    /// What was uploaded: the ETag of every part by part number, and the bytes in all.
    struct Result {
        var etags: [Int: String] = [:]
        var total: Int64 = 0
    }

    init(partSize: Int, maxBuffers: Int, gauge: UploadMemoryGauge?) {
        self.partSize = partSize
        self.maxBuffers = max(1, maxBuffers)
        self.gauge = gauge
    }

    /// Uploads `first` (already filled, full) and the rest of `reader` with `upload(partNumber,
    /// buffer)`, which returns the part's ETag and must not return before the transfer has
    /// stopped reading the buffer. Throws the first failure; parts still in flight are cancelled.
    func run(
        first: UploadBuffer, reader: inout PartReader,
        upload: @escaping @Sendable (Int, UploadBuffer) async throws -> String
    ) async throws -> Result {
        var result = Result()
        var created = 1
        var partNumber = 0
        let limit = maxParts
        let size = partSize
        try await withThrowingTaskGroup(of: (Int, String, UploadBuffer).self) { group in
            var next: UploadBuffer? = first
            while true {
                let buffer: UploadBuffer
                if let ready = next {
                    buffer = ready
                    next = nil
                } else {
                    if created < maxBuffers {
                        buffer = try UploadBuffer(capacity: partSize, gauge: gauge)
                        created += 1
                    } else {
                        // Every buffer is in flight: wait for one part to finish and reuse its buffer.
                        guard let (done, etag, b) = try await group.next() else { break }
                        result.etags[done] = etag
                        buffer = b
                    }
                    try await reader.fill(buffer)
                    if buffer.count == 0 { break }
                }
                partNumber += 1
                guard partNumber <= limit else {
                    throw ObjectStoreError(.invalidKey, "the object needs more than \(limit) parts of \(size) bytes")
                }
                result.total += Int64(buffer.count)
                let n = partNumber
                group.addTask { (n, try await upload(n, buffer), buffer) }
                if reader.finished { break }
            }
            for try await (done, etag, _) in group { result.etags[done] = etag }
        }
        return result
    }
}
