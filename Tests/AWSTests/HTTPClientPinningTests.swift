import Foundation
import TestSupport
import Testing

@testable import AWS

#if canImport(Glibc)
    import Glibc
#endif

/// The outbound controls webhooks rely on, over real loopback sockets: `resolve` pins a host to
/// an address (no DNS), `bypassProxy` ignores proxy variables, `totalTimeout` bounds a transfer,
/// and redirects come back as they are instead of being followed.
@Suite(.serialized)
struct HTTPClientPinningTests {
    @Test func aPinnedRequestReachesThePinnedAddressWithoutDNS() async throws {
        let responder = try LoopbackResponder(body: "pinned")
        defer { responder.stop() }
        let client = HTTPClient()
        let port = responder.port
        let response = try await client.send(
            HTTPClientRequest(
                method: "POST",
                url: "http://pinned.invalid:\(port)/hook",
                body: .bytes(Array("event".utf8)),
                resolve: ["pinned.invalid:\(port):127.0.0.1"]
            )
        )
        #expect(response.status == 200)
        #expect(String(decoding: try await response.body.collect(limit: 1024), as: UTF8.self) == "pinned")
        let request = try #require(responder.requests.first)
        #expect(request.hasPrefix("POST /hook HTTP/1.1\r\n"))
        #expect(request.lowercased().contains("\r\nhost: pinned.invalid:\(port)\r\n"))
        #expect(request.hasSuffix("\r\n\r\nevent"))
    }

    @Test func withoutAPinTheSameHostDoesNotResolve() async throws {
        let error = await #expect(throws: HTTPClientError.self) {
            _ = try await HTTPClient().send(HTTPClientRequest(method: "GET", url: "http://pinned.invalid:9/"))
        }
        #expect(error?.curlCode == 6)  // CURLE_COULDNT_RESOLVE_HOST
    }

    /// curl matches reusable connections by host name, not address: a pinned request on a
    /// reused handle must still go to its own pin, not to a kept-alive connection made under another.
    @Test func eachPinnedRequestConnectsAfreshToItsOwnAddress() async throws {
        let one = try LoopbackResponder(address: "127.0.0.1", body: "one")
        defer { one.stop() }
        let two = try LoopbackResponder(address: "127.0.0.2", port: one.port, body: "two")
        defer { two.stop() }
        var configuration = HTTPClient.Configuration()
        configuration.maxConcurrentTransfers = 1  // one curl handle, one connection cache
        let client = HTTPClient(configuration: configuration)
        let url = "http://pinned.invalid:\(one.port)/"
        for (address, expected) in [("127.0.0.1", "one"), ("127.0.0.2", "two"), ("127.0.0.1", "one")] {
            let response = try await client.send(
                HTTPClientRequest(method: "GET", url: url, resolve: ["pinned.invalid:\(one.port):\(address)"])
            )
            #expect(String(decoding: try await response.body.collect(limit: 1024), as: UTF8.self) == expected)
        }
        #expect(one.connections == 2 && two.connections == 1)
    }

    /// The environment is process-wide: `no_proxy` keeps loopback URLs of tests running alongside
    /// direct while `http_proxy` points at a dead port; both are restored afterwards.
    @Test func bypassProxyIgnoresAProxyFromTheEnvironment() async throws {
        let responder = try LoopbackResponder(body: "direct")
        defer { responder.stop() }
        let deadPort = try TestEnvironment.freePort()
        let client = HTTPClient()
        let port = responder.port
        func request(bypassProxy: Bool) -> HTTPClientRequest {
            HTTPClientRequest(
                method: "GET",
                url: "http://pinned.invalid:\(port)/",
                resolve: ["pinned.invalid:\(port):127.0.0.1"],
                bypassProxy: bypassProxy
            )
        }
        try await withEnvironment([
            "http_proxy": "http://127.0.0.1:\(deadPort)", "no_proxy": "127.0.0.1,localhost,::1",
        ]) {
            // Control: without the bypass, curl goes to the (dead) proxy.
            let error = await #expect(throws: HTTPClientError.self) {
                _ = try await client.send(request(bypassProxy: false))
            }
            #expect(error?.code == .connectionFailed)
            let response = try await client.send(request(bypassProxy: true))
            #expect(response.status == 200)
            #expect(String(decoding: try await response.body.collect(limit: 1024), as: UTF8.self) == "direct")
        }
        #expect(responder.requests.count == 1)
    }

    @Test func totalTimeoutAbortsAResponderThatNeverAnswers() async throws {
        let responder = try LoopbackResponder(mode: .silent)
        defer { responder.stop() }
        var configuration = HTTPClient.Configuration()
        configuration.totalTimeout = 0.5
        let client = HTTPClient(configuration: configuration)
        let start = Date()
        let error = await #expect(throws: HTTPClientError.self) {
            _ = try await client.send(HTTPClientRequest(method: "GET", url: "http://127.0.0.1:\(responder.port)/"))
        }
        let elapsed = Date().timeIntervalSince(start)
        #expect(error?.code == .timedOut)
        #expect(elapsed >= 0.4 && elapsed < 5, "took \(elapsed) s")
        #expect(responder.connections == 1)
    }

    @Test func aRedirectIsReturnedAsItIsNotFollowed() async throws {
        let target = try LoopbackResponder(body: "followed")
        defer { target.stop() }
        let redirect = try LoopbackResponder(mode: .redirect(to: "http://127.0.0.1:\(target.port)/elsewhere"))
        defer { redirect.stop() }
        let response = try await HTTPClient().send(
            HTTPClientRequest(method: "POST", url: "http://127.0.0.1:\(redirect.port)/", body: .bytes([1]))
        )
        #expect(response.status == 302)
        #expect(response.header("location") == "http://127.0.0.1:\(target.port)/elsewhere")
        _ = try await response.body.collect(limit: 1024)
        #expect(redirect.requests.count == 1 && target.connections == 0)
    }
}

