import Foundation
import Synchronization
import Testing
import TestSupport

/// `cleanroomd serve` as a real child process.
@Suite(.serialized) struct CleanroomdServeTests {
    @Test func firstStartCreatesCredentialsAndPrintsTheirPathButNeverTheToken() async throws {
        let server = try await CleanroomdProcess.start()
        defer { server.stopInBackground() }
        let credentials = server.dataDirectory.appendingPathComponent("operator-credentials.json")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: credentials)) as? [String: Any]
        let token = try #require(json?["token"] as? String)
        #expect(server.stderr.contains(credentials.path))
        #expect(!server.stderr.contains(token) && !server.stdout.contains(token))
        let attributes = try FileManager.default.attributesOfItem(atPath: credentials.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let dirAttributes = try FileManager.default.attributesOfItem(atPath: server.dataDirectory.path)
        #expect((dirAttributes[.posixPermissions] as? Int) == 0o700)
        let port = server.port
        let response = try await offPool {
            let client = try RawHTTPClient(port: port)
            try client.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            return try client.readResponse()
        }
        #expect(response.status == 200 && response.bodyText == #"{"status":"ok"}"#)
        #expect(await server.stopped() == 0)
        // One access-log line per request on stdout.
        let line = try #require(server.stdout.split(separator: "\n").first)
        #expect(line.contains(#""path":"/healthz""#) && line.contains(#""status":200"#))
    }

    @Test func environmentVariablesSetTheListenAddressAndDataDirectory() async throws {
        let dir = try TestEnvironment.temporaryDirectory("env")
        // Started under the usual permissive umask, so the file modes below are cleanroomd's own
        // doing, whatever umask the test runner has.
        let runnerMask = umask(0o022)
        let server: CleanroomdProcess
        do {
            defer { umask(runnerMask) }
            server = try await CleanroomdProcess.start(
                arguments: ["--access-log", "off"],
                environment: ["CLEANROOM_LISTEN": "127.0.0.1:0", "CLEANROOM_DATA_DIR": dir.path + "/from-environment"])
        }
        defer { server.stopInBackground() }
        #expect(server.port > 0)
        #expect(FileManager.default.fileExists(atPath: server.dataDirectory.path + "/operator-credentials.json"))
        // Everything it made is its own alone, the database and its WAL included (they were 0644).
        let made = try FileManager.default.subpathsOfDirectory(atPath: server.dataDirectory.path)
        for path in made + [""] {
            var info = stat()
            guard lstat(server.dataDirectory.path + "/" + path, &info) == 0, info.st_mode & S_IFMT != S_IFLNK else { continue }
            #expect(info.st_mode & 0o077 == 0, "\(path): \(String(info.st_mode & 0o777, radix: 8))")
        }
        #expect(made.contains("cleanroom.sqlite") && made.contains("cleanroom.sqlite-wal"), "\(made)")
    }

    @Test func usageErrorsExitWithTwoAndSayWhatIsWrong() async throws {
        let cleanroomd = try TestEnvironment.executable("cleanroomd")
        let missing = try TestEnvironment.temporaryDirectory("usage").appendingPathComponent("typo").path
        for (arguments, message) in [
            (["serve", "--bogus"], "Unknown option '--bogus'"),
            (["serve", "--enclave", "cloud"], "--enclave must be local or nitro, not cloud"),
            (["serve", "--log-format", "xml"], "--log-format must be text or json, not xml"),
            (["serve", "--enclave-eif", "x.eif"], "--enclave-eif needs --enclave nitro"),
            (["serve", "--data-dir", missing, "--enclave-binary", missing + "/cleanroom-enclave"],
             "--enclave-binary \(missing)/cleanroom-enclave is not an executable file"),
            (["serve", "--data-dir", missing, "--enclave-binary", "/tmp"], "--enclave-binary /tmp is not an executable file"),
            (["serve", "--data-dir", missing, "--listen", "127.0.0.1"], "listen address 127.0.0.1 is not HOST:PORT"),
            (["admin", "enroll", "--data-dir", missing], "no cleanroomd data directory at \(missing)"),
            (["admin", "enroll", "--data-dir", missing, "--expires-in", "10"], "--expires-in is a number of seconds from 60"),
            (["audit", "verify", "--data-dir", missing], "no database at \(missing)"),
        ] {
            let result = try await runProcess(cleanroomd, arguments)
            #expect(result.status == 2, "\(arguments): \(result.stderrText)")
            #expect(result.stderrText.contains(message), "\(arguments): \(result.stderrText)")
            #expect(result.stdout.isEmpty, "\(arguments)")
            // The help pointed at is the subcommand's, also for what is found after parsing.
            let command = "cleanroomd " + arguments.prefix { !$0.hasPrefix("-") }.joined(separator: " ")
            #expect(result.stderrText.contains("See '\(command) --help'"), "\(arguments): \(result.stderrText)")
        }
        #expect(!FileManager.default.fileExists(atPath: missing), "a refused command created nothing")
    }

    /// A second server on a data directory another one serves would run its own jobs, standby
    /// enclave and startup recovery (failing the first one's running jobs as interrupted) against
    /// the same database: it is refused, naming the first one's pid, and changes nothing; once
    /// the first has stopped, the directory serves again. (A review started two by accident.)
    static func health(_ server: CleanroomdProcess) async throws -> Int {
        let port = server.port
        return try await offPool {
            let client = try RawHTTPClient(port: port)
            try client.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            return try client.readResponse().status
        }
    }

    @Test func aSecondServerOnTheSameDataDirectoryIsRefused() async throws {
        let first = try await CleanroomdProcess.start(arguments: ["--access-log", "off", "--no-enclave-standby"])
        let second = try await runProcess(
            try TestEnvironment.executable("cleanroomd"),
            ["serve", "--data-dir", first.dataDirectory.path, "--listen", "127.0.0.1:0", "--no-enclave-standby"])
        #expect(second.status == 1, "\(second.stderrText)")
        #expect(
            second.stderrText.contains("another cleanroomd (pid \(first.pid ?? 0)) is serving the data directory \(first.dataDirectory.path)"),
            "\(second.stderrText)")
        #expect(!second.stderrText.contains("listening on"))
        #expect(try await Self.health(first) == 200)
        #expect(await first.stopped() == 0)
        try first.start(arguments: ["--access-log", "off", "--no-enclave-standby"])
        #expect(try await Self.health(first) == 200)
        #expect(await first.stopped() == 0)
    }

    @Test func plainHTTPOnANonLoopbackAddressIsRefusedUnlessInsecureHTTP() async throws {
        let dir = try TestEnvironment.temporaryDirectory("refuse")
        let refused = try await runProcess(
            try TestEnvironment.executable("cleanroomd"), ["serve", "--listen", "0.0.0.0:0", "--data-dir", dir.path + "/d"])
        #expect(refused.status != 0)
        #expect(refused.stderrText.contains("--insecure-http"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/d"))
        let allowed = try await CleanroomdProcess.start(arguments: ["--listen", "0.0.0.0:0", "--insecure-http", "--access-log", "off"])
        #expect(allowed.port > 0)
        #expect(await allowed.stopped() == 0)
    }

    @Test func sigtermLetsAnInFlightUploadFinishThenExits() async throws {
        let server = try await CleanroomdProcess.start(arguments: ["--access-log", "off"])
        let port = server.port
        let client = try RawHTTPClient(port: port)
        try await offPool {
            try client.send("POST /v1/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello")
        }
        try await Task.sleep(for: .milliseconds(200))
        server.signal(SIGTERM)
        try await Task.sleep(for: .milliseconds(300))
        #expect(server.isRunning, "the server must wait for the in-flight request")
        #expect(throws: RawHTTPError.self) { try RawHTTPClient(port: port) }  // no longer accepting
        let response = try await offPool { () -> RawHTTPResponse in
            try client.send("world")
            return try client.readResponse()
        }
        #expect(response.status == 200 && response.bodyText == "helloworld")
        #expect(try await offPool { client.waitForClose() })  // closed after the drained exchange
        #expect(await server.stopped() == 0)
        #expect(server.stderr.contains("received SIGTERM"))
    }

    @Test func twoGiBUploadStreamsThroughEchoWithFlatMemory() async throws {
        let server = try await CleanroomdProcess.start(arguments: ["--access-log", "off"])
        defer { server.stopInBackground() }
        let port = server.port
        // Warm up (first request allocates loop buffers), then take the idle figure.
        _ = try await offPool {
            let c = try RawHTTPClient(port: port)
            try c.send("POST /v1/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n" + String(repeating: "w", count: 1 << 20))
            return try c.readResponse()
        }
        try await Task.sleep(for: .milliseconds(200))
        let idle = server.rssKiB
        let total = 2 << 30
        let pattern = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        let client = try RawHTTPClient(port: port, timeout: 60)
        let peak = Atomic<Int>(idle)
        let done = Atomic<Bool>(false)
        let sampler = Thread {
            while !done.load(ordering: .relaxed) {
                let rss = server.rssKiB
                if rss > peak.load(ordering: .relaxed) { peak.store(rss, ordering: .relaxed) }
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        sampler.start()
        let start = Date()
        async let sent: Void = offPool {
            try client.send("POST /v1/echo HTTP/1.1\r\nHost: t\r\nContent-Length: \(total)\r\n\r\n")
            for _ in 0..<(total / pattern.count) { try client.send(pattern) }
        }
        let received = try await offPool { () -> (Int, Bool) in
            // Read the head, then stream the body and compare it with the pattern as it arrives.
            var head: [UInt8] = []
            var byte: UInt8 = 0
            while !(head.count >= 4 && head.suffix(4) == [13, 10, 13, 10]) {
                guard recv(client.fd, &byte, 1, 0) == 1 else { return (0, false) }
                head.append(byte)
            }
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            var count = 0
            var matches = true
            while count < total {
                let n = buffer.withUnsafeMutableBytes { recv(client.fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { break }
                var offset = 0
                while offset < n {
                    let p = (count + offset) % pattern.count
                    let m = min(n - offset, pattern.count - p)
                    let equal = buffer.withUnsafeBytes { b in
                        pattern.withUnsafeBytes { memcmp(b.baseAddress! + offset, $0.baseAddress! + p, m) == 0 }
                    }
                    matches = matches && equal
                    offset += m
                }
                count += n
            }
            return (count, matches)
        }
        try await sent
        done.store(true, ordering: .relaxed)
        let seconds = Date().timeIntervalSince(start)
        #expect(received.0 == total)
        #expect(received.1, "the echoed bytes differ from the uploaded ones")
        let growthMiB = Double(peak.load(ordering: .relaxed) - idle) / 1024
        print("2 GiB echo: \(String(format: "%.1f", seconds)) s, idle RSS \(idle / 1024) MiB, peak growth \(String(format: "%.1f", growthMiB)) MiB")
        #expect(growthMiB < 8, "RSS grew by \(growthMiB) MiB during a 2 GiB upload")
    }
}
