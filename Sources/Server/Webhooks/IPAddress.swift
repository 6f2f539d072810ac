import Glibc

/// A numeric IPv4 or IPv6 address, parsed strictly (`inet_pton`: dotted quad only, no
/// `0x7f.1` or `2130706433`), and whether webhooks may be sent to it.
public enum IPAddress: Sendable, Equatable, CustomStringConvertible {
    /// 4 bytes.
    case v4([UInt8])
    /// 16 bytes.
    case v6([UInt8])

    public init?(_ text: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self = .v4(withUnsafeBytes(of: &v4) { Array($0) })
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            self = .v6(withUnsafeBytes(of: &v6) { Array($0) })
        } else {
            return nil
        }
    }

    /// The numeric form (`inet_ntop`), e.g. `10.0.0.5`, `::ffff:127.0.0.1`.
    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch self {
        case .v4(let b):
            var a = in_addr()
            withUnsafeMutableBytes(of: &a) { $0.copyBytes(from: b) }
            inet_ntop(AF_INET, &a, &text, socklen_t(text.count))
        case .v6(let b):
            var a = in6_addr()
            withUnsafeMutableBytes(of: &a) { $0.copyBytes(from: b) }
            inet_ntop(AF_INET6, &a, &text, socklen_t(text.count))
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    var bytes: [UInt8] {
        switch self {
        case .v4(let b), .v6(let b): return b
        }
    }

    /// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), else self.
    var unmapped: IPAddress {
        if case .v6(let b) = self, b[0..<10].allSatisfy({ $0 == 0 }), b[10] == 0xff, b[11] == 0xff {
            return .v4(Array(b[12..<16]))
        }
        return self
    }

    /// Why the address is blocked as a webhook destination (a phrase naming the range, e.g.
    /// "a private address (RFC 1918, 10.0.0.0/8)"), or nil if it is a public address.
    public var blockedReason: String? {
        switch self {
        case .v4:
            return IPAddress.blockedV4.first { $0.network.contains(self) }?.reason
        case .v6(let b):
            for range in IPAddress.blockedV6 where range.network.contains(self) {
                guard let embedded = range.embeddedV4 else { return range.reason }
                let v4 = IPAddress.v4(Array(b[embedded..<embedded + 4]))
                guard let inner = v4.blockedReason else { return nil }
                return "\(range.reason) of \(v4), \(inner)"
            }
            return nil
        }
    }

    private struct BlockedRange: Sendable {
        let network: IPNetwork
        let reason: String
        /// For prefixes that carry an IPv4 address: its byte offset; the IPv4 address is judged instead.
        var embeddedV4: Int? = nil
    }

    private static func range(_ cidr: String, _ reason: String, embeddedV4: Int? = nil) -> BlockedRange {
        BlockedRange(network: try! IPNetwork(cidr: cidr), reason: reason, embeddedV4: embeddedV4)
    }

    // IANA IPv4 Special-Purpose Address Registry (RFC 6890) and multicast/reserved space.
    private static let blockedV4: [BlockedRange] = [
        range("0.0.0.0/8", "a \"this network\" address (0.0.0.0/8)"),
        range("10.0.0.0/8", "a private address (RFC 1918, 10.0.0.0/8)"),
        range("100.64.0.0/10", "a shared carrier-grade NAT address (100.64.0.0/10)"),
        range("127.0.0.0/8", "a loopback address (127.0.0.0/8)"),
        range(
            "169.254.0.0/16",
            "a link-local address (169.254.0.0/16, which holds the EC2 instance metadata service 169.254.169.254)"
        ),
        range("172.16.0.0/12", "a private address (RFC 1918, 172.16.0.0/12)"),
        range("192.0.0.0/24", "an IETF protocol assignment (192.0.0.0/24)"),
        range("192.0.2.0/24", "a documentation address (TEST-NET-1, 192.0.2.0/24)"),
        range("192.88.99.0/24", "a 6to4 relay anycast address (192.88.99.0/24)"),
        range("192.168.0.0/16", "a private address (RFC 1918, 192.168.0.0/16)"),
        range("198.18.0.0/15", "a benchmarking address (198.18.0.0/15)"),
        range("198.51.100.0/24", "a documentation address (TEST-NET-2, 198.51.100.0/24)"),
        range("203.0.113.0/24", "a documentation address (TEST-NET-3, 203.0.113.0/24)"),
        range("224.0.0.0/4", "a multicast address (224.0.0.0/4)"),
        range("240.0.0.0/4", "a reserved address (240.0.0.0/4, including broadcast 255.255.255.255)"),
    ]

    // IANA IPv6 Special-Purpose Address Registry; first match wins, so narrower ranges come first.
    private static let blockedV6: [BlockedRange] = [
        range("::/128", "the unspecified address (::/128)"),
        range("::1/128", "the loopback address (::1/128)"),
        range("::ffff:0:0/96", "an IPv4-mapped address (::ffff:0:0/96)", embeddedV4: 12),
        range("::/96", "a deprecated IPv4-compatible address (::/96)"),
        range("64:ff9b::/96", "a NAT64 address (64:ff9b::/96)", embeddedV4: 12),
        // Local-use NAT64 (RFC 8215): prefixes from /48 to /96 put the IPv4 address in different
        // bytes, so none can be judged by its embedded address; nothing public lives there.
        range("64:ff9b:1::/48", "a local-use NAT64 address (64:ff9b:1::/48)"),
        range("100::/64", "a discard-only address (100::/64)"),
        range("2001::/32", "a Teredo address (2001::/32, within the IETF protocol assignments 2001::/23)"),
        range("2001::/23", "an IETF protocol assignment (2001::/23)"),
        range("2001:db8::/32", "a documentation address (2001:db8::/32)"),
        range("3fff::/20", "a documentation address (3fff::/20)"),
        range("2002::/16", "a 6to4 address (2002::/16)", embeddedV4: 2),
        range(
            "fc00::/7",
            "a unique local address (fc00::/7, which holds the EC2 instance metadata service fd00:ec2::254)"
        ),
        range("fe80::/10", "a link-local address (fe80::/10)"),
        range("fec0::/10", "a site-local address (fec0::/10)"),
        range("ff00::/8", "a multicast address (ff00::/8)"),
        // Everything else outside global unicast space: unassigned or special (e.g. 5f00::/16 SRv6).
        range("::/3", "not a global unicast address (outside 2000::/3)"),
        range("4000::/2", "not a global unicast address (outside 2000::/3)"),
        range("8000::/1", "not a global unicast address (outside 2000::/3)"),
    ]
}