/// Sets environment variables for the duration of `body`, then restores them.
private func withEnvironment(_ values: [String: String], _ body: () async throws -> Void) async throws {
    let saved = values.keys.map { ($0, getenv($0).map { String(cString: $0) }) }
    for (name, value) in values { setenv(name, value, 1) }
    defer {
        for (name, value) in saved {
            if let value { setenv(name, value, 1) } else { unsetenv(name) }
        }
    }
    try await body()
}

/// A tiny HTTP/1.1 responder on a loopback address: one thread per connection, keep-alive,
/// requests recorded as received (head and Content-Length body).
final class LoopbackResponder: @unchecked Sendable {
    enum Mode: Sendable {
        case ok(String)
        case redirect(to: String)
        /// Accepts and reads, never answers.
        case silent
    }

    let port: Int
    private let listener: Int32
    private let mode: Mode
    private let lock = NSLock()
    private var _requests: [String] = []
    private var _connections = 0
    private var open: [Int32] = []

    var requests: [String] { lock.withLock { _requests } }
    var connections: Int { lock.withLock { _connections } }

    convenience init(address: String = "127.0.0.1", port: Int = 0, body: String) throws {
        try self.init(address: address, port: port, mode: .ok(body))
    }

    init(address: String = "127.0.0.1", port: Int = 0, mode: Mode) throws {
        self.mode = mode
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, address, &sa.sin_addr)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
                guard bind(fd, p, length) == 0, listen(fd, 16) == 0 else { return -1 }
                return getsockname(fd, p, &length)
            }
        }
        guard rc == 0 else {
            close(fd)
            throw TestEnvironmentError("cannot listen on \(address):\(port): errno \(errno)")
        }
        listener = fd
        self.port = Int(UInt16(bigEndian: sa.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))  // wakes accept
        lock.withLock { for fd in open { shutdown(fd, Int32(SHUT_RDWR)) } }
    }

    private func acceptLoop() {
        defer { close(listener) }
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 { return }
            lock.withLock {
                _connections += 1
                open.append(fd)
            }
            Thread { [self] in serve(fd) }.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer {
            lock.withLock { open.removeAll { $0 == fd } }
            close(fd)
        }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            // One request: head, then Content-Length bytes.
            var request: [UInt8]?
            while request == nil {
                if let end = buffer.firstRange(of: Array("\r\n\r\n".utf8)) {
                    let head = String(decoding: buffer[..<end.upperBound], as: UTF8.self).lowercased()
                    let length =
                        head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                        .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) }
                        ?? 0
                    if buffer.count >= end.upperBound + length {
                        request = Array(buffer[..<(end.upperBound + length)])
                        buffer.removeFirst(end.upperBound + length)
                        break
                    }
                }
                let n = read(fd, &chunk, chunk.count)
                if n <= 0 { return }
                buffer += chunk[..<n]
            }
            lock.withLock { _requests.append(String(decoding: request!, as: UTF8.self)) }
            let response: String
            switch mode {
            case .silent: continue
            case .ok(let body): response = "HTTP/1.1 200 OK\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            case .redirect(let location):
                response = "HTTP/1.1 302 Found\r\nLocation: \(location)\r\nContent-Length: 0\r\n\r\n"
            }
            let bytes = Array(response.utf8)
            guard write(fd, bytes, bytes.count) == bytes.count else { return }
        }
    }
}

/// Found by a full test run: a client released before its worker threads started left them an
/// unowned reference to a freed pool, and the process crashed when one started. The test fails by
/// that crash (it did, every run, before the fix).
@Suite struct HTTPClientLifetimeTests {
    @Test func clientsReleasedAtOnceLeaveTheirThreadsSafe() async throws {
        var configuration = HTTPClient.Configuration()
        configuration.maxConcurrentTransfers = 2
        for _ in 0..<200 { _ = HTTPClient(configuration: configuration) }
        try await Task.sleep(nanoseconds: 300_000_000)  // let every thread start
    }
}
