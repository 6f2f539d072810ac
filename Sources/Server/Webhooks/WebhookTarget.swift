import Glibc

/// Where a webhook may send: validation of a party's URL, and its resolution to addresses that are
/// not the server's own networks (SSRF protection).
///
/// Send to the address `resolve` returns, pinned with `curlResolveEntries`, through a client used
/// only for webhooks, with `bypassProxy` and redirects not followed: otherwise DNS (rebinding),
/// a proxy or a `Location:` can take the request somewhere that was never checked.
public struct WebhookTargetPolicy: Sendable {
    /// Plain http:// allowed (development only; default false: https only).
    public var allowHTTP: Bool
    /// Networks exempt from the private/special-address block, e.g. "127.0.0.1/32" for tests or
    /// an on-premises receiver.
    public var allowedNetworks: [IPNetwork]
    /// Longest URL accepted, in bytes.
    public static let maxURLBytes = 2048

    public init(allowHTTP: Bool = false, allowedNetworks: [IPNetwork] = []) {
        self.allowHTTP = allowHTTP
        self.allowedNetworks = allowedNetworks
    }

    /// Checks the URL's form only (no DNS). The grammar is a strict subset of RFC 3986, so that
    /// libcurl reads the same host as this check:
    ///
    ///     URI       = scheme "://" authority path-abempty [ "?" query ]   ; no userinfo, no fragment
    ///     authority = host [ ":" port ]
    ///     host      = "[" IPv6address "]" / reg-name                     ; reg-name: LDH labels, no trailing dot
    ///     path, query: unreserved / pct-encoded / sub-delims / ":" / "@" / "/" / "?"
    public func validate(url: String) throws -> WebhookURL {
        func fail(_ message: String) -> WebhookTargetError { WebhookTargetError(.invalidURL, message) }
        let bytes = Array(url.utf8)
        guard bytes.count <= Self.maxURLBytes else {
            throw fail("the URL is \(bytes.count) bytes long: at most \(Self.maxURLBytes) are accepted")
        }
        if let i = bytes.firstIndex(where: { !Self.isURLByte($0) }) {
            throw fail(
                "the URL has a character not allowed in a URL at byte \(i + 1): percent-encode it (spaces, quotes, "
                    + "backslashes, control and non-ASCII characters are not accepted)"
            )
        }
        if bytes.contains(UInt8(ascii: "#")) {
            throw fail("remove the fragment (#…): it is never sent to the receiver")
        }

        guard let schemeEnd = url.range(of: "://") else {
            throw fail("the URL must start with https://")
        }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        switch scheme {
        case "https": break
        case "http" where allowHTTP: break
        case "http": throw fail("use https://: this server does not send webhooks over plain http")
        default: throw fail("the scheme must be https (\"\(scheme)\" is not accepted)")
        }

        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        let tail = rest[authorityEnd...]
        if authority.contains("@") {
            throw fail("remove the user:password@ part: webhooks are authenticated by their signature, not the URL")
        }
        if tail.contains("[") || tail.contains("]") {
            throw fail("[ and ] may only enclose an IPv6 host: percent-encode them in the path or query")
        }
        if let bad = Self.badPercentEncoding(tail) {
            throw fail("\"\(bad)\" is not a valid percent-encoding: % must be followed by two hex digits")
        }

        // Host and port.
        var host: String
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw fail("the IPv6 host has no closing ]") }
            let inside = String(authority[authority.index(after: authority.startIndex)..<close])
            guard let literal = IPAddress(inside), case .v6 = literal else {
                throw fail(
                    "\"\(inside)\" in [ ] is not an IPv6 address (zone identifiers such as %eth0 are not accepted)"
                )
            }
            host = literal.description
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("after the IPv6 host ] only :port may follow") }
                portText = after.dropFirst()
            }
        } else {
            let colon = authority.firstIndex(of: ":")
            host = authority[..<(colon ?? authority.endIndex)].lowercased()
            if let colon { portText = authority[authority.index(after: colon)...] }
            try Self.checkRegName(host, fail)
        }

        var port = scheme == "https" ? 443 : 80
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
                let value = Int(portText), (1...65535).contains(value)
            else { throw fail("the port must be a number from 1 to 65535 (\"\(portText)\" is not)") }
            port = value
        }
        return WebhookURL(string: url, scheme: scheme, host: host, port: port)
    }

    /// Resolves the host (getaddrinfo: blocking, call off the event loop) and checks every
    /// address; refuses if any is blocked, naming it and why. Returns the first address to pin.
    public func resolve(_ url: WebhookURL) throws -> ResolvedWebhookTarget {
        let addresses = try Self.lookUp(url.host)
        for address in addresses {
            guard let reason = blockedReason(address) else { continue }
            // A name's address is not shown: parties would learn what the operator's internal names resolve to.
            let subject = address.description == url.host ? "\(address) is" : "\(url.host) resolves to"
            throw WebhookTargetError(.blockedAddress, "\(subject) \(reason): webhooks go to public addresses only")
        }
        return ResolvedWebhookTarget(url: url, address: addresses[0].description)
    }

    /// Why `address` may not receive webhooks under this policy, or nil.
    public func blockedReason(_ address: IPAddress) -> String? {
        allowedNetworks.contains { $0.contains(address) } ? nil : address.blockedReason
    }

    // MARK: Helpers

    /// RFC 3986 unreserved, gen-delims, sub-delims and "%"; nothing else.
    private static func isURLByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "-._~:/?#[]@!$&'()*+,;=%".utf8.contains(b)
        }
    }

    private static func badPercentEncoding(_ s: Substring) -> String? {
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "%") {
                let ok = i + 2 < b.count && isHex(b[i + 1]) && isHex(b[i + 2])
                if !ok { return String(decoding: b[i..<min(b.count, i + 3)], as: UTF8.self) }
                i += 3
            } else {
                i += 1
            }
        }
        return nil
    }

    private static func isHex(_ b: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(b)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(b)
    }

    /// Letters, digits, "-" and "_" in dot-separated labels of 1–63 bytes, 253 bytes at most.
    private static func checkRegName(_ host: String, _ fail: (String) -> WebhookTargetError) throws {
        guard !host.isEmpty else { throw fail("the URL has no host") }
        guard host.utf8.count <= 253 else { throw fail("the host name is longer than 253 bytes") }
        if host.hasSuffix(".") {
            // libcurl would look "example.com." up itself instead of using the pinned address.
            throw fail("remove the trailing dot from the host name \"\(host)\"")
        }
        for label in host.split(separator: ".", omittingEmptySubsequences: false) {
            guard (1...63).contains(label.utf8.count),
                label.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || isAlphanumeric($0) })
            else {
                throw fail(
                    "\"\(host)\" is not a host name: use letters, digits and hyphens in labels of 1–63 characters "
                        + "(an internationalized name in its xn-- form)"
                )
            }
        }
    }

    private static func isAlphanumeric(_ b: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
    }

    /// getaddrinfo's numeric answers for `host`, in its order (RFC 6724), without duplicates.
    /// glibc reads odd IPv4 forms ("2130706433", "0x7f.1") as libcurl does: the answer is what is judged.
    static func lookUp(_ host: String) throws -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, nil, &hints, &list)
        guard rc == 0 else {
            throw WebhookTargetError(.unresolvable, "cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var addresses: [IPAddress] = []
        var next = list
        while let info = next?.pointee {
            next = info.ai_next
            guard let sa = info.ai_addr else { continue }
            let address: IPAddress
            switch info.ai_family {
            case AF_INET:
                address = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { p in
                    var a = p.pointee.sin_addr
                    return .v4(withUnsafeBytes(of: &a) { Array($0) })
                }
            case AF_INET6:
                address = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                    var a = p.pointee.sin6_addr
                    return .v6(withUnsafeBytes(of: &a) { Array($0) })
                }
            default: continue
            }
            if !addresses.contains(address) { addresses.append(address) }
        }
        guard !addresses.isEmpty else {
            throw WebhookTargetError(.unresolvable, "cannot resolve \(host): no IPv4 or IPv6 address")
        }
        return addresses
    }
}

