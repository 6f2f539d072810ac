/// The parts of an HTTP request that SigV4 signs.
///
/// `path` is the *decoded* path (`/my file.txt`); the signer and the HTTP client encode it.
/// `query` holds decoded name/value pairs in any order.
public struct SigV4Request: Sendable, Equatable {
    public var method: String
    public var path: String
    public var query: [QueryItem]
    public var headers: [Header]

    /// One decoded query parameter.
    public struct QueryItem: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// One header as sent; repeated names are allowed and combined when signing.
    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(method: String, path: String, query: [QueryItem] = [], headers: [Header] = []) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
    }

    /// The first value of a header, matched case-insensitively.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    /// Replaces every header of that name with one value.
    public mutating func setHeader(_ name: String, _ value: String) {
        let lower = name.lowercased()
        headers.removeAll { $0.name.lowercased() == lower }
        headers.append(Header(name, value))
    }

    /// The request target as sent on the wire: encoded path and query.
    public var encodedTarget: String {
        let p = SigV4.uriEncode(path, encodeSlash: false)
        if query.isEmpty { return p }
        return p + "?" + SigV4.canonicalQuery(query)
    }
}