/// A CIDR network (`10.0.0.0/8`, `2001:db8::/32`). The address must have no bits set past the
/// prefix. An IPv4 network also contains the IPv4-mapped IPv6 form of its addresses.
public struct IPNetwork: Sendable, Equatable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    public init(cidr: String) throws {
        let parts = cidr.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(String(parts[0])) else {
            throw WebhookTargetError(
                .invalidNetwork,
                "\"\(cidr)\" is not a network: write an address and a prefix length, e.g. 10.0.0.0/8 or fd00::/8"
            )
        }
        let bits = address.bytes.count * 8
        guard parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), parts[1].count <= 3, let length = Int(parts[1]),
            (0...bits).contains(length)
        else {
            throw WebhookTargetError(.invalidNetwork, "\"\(cidr)\": the prefix length must be 0–\(bits)")
        }
        self.address = address
        self.prefixLength = length
        let masked = Self.mask(address.bytes, length)
        guard masked == address.bytes else {
            let base = address.bytes.count == 4 ? IPAddress.v4(masked) : IPAddress.v6(masked)
            throw WebhookTargetError(
                .invalidNetwork,
                "\"\(cidr)\" has bits set past the prefix: did you mean \(base)/\(length)?"
            )
        }
    }

    public func contains(_ other: IPAddress) -> Bool {
        let candidate = address.bytes.count == 4 ? other.unmapped : other
        guard candidate.bytes.count == address.bytes.count else { return false }
        return Self.mask(candidate.bytes, prefixLength) == address.bytes
    }

    public var description: String { "\(address)/\(prefixLength)" }

    private static func mask(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { i, byte in
            let keep = min(8, max(0, length - i * 8))
            return keep == 0 ? 0 : byte & UInt8(truncatingIfNeeded: 0xff << (8 - keep))
        }
    }
}
