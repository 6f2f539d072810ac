/// A request body as an async sequence of byte chunks, read with backpressure.
///
/// While a handler does not read, the server stops reading the socket after a bounded buffer
/// (256 KiB), so a 10 GiB upload costs the same memory as a 1 MiB one. Reading more than the
/// route's body limit throws `HTTPError` 413. A body can be iterated once.
public struct RequestBody: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    public typealias Failure = any Error

    enum Source: Sendable {
        case bytes([UInt8])
        case stream(RequestBodyStream)
    }
    let source: Source

    /// The declared length (Content-Length), nil for chunked bodies.
    public let expectedLength: Int?
    /// The most bytes a handler may read; set by the router from the route's body limit.
    public internal(set) var limit: Int = .max

    init(stream: RequestBodyStream, expectedLength: Int?) {
        self.source = .stream(stream)
        self.expectedLength = expectedLength
    }

    /// An in-memory body (for tests and for calling handlers directly).
    public init(bytes: [UInt8]) {
        self.source = .bytes(bytes)
        self.expectedLength = bytes.count
    }

    public static var empty: RequestBody { RequestBody(bytes: []) }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let source: Source
        let limit: Int
        var read = 0
        var done = false

        public mutating func next() async throws -> [UInt8]? {
            if done { return nil }
            let chunk: [UInt8]?
            switch source {
            case .bytes(let bytes):
                done = true
                chunk = bytes.isEmpty ? nil : bytes
            case .stream(let stream):
                chunk = try await stream.next()
            }
            guard let chunk else {
                done = true
                return nil
            }
            read += chunk.count
            if read > limit { throw HTTPError.contentTooLarge(limit: limit) }
            return chunk
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: source, limit: limit) }

    /// The whole body in memory; throws 413 beyond `maxBytes` (or the route's limit if smaller).
    public func collect(upTo maxBytes: Int = .max) async throws -> [UInt8] {
        let cap = Swift.min(maxBytes, limit)
        if let expectedLength, expectedLength > cap { throw HTTPError.contentTooLarge(limit: cap) }
        var out: [UInt8] = []
        if let expectedLength { out.reserveCapacity(expectedLength) }
        for try await chunk in self {
            if out.count + chunk.count > cap { throw HTTPError.contentTooLarge(limit: cap) }
            out.append(contentsOf: chunk)
        }
        return out
    }

    /// Trailer fields of a chunked body; complete only after the body has been read to its end.
    public var trailers: HTTPHeaders {
        if case .stream(let s) = source { return s.trailers }
        return HTTPHeaders()
    }
}
