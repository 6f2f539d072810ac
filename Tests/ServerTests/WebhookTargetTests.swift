import Testing

@testable import Server

/// SSRF protection for webhooks: which addresses are blocked, which URLs are refused, and what
/// real resolution (getaddrinfo) of odd and local hosts gives.
struct WebhookTargetTests {
    // MARK: Address classification

    /// Blocked addresses, with a word the reason must contain; each range's first and last address
    /// where that matters, and the addresses just outside are in `publicAddresses`.
    static let blocked: [(String, String)] = [
        ("0.0.0.0", "0.0.0.0/8"), ("0.255.255.255", "0.0.0.0/8"),
        ("10.0.0.0", "RFC 1918"), ("10.0.0.5", "RFC 1918"), ("10.255.255.255", "RFC 1918"),
        ("100.64.0.0", "carrier-grade NAT"), ("100.127.255.255", "carrier-grade NAT"),
        ("127.0.0.1", "loopback"), ("127.255.255.255", "loopback"), ("127.0.0.2", "loopback"),
        ("169.254.0.0", "link-local"), ("169.254.169.254", "instance metadata"), ("169.254.255.255", "link-local"),
        ("172.16.0.0", "RFC 1918"), ("172.31.255.255", "RFC 1918"),
        ("192.0.0.0", "IETF protocol"), ("192.0.0.255", "IETF protocol"),
        ("192.0.2.0", "TEST-NET-1"), ("192.0.2.255", "TEST-NET-1"),
        ("192.88.99.1", "6to4 relay"),
        ("192.168.0.0", "RFC 1918"), ("192.168.255.255", "RFC 1918"),
        ("198.18.0.0", "benchmarking"), ("198.19.255.255", "benchmarking"),
        ("198.51.100.7", "TEST-NET-2"), ("203.0.113.9", "TEST-NET-3"),
        ("224.0.0.1", "multicast"), ("239.255.255.255", "multicast"),
        ("240.0.0.0", "reserved"), ("255.255.255.255", "broadcast"),
        ("::", "unspecified"), ("::1", "loopback"), ("::2", "IPv4-compatible"),
        ("::ffff:127.0.0.1", "IPv4-mapped"), ("::ffff:169.254.169.254", "instance metadata"),
        ("::ffff:10.1.2.3", "RFC 1918"),
        ("64:ff9b::7f00:1", "NAT64"), ("64:ff9b::a9fe:a9fe", "instance metadata"),
        ("64:ff9b:1::c0a8:101", "local-use NAT64"),
        ("64:ff9b:1::101:101", "local-use NAT64"),
        // A /48 local-use NAT64 embeds 169.254.169.254 in bytes 6–7 and 9–10 (RFC 6052): blocked whatever it embeds.
        ("64:ff9b:1:a9fe:a9:fe00:808:808", "local-use NAT64"),
        ("100::", "discard-only"), ("100::ffff:ffff:ffff:ffff", "discard-only"),
        ("2001::1", "Teredo"), ("2001:0:ffff::1", "Teredo"), ("2001:1ff:ffff::1", "IETF protocol"),
        ("2001:db8::1", "documentation"), ("2001:db8:ffff::1", "documentation"), ("3fff::1", "documentation"),
        ("2002:7f00:1::", "6to4"), ("2002:a00:5::1", "RFC 1918"),
        ("fc00::", "unique local"), ("fd00:ec2::254", "fd00:ec2::254"), ("fdff:ffff::1", "unique local"),
        ("fe80::1", "link-local"), ("febf:ffff::1", "link-local"),
        ("fec0::1", "site-local"), ("feff::1", "site-local"),
        ("ff02::1", "multicast"), ("ff00::", "multicast"),
        ("1fff:ffff::1", "outside 2000::/3"), ("4000::1", "outside 2000::/3"), ("5f00::1", "outside 2000::/3"),
    ]

