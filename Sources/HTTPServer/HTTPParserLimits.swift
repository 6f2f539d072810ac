/// Size limits the request parser enforces while reading a request head and chunked framing.
public struct HTTPParserLimits: Sendable, Equatable {
    /// Longest request line, without its CRLF (414 beyond).
    public var maxRequestLineLength: Int = 8 * 1024
    /// Largest header section (every field line with its CRLF; 431 beyond). Trailers share it.
    public var maxHeaderSectionSize: Int = 64 * 1024
    /// Most header fields (431 beyond). Trailers share it.
    public var maxHeaderCount: Int = 100
    /// Longest chunk-size line including chunk extensions (400 beyond).
    public var maxChunkLineLength: Int = 4 * 1024
    /// Largest single chunk (400 beyond): 2^40 bytes, far past any real chunk, far from overflow.
    public var maxChunkSize: Int = 1 << 40
    /// Most empty lines tolerated before a request line (RFC 9112 §2.2 allows ignoring "at least one").
    public var maxLeadingEmptyLines: Int = 4

    public init() {}
}
