import Crypto
import Foundation
import Logging
import Testing
import TestSupport

@testable import CleanRoom
@testable import Server

/// The sender's decisions (when to retry, when to give up) and its wake-up signal; the whole path
/// over real sockets is `WebhookEndToEndTests`.
@Suite struct WebhookDispatcherTests {
    static let entry = AuditEntry(
        seq: 7, time: 1_800_000_000, actor: "system", actorPartyId: nil, action: "job.failed", collaborationId: "co",
        subject: "job-1", details: #"{"code":"x"}"#, prevHash: "", hash: "h", format: 2)

    @Test func retriesBackOffExponentiallyWithJitterUpToTheCap() throws {
        let fixture = try GovernanceFixture()
        var configuration = WebhookDispatcher.Configuration()
        configuration.retryDelay = 10
        configuration.maxRetryDelay = 100
        let dispatcher = WebhookDispatcher(store: fixture.store, configuration: configuration, logger: Logger(label: "test"))
        for (attempt, ceiling) in [(1, Int64(10)), (2, 20), (3, 40), (4, 80), (5, 100), (30, 100), (10_000, 100)] {
            let delays = (0..<50).map { _ in dispatcher.retryDelay(attempt: attempt) }
            #expect(delays.allSatisfy { $0 >= ceiling / 2 && $0 <= ceiling }, "attempt \(attempt): \(delays)")
            #expect(Set(delays).count > 1, "jittered")
        }
    }

    /// A receiver for these tests: `slow` answers 204 after DELAY seconds, `tarpit` never answers;
    /// each arrival's time and type go to LOG.
    static let receiverScript = #"""
        import http.server, json, sys, threading, time
        mode, port, delay, log = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
        lock = threading.Lock()
        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock, open(log, "a") as f:
                    f.write(json.dumps({"t": time.time(), "type": self.headers.get("Cleanroom-Event-Type")}) + "\n")
                time.sleep(120 if mode == "tarpit" else delay)
                self.send_response(204); self.send_header("Content-Length", "0"); self.end_headers()
            def log_message(self, *_): pass
        http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
        """#

    final class Receiver {
        let port: Int
        let log: URL
        let process: ChildProcess

        init(_ mode: String, delay: Double = 0, in folder: URL) throws {
            port = try TestEnvironment.freePort()
            log = folder.appendingPathComponent("\(mode)-\(port).jsonl")
            let script = folder.appendingPathComponent("receiver.py")
            try Data(WebhookDispatcherTests.receiverScript.utf8).write(to: script)
            process = try ChildProcess.start(
                try TestEnvironment.python(), [script.path, mode, String(port), String(delay), log.path],
                stdout: log.path + ".out", stderr: log.path + ".err")
            let deadline = Date().addingTimeInterval(20)
            while (try? RawHTTPClient(port: port, timeout: 1)) == nil, Date() < deadline { usleep(50_000) }
        }

        var url: String { "http://127.0.0.1:\(port)/hook" }

        /// Arrival times (Unix seconds).
        func arrivals() -> [Double] {
            ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["t"] as? Double
            }
        }

        deinit {
            process.kill()
            process.wait()
        }
    }

    /// Found in review: the sender served webhooks in rounds, so one party's slow receiver (with
    /// events it made itself) held every other party's events back for as long as it liked.
    @Test func aPartysSlowReceiverDelaysNoOtherPartysEvents() async throws {
        let fixture = try GovernanceFixture()
        let folder = try TestEnvironment.temporaryDirectory("webhook-fairness")
        let slowParty = try await fixture.register("Slow party")
        let otherParty = try await fixture.register("Other party")
        let slow = try Receiver("slow", delay: 1.5, in: folder)
        let fast = try Receiver("slow", delay: 0, in: folder)
        for (party, receiver) in [(slowParty, slow), (otherParty, fast)] {
            let reply = try await fixture.call(.post, "/v1/webhooks", token: party.token, json: ["url": receiver.url])
            #expect(reply.status == 201, "\(reply.json)")
        }
        fixture.webhooks.start()
        // Ten webhooks' worth of slots for the slow party would not help it either: one turn per party.
        let (collaboration, _, _) = try await fixture.approvedCollaboration(slowParty, name: "slow")
        _ = try await fixture.recordedJob(slowParty, collaboration: collaboration)
        try await Task.sleep(nanoseconds: 1_000_000_000)
        let t0 = Date().timeIntervalSince1970
        _ = try await fixture.approvedCollaboration(otherParty, name: "other")
        var latency = -1.0
        for _ in 0..<200 {
            if let first = fast.arrivals().first {
                latency = first - t0
                break
            }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        await fixture.webhooks.stop()
        #expect(slow.arrivals().count >= 1, "the slow receiver was being served")
        #expect(latency >= 0 && latency < 1, "the other party's first event waited \(latency) s")
    }

    /// Found in review: pings shared the delivery connections without limit, so a party pinging a
    /// receiver that never answers held back everyone's deliveries and pings.
    @Test func aPartysPingsToATarpitHoldBackNoOtherPartysPing() async throws {
        let fixture = try GovernanceFixture()
        let folder = try TestEnvironment.temporaryDirectory("webhook-pings")
        let attacker = try await fixture.register("Attacker")
        let other = try await fixture.register("Other")
        let tarpit = try Receiver("tarpit", in: folder)
        let fast = try Receiver("slow", in: folder)
        let trapped = try require2(try await fixture.call(.post, "/v1/webhooks", token: attacker.token, json: ["url": tarpit.url])["id"] as? String)
        let healthy = try require2(try await fixture.call(.post, "/v1/webhooks", token: other.token, json: ["url": fast.url])["id"] as? String)
        let flood = Task {
            await withTaskGroup(of: Int.self) { group in
                for _ in 0..<20 {
                    group.addTask { (try? await fixture.call(.post, "/v1/webhooks/\(trapped)/ping", token: attacker.token).status) ?? 0 }
                }
                var statuses: [Int] = []
                for await status in group { statuses.append(status) }
                return statuses
            }
        }
        try await Task.sleep(nanoseconds: 300_000_000)
        let start = Date()
        let ping = try await fixture.call(.post, "/v1/webhooks/\(healthy)/ping", token: other.token)
        let took = Date().timeIntervalSince(start)
        let statuses = await flood.value
        #expect(ping.status == 200 && ping["succeeded"] as? Bool == true, "\(ping.json)")
        #expect(took < 1, "the other party's ping waited \(took) s")
        // One of the attacker's pings ran (and timed out); the others were refused at once.
        #expect(statuses.filter { $0 == 409 }.count >= 18, "\(statuses)")
        #expect(tarpit.arrivals().count <= 2)
    }

    @Test func theEventIsTheAuditEntryAndItsSignatureCoversTimeAndBody() throws {
        let event = WebhookEvent(entry: Self.entry, webhookId: "wh-test")
        let body = try #require(try JSONSerialization.jsonObject(with: Data(event.body)) as? [String: Any])
        #expect(body["id"] as? String == "evt-7-h" && body["type"] as? String == "job.failed" && body["subject"] as? String == "job-1")
        #expect((body["details"] as? [String: Any])?["code"] as? String == "x")
        #expect((body["audit"] as? [String: Any])?["seq"] as? Int == 7)
        // RFC 8785: keys sorted, no spaces.
        #expect(String(decoding: event.body, as: UTF8.self).hasPrefix(#"{"actor":"system","actorPartyId":null,"audit":{"hash":"h","seq":7}"#))
        let headers = try event.headers(webhookId: "wh-test", secrets: ["whsec_new", "whsec_old"], time: 1_800_000_123, attempt: 2)
        let signature = try #require(headers.first { $0.name == "Cleanroom-Signature" }?.value)
        let parts = signature.split(separator: ",").map(String.init)
        #expect(parts.count == 3 && parts[0] == "t=1800000123")
        let signed = Array("1800000123.".utf8) + event.body
        for (part, secret) in zip(parts.dropFirst(), ["whsec_new", "whsec_old"]) {
            let mac = try Crypto.HMAC.authenticate(signed, key: Crypto.SecureBytes(Array(secret.utf8)), hash: .sha256)
            #expect(part == "v1=" + Crypto.Hex.encode(mac))
        }
        #expect(headers.contains { $0 == ("Cleanroom-Delivery-Attempt", "2") })
        #expect(headers.contains { $0 == ("Cleanroom-Event-Id", "evt-7-h") })
    }

    @Test func aSignalIsNeverLostAndAWaitEndsAtItsTimeout() async {
        let wake = WakeSignal()
        wake.signal()
        let start = ContinuousClock.now
        await wake.wait(timeout: 10)  // the signal came first: returns at once
        #expect(ContinuousClock.now - start < .seconds(1))
        await wake.wait(timeout: 0.2)  // no signal: the timeout
        #expect(ContinuousClock.now - start >= .milliseconds(200))
        async let waited: Void = wake.wait(timeout: 10)
        try? await Task.sleep(nanoseconds: 50_000_000)
        wake.signal()
        await waited
        #expect(ContinuousClock.now - start < .seconds(5))
    }
}