    /// Public addresses, many just outside a blocked range.
    static let publicAddresses = [
        "8.8.8.8", "1.1.1.1", "1.0.0.0", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0",
        "126.255.255.255", "128.0.0.0", "169.253.255.255", "169.255.0.0", "172.15.255.255", "172.32.0.0",
        "192.0.1.0", "192.0.3.0", "192.88.98.255", "192.88.100.0", "192.167.255.255", "192.169.0.0",
        "198.17.255.255", "198.20.0.0", "198.51.99.255", "198.51.101.0", "203.0.112.255", "203.0.114.0",
        "223.255.255.255",
        "2606:4700::1111", "2001:4860:4860::8888", "2000::1", "2001:200::1", "2001:db7:ffff::1", "2001:db9::1",
        "2003::1", "3ffe::1", "3fff:1000::1", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1",
    ]

    @Test(arguments: blocked)
    func specialAddressIsBlockedWithAReasonNamingItsRange(address: String, expected: String) throws {
        let ip = try #require(IPAddress(address))
        let reason = try #require(ip.blockedReason, "\(address) should be blocked")
        #expect(reason.contains(expected), "\(address): \(reason)")
    }

    @Test(arguments: publicAddresses)
    func publicAddressPasses(address: String) throws {
        let ip = try #require(IPAddress(address))
        #expect(ip.blockedReason == nil, "\(address): \(ip.blockedReason ?? "")")
    }

    @Test func addressesParseStrictlyLikeInetPton() {
        for odd in [
            "2130706433", "0x7f000001", "0x7f.1", "127.1", "0177.0.0.1", "127.0.0.1.", " 127.0.0.1", "[::1]",
            "fe80::1%eth0", "",
        ] {
            #expect(IPAddress(odd) == nil, "\(odd)")
        }
        #expect(IPAddress("127.0.0.1") == .v4([127, 0, 0, 1]))
        #expect(IPAddress("FD00:EC2::254")?.description == "fd00:ec2::254")
    }

    @Test func networksContainTheirAddressesAndTheIPv4MappedForm() throws {
        let loopbackOne = try IPNetwork(cidr: "127.0.0.1/32")
        #expect(loopbackOne.contains(IPAddress("127.0.0.1")!))
        #expect(!loopbackOne.contains(IPAddress("127.0.0.2")!))
        #expect(loopbackOne.contains(IPAddress("::ffff:127.0.0.1")!))
        #expect(!loopbackOne.contains(IPAddress("::1")!))
        let ula = try IPNetwork(cidr: "fd00::/8")
        #expect(ula.contains(IPAddress("fd12:3456::1")!))
        #expect(!ula.contains(IPAddress("fe00::1")!))
        #expect(!ula.contains(IPAddress("10.0.0.1")!))
        #expect(try IPNetwork(cidr: "0.0.0.0/0").contains(IPAddress("8.8.8.8")!))
        #expect(try IPNetwork(cidr: "172.16.0.0/12").contains(IPAddress("172.31.255.255")!))
        #expect(try !IPNetwork(cidr: "172.16.0.0/12").contains(IPAddress("172.32.0.0")!))
    }

    @Test func malformedNetworksAreRefusedSayingWhy() {
        for (cidr, expected) in [
            ("10.0.0.0", "prefix length"), ("10.0.0.0/33", "0–32"), ("::/129", "0–128"), ("10.0.0.5/8", "10.0.0.0/8"),
            ("10.0.0.0/-1", "0–32"), ("10.0.0.0/+8", "0–32"), ("localhost/32", "not a network"),
            ("fd00::1/8", "fd00::/8"),
        ] {
            let error = #expect(throws: WebhookTargetError.self) { try IPNetwork(cidr: cidr) }
            #expect(error?.code == .invalidNetwork)
            #expect(error?.message.contains(expected) == true, "\(cidr): \(error?.message ?? "")")
        }
    }

