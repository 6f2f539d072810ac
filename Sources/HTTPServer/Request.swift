/// One HTTP request as a handler sees it: a typed value, never a dictionary of strings.
///
/// `path` is the raw (percent-encoded) path of the target; `pathParameters` hold the decoded
/// values of the route's `:name` segments; the body is a stream (see `RequestBody`).
public struct Request: Sendable {
    public let head: HTTPRequestHead
    /// The path part of the target, still percent-encoded (`/v1/datasets/a%20b`).
    public let path: String
    /// The raw query string after `?`, without the `?`, or nil.
    public let query: String?
    /// Values of the route's `:name` segments, percent-decoded (set by the router).
    public internal(set) var pathParameters: Parameters
    public let connection: ConnectionInfo
    public var body: RequestBody
    /// Typed values attached by middleware (e.g. the authenticated principal).
    public var storage: RequestStorage

    public var method: HTTPMethod { head.method }
    public var version: HTTPVersion { head.version }
    public var headers: HTTPHeaders { head.headers }

    init(head: HTTPRequestHead, connection: ConnectionInfo, body: RequestBody) {
        self.head = head
        (self.path, self.query) = Request.splitTarget(head.target)
        self.pathParameters = Parameters()
        self.connection = connection
        self.body = body
        self.storage = RequestStorage()
    }

    /// A request built in memory, for calling a router or handler without sockets.
    public init(
        method: HTTPMethod, target: String, headers: HTTPHeaders = ["Host": "localhost"], body: [UInt8] = [],
        connection: ConnectionInfo = ConnectionInfo(peer: "127.0.0.1:0", isTLS: false)
    ) {
        var head = HTTPRequestHead(method: method, target: target, version: .http1_1, headers: headers)
        if !body.isEmpty { head.framing = .contentLength(body.count) }
        self.init(head: head, connection: connection, body: RequestBody(bytes: body))
    }

    /// The first value of query parameter `name`, percent-decoded (`+` means space), or nil.
    public func queryParameter(_ name: String) -> String? {
        queryItems.first { $0.name == name }?.value
    }

    /// Every query parameter in order, percent-decoded.
    public var queryItems: [(name: String, value: String)] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&").map { item in
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = PercentDecoding.decode(String(parts[0]), plusIsSpace: true) ?? String(parts[0])
            let raw = parts.count > 1 ? String(parts[1]) : ""
            return (name: name, value: PercentDecoding.decode(raw, plusIsSpace: true) ?? raw)
        }
    }

    static func splitTarget(_ target: String) -> (String, String?) {
        var pathAndQuery = Substring(target)
        // absolute-form: http://host/path?q -> /path?q
        if !target.hasPrefix("/") {
            if let schemeEnd = target.range(of: "://") {
                let afterScheme = target[schemeEnd.upperBound...]
                pathAndQuery = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" })
                    .map { afterScheme[$0...] } ?? "/"
                if pathAndQuery.hasPrefix("?") { pathAndQuery = "/" + pathAndQuery }
            } else {
                return (target, nil)  // "*" or authority-form
            }
        }
        if let q = pathAndQuery.firstIndex(of: "?") {
            return (String(pathAndQuery[..<q]), String(pathAndQuery[pathAndQuery.index(after: q)...]))
        }
        return (String(pathAndQuery), nil)
    }
}

/// Facts about the connection a request arrived on.
public struct ConnectionInfo: Sendable {
    /// The peer address as `host:port` (`[v6]:port` for IPv6).
    public let peer: String
    public let isTLS: Bool
    /// The subject of the verified client certificate (mutual TLS), if one was presented.
    public let clientCertificateSubject: String?

    public init(peer: String, isTLS: Bool, clientCertificateSubject: String? = nil) {
        self.peer = peer
        self.isTLS = isTLS
        self.clientCertificateSubject = clientCertificateSubject
    }
}

/// Decoded path parameters of the matched route.
public struct Parameters: Sendable, Equatable {
    var values: [String: String] = [:]

    public subscript(name: String) -> String? { values[name] }

    /// The parameter, or a 400 `bad_path_parameter` if absent (a route/handler mismatch).
    public func require(_ name: String) throws -> String {
        guard let value = values[name] else {
            throw HTTPError.badRequest("missing path parameter \(name)", code: "bad_path_parameter")
        }
        return value
    }
}

/// A key for `RequestStorage`: the type is the key, `Value` the stored type.
public protocol RequestStorageKey {
    associatedtype Value: Sendable
}

/// Typed per-request values set by middleware and read by handlers.
public struct RequestStorage: Sendable {
    private var values: [ObjectIdentifier: any Sendable] = [:]
    public init() {}
    public subscript<Key: RequestStorageKey>(key: Key.Type) -> Key.Value? {
        get { values[ObjectIdentifier(key)] as? Key.Value }
        set { values[ObjectIdentifier(key)] = newValue }
    }
}

/// RFC 3986 percent-decoding.
public enum PercentDecoding {
    /// Decodes `%XX` escapes (and `+` as space when asked); nil for a malformed escape or non-UTF-8.
    public static func decode(_ s: String, plusIsSpace: Bool = false) -> String? {
        if !s.utf8.contains(0x25) && !(plusIsSpace && s.utf8.contains(0x2B)) { return s }
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == 0x25 {
                guard let h = it.popFirst(), let l = it.popFirst(), let hv = HTTPGrammar.hexValue(h),
                    let lv = HTTPGrammar.hexValue(l)
                else { return nil }
                out.append(hv << 4 | lv)
            } else if b == 0x2B && plusIsSpace {
                out.append(0x20)
            } else {
                out.append(b)
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}