/// A webhook URL whose form `WebhookTargetPolicy.validate` accepted; its host is not yet checked.
public struct WebhookURL: Sendable, Equatable {
    /// The URL as given (send this).
    public let string: String
    /// "https" or "http".
    public let scheme: String
    /// Lowercased; an IPv6 address without brackets.
    public let host: String
    public let port: Int
}

/// A webhook URL whose every address was checked, and the address to connect to.
public struct ResolvedWebhookTarget: Sendable {
    public let url: WebhookURL
    /// Numeric IPv4 or IPv6 address (no brackets).
    public let address: String

    /// `HTTPClientRequest.resolve` entries pinning `url.host:url.port` to `address`; empty when
    /// the host is itself an address (nothing to look up, and libcurl 7.88 rejects an entry whose
    /// host is a bracketed IPv6 address).
    public var curlResolveEntries: [String] {
        if IPAddress(url.host) != nil { return [] }
        let pinned = address.contains(":") ? "[\(address)]" : address
        return ["\(url.host):\(url.port):\(pinned)"]
    }
}

/// Why a webhook URL or network was refused; `message` says what to change.
public struct WebhookTargetError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The URL's form (validate).
        case invalidURL
        /// A network in the policy's configuration.
        case invalidNetwork
        /// DNS gave no address.
        case unresolvable
        /// An address is private or special.
        case blockedAddress
    }
    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