    // MARK: URL form

    @Test func wellFormedURLsAreAcceptedAndTheirHostAndPortRead() throws {
        let policy = WebhookTargetPolicy()
        let a = try policy.validate(url: "https://Hooks.Example.COM/cleanroom/events?party=a%20b&x=@y")
        #expect(
            a
                == WebhookURL(
                    string: "https://Hooks.Example.COM/cleanroom/events?party=a%20b&x=@y",
                    scheme: "https",
                    host: "hooks.example.com",
                    port: 443
                )
        )
        #expect(try policy.validate(url: "https://example.com:8443").port == 8443)
        #expect(try policy.validate(url: "HTTPS://example.com?q").host == "example.com")
        let v6 = try policy.validate(url: "https://[2606:4700:0::1111]:9000/x")
        #expect(v6.host == "2606:4700::1111" && v6.port == 9000)
        #expect(try WebhookTargetPolicy(allowHTTP: true).validate(url: "http://example.com/").port == 80)
    }

    @Test func malformedURLsAreRefusedSayingWhatToChange() {
        let long = "https://example.com/" + String(repeating: "a", count: 2029)
        let cases: [(String, String)] = [
            ("http://example.com/", "use https://"),
            ("ftp://example.com/", "scheme must be https"),
            ("file:///etc/passwd", "scheme must be https"),
            ("example.com/hook", "must start with https://"),
            ("https://user:pw@example.com/", "user:password@"),
            ("https://example.com@127.0.0.1/", "user:password@"),
            ("https://example.com/#frag", "fragment"),
            ("https:///path", "no host"),
            ("https://:443/", "no host"),
            ("https://example.com:0/", "1 to 65535"),
            ("https://example.com:65536/", "1 to 65535"),
            ("https://example.com:/", "1 to 65535"),
            ("https://example.com:+443/", "1 to 65535"),
            ("https://example.com:443x/", "1 to 65535"),
            ("https://example.com./", "trailing dot"),
            ("https://exa mple.com/", "not allowed"),
            ("https://example.com\\@127.0.0.1/", "not allowed"),
            ("https://exämple.com/", "not allowed"),
            ("https://example.com/\u{0}", "not allowed"),
            ("https://ex%41mple.com/", "not a host name"),
            ("https://a..b/", "not a host name"),
            ("https://" + String(repeating: "a", count: 64) + ".com/", "not a host name"),
            ("https://[::1/", "closing ]"),
            ("https://[fe80::1%25eth0]/", "zone"),
            ("https://[127.0.0.1]/", "not an IPv6"),
            ("https://[::1]x/", "only :port"),
            ("https://example.com/[x]", "[ and ]"),
            ("https://example.com/%zz", "percent-encoding"),
            ("https://example.com/%4", "percent-encoding"),
            (long, "2048"),
        ]
        let policy = WebhookTargetPolicy()
        for (url, expected) in cases {
            let error = #expect(throws: WebhookTargetError.self) { try policy.validate(url: url) }
            #expect(error?.code == .invalidURL)
            #expect(error?.message.contains(expected) == true, "\(url): \(error?.message ?? "")")
        }
        #expect(throws: Never.self) { try policy.validate(url: String(long.dropLast())) }
    }

    // MARK: Resolution (real getaddrinfo)

    @Test func localhostIsRefusedAsLoopback() throws {
        let policy = WebhookTargetPolicy(allowHTTP: true)
        let error = #expect(throws: WebhookTargetError.self) {
            try policy.resolve(policy.validate(url: "http://localhost:8080/"))
        }
        #expect(error?.code == .blockedAddress)
        #expect(error?.message.hasPrefix("localhost resolves to ") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("loopback") == true)
        #expect(error?.message.hasSuffix("webhooks go to public addresses only") == true)
    }

    @Test(arguments: [
        "https://2130706433/", "https://0x7f000001/", "https://0x7f.1/", "https://127.1/", "https://0177.0.0.1/",
        "https://127.0.0.1/", "https://[::1]/", "https://[::ffff:127.0.0.1]/", "https://[::ffff:7f00:1]/",
    ])
    func numericLoopbackInAnyFormIsRefused(url: String) throws {
        let policy = WebhookTargetPolicy()
        let error = #expect(throws: WebhookTargetError.self) { try policy.resolve(policy.validate(url: url)) }
        #expect(error?.code == .blockedAddress)
        #expect(error?.message.contains("loopback") == true, "\(url): \(error?.message ?? "")")
    }

    @Test func oddNumericFormsAreJudgedByTheAddressGetaddrinfoGives() throws {
        let policy = WebhookTargetPolicy()
        let error = #expect(throws: WebhookTargetError.self) {
            try policy.resolve(policy.validate(url: "https://0xa9fea9fe/latest/meta-data/"))
        }
        #expect(
            error?.message == "0xa9fea9fe resolves to " + IPAddress("169.254.169.254")!.blockedReason!
                + ": webhooks go to public addresses only"
        )
        #expect(error?.message.contains("instance metadata") == true)
        let literal = #expect(throws: WebhookTargetError.self) {
            try policy.resolve(policy.validate(url: "https://10.0.0.5/"))
        }
        #expect(
            literal?.message.hasPrefix("10.0.0.5 is a private address (RFC 1918") == true,
            "\(literal?.message ?? "")"
        )
    }

    @Test func anAllowedNetworkLetsItsAddressesThroughAndNoOthers() throws {
        let policy = WebhookTargetPolicy(allowHTTP: true, allowedNetworks: [try IPNetwork(cidr: "127.0.0.1/32")])
        let target = try policy.resolve(policy.validate(url: "http://127.0.0.1:9999/hook"))
        #expect(target.address == "127.0.0.1")
        #expect(target.curlResolveEntries == [])  // a numeric host needs no pin
        let odd = try policy.resolve(policy.validate(url: "http://2130706433:9999/hook"))
        #expect(odd.address == "127.0.0.1")
        let error = #expect(throws: WebhookTargetError.self) {
            try policy.resolve(policy.validate(url: "http://127.0.0.2/"))
        }
        #expect(error?.message.contains("loopback") == true)
        #expect(throws: WebhookTargetError.self) { try policy.resolve(policy.validate(url: "http://[::1]/")) }
    }

    @Test func aPublicNumericHostResolvesToItselfWithoutAPin() throws {
        let policy = WebhookTargetPolicy()
        let target = try policy.resolve(policy.validate(url: "https://8.8.8.8/"))
        #expect(target.address == "8.8.8.8" && target.curlResolveEntries == [])
        let v6 = try policy.resolve(policy.validate(url: "https://[2606:4700::1111]:8443/"))
        #expect(v6.address == "2606:4700::1111" && v6.curlResolveEntries == [])
    }

    @Test func aNamedHostIsPinnedToTheCheckedAddress() throws {
        let url = try WebhookTargetPolicy().validate(url: "https://hooks.example.com:8443/x")
        #expect(
            ResolvedWebhookTarget(url: url, address: "93.184.216.34").curlResolveEntries == [
                "hooks.example.com:8443:93.184.216.34"
            ]
        )
        #expect(
            ResolvedWebhookTarget(url: url, address: "2606:2800::1").curlResolveEntries == [
                "hooks.example.com:8443:[2606:2800::1]"
            ]
        )
    }

    @Test func anUnresolvableHostIsRefused() throws {
        let policy = WebhookTargetPolicy()
        let error = #expect(throws: WebhookTargetError.self) {
            try policy.resolve(policy.validate(url: "https://no-such-host.invalid/"))
        }
        #expect(error?.code == .unresolvable)
        #expect(error?.message.hasPrefix("cannot resolve no-such-host.invalid") == true)
    }
}
