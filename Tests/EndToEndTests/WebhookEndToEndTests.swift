import Foundation
import Testing
import TestSupport

/// Signed webhooks through the real processes: `cleanroomd serve`, the parties' `cleanroom` CLI,
/// and the receiver the docs show (`docs/examples/webhook_receiver.py`), which checks every
/// signature with Python's own `hmac`.
@Suite(.serialized) struct WebhookEndToEndTests {
    typealias Machine = GovernanceEndToEndTests.PartyMachine

    /// The server lets webhooks reach this machine's loopback only because the test says so.
    static let serverArguments = ["--webhook-allow-http", "--webhook-allow-network", "127.0.0.1/32", "--webhook-retry-delay", "1"]

    /// One receiver process: its port, its log of accepted events, and the secret files it accepts.
    final class Receiver {
        let port: Int
        let log: URL
        let secretFiles: [URL]
        private var process: ChildProcess?

        init(root: URL, name: String, secretFiles: [URL], failFirst: Int = 0, port: Int? = nil) throws {
            self.port = try port ?? TestEnvironment.freePort()
            log = root.appendingPathComponent("\(name)-events.jsonl")
            self.secretFiles = secretFiles
            let script = TestEnvironment.repoRoot.appendingPathComponent("docs/examples/webhook_receiver.py").path
            var arguments = [script, "--port", String(self.port), "--log", log.path, "--fail-first", String(failFirst)]
            for file in secretFiles { arguments += ["--secret-file", file.path] }
            process = try ChildProcess.start(
                try TestEnvironment.python(), arguments, stdout: root.appendingPathComponent("\(name).out").path,
                stderr: root.appendingPathComponent("\(name).err").path)
            try Self.waitForPort(self.port)
        }

        var url: String { "http://127.0.0.1:\(port)/hook" }

        func stop() {
            process?.kill()
            process?.wait()
            process = nil
        }

        deinit { stop() }

        /// The events received so far (each line: the event, the secret file that verified it, the attempt).
        func received() -> [[String: Any]] {
            guard let text = try? String(contentsOf: log, encoding: .utf8) else { return [] }
            return text.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        }

        func types() -> [String] { received().compactMap { ($0["event"] as? [String: Any])?["type"] as? String } }

        /// Waits until `condition` holds for the received events (or fails after `timeout` seconds).
        @discardableResult
        func wait(
            timeout: Double = 30, _ what: String, until condition: ([[String: Any]]) -> Bool
        ) throws -> [[String: Any]] {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                let events = received()
                if condition(events) { return events }
                usleep(50_000)
            }
            throw TestEnvironmentError("the receiver on port \(port) did not get \(what) in \(timeout)s; it has \(types())")
        }

        static func waitForPort(_ port: Int) throws {
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                if (try? RawHTTPClient(port: port, timeout: 1)) != nil { return }
                usleep(50_000)
            }
            throw TestEnvironmentError("the webhook receiver did not start on port \(port)")
        }
    }

    /// Adds a webhook through the CLI, its secret written to a file; returns its id and the file.
    static func addWebhook(_ machine: Machine, url: String, events: [String] = [], root: URL) throws -> (id: String, secret: URL) {
        let secret = root.appendingPathComponent("\(machine.name)-secret-\(UUID().uuidString.prefix(8))")
        let added = try machine.json(["webhook", "add", "--url", url, "--secret-file", secret.path] + events.flatMap { ["--event", $0] })
        #expect(added["secret"] == nil, "a secret written to a file is not printed too")
        let mode = try FileManager.default.attributesOfItem(atPath: secret.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try String(contentsOf: secret, encoding: .utf8).hasPrefix("whsec_"))
        return (try #require(added["id"] as? String), secret)
    }

    @Test func membersReceiveTheirCollaborationsEventsSignedInOrderAndOthersNothing() async throws {
        let root = try TestEnvironment.temporaryDirectory("e2e-webhooks")
        defer { try? FileManager.default.removeItem(at: root) }
        let server = try CleanroomdProcess(dataDirectory: root.appendingPathComponent("data"), keepsPort: true)
        try server.start(arguments: Self.serverArguments)
        defer { server.stop() }
        let (machines, datasets) = try GovernanceEndToEndTests.threeHospitals(server: server, root: root, rows: 40, viaKMS: { _ in false })
        let outsider = try GovernanceEndToEndTests.onboard("Outsider", server: server, root: root)

        // St Mary wants everything; Northgate approvals only; the outsider everything it may see.
        var receivers: [Receiver] = []
        var hooks: [(id: String, secret: URL)] = []
        for (machine, events) in [(machines[0], [String]()), (machines[2], ["approval.*"]), (outsider, [])] {
            // The webhook first (its secret file is what the receiver checks), then its receiver.
            let port = try TestEnvironment.freePort()
            let hook = try Self.addWebhook(machine, url: "http://127.0.0.1:\(port)/hook", events: events, root: root)
            receivers.append(try Receiver(root: root, name: machine.name, secretFiles: [hook.secret], port: port))
            hooks.append(hook)
        }
        let (stMary, northgate, other) = (receivers[0], receivers[1], receivers[2])

        // A ping proves URL and secret before anything happens.
        let ping = try machines[0].cli(["webhook", "ping", hooks[0].id])
        #expect(ping.stdoutText.hasPrefix("ping delivered: HTTP 204"), "\(ping.stdoutText)")
        try stMary.wait("the ping") { $0.count == 1 }
        #expect(stMary.types() == ["webhook.ping"])

        // The collaboration: proposed, approved by all three, a job started (whose enclave image is not
        // the example policy's, so it fails at attestation: events enough, without training).
        let policy = try GovernanceEndToEndTests.hospitalsPolicy(machines, datasets: datasets)
        let policyFile = root.appendingPathComponent("policy.json")
        try JSONSerialization.data(withJSONObject: policy).write(to: policyFile)
        let proposed = try machines[0].json(["policy", "propose", policyFile.path])
        let collaboration = try #require(proposed["id"] as? String)
        let digest = try #require(proposed["digest"] as? String)
        for machine in machines { _ = try machine.json(["policy", "approve", collaboration, "--yes", "--digest", digest]) }
        let started = try machines[1].json(["job", "start", collaboration])
        let job = try #require(started["id"] as? String)
        _ = try machines[1].cli(["job", "watch", job], expectStatus: 1)

        let events = try stMary.wait("job.failed") { $0.contains { ($0["event"] as? [String: Any])?["type"] as? String == "job.failed" } }
        let types = stMary.types()
        #expect(Array(types.prefix(5)) == ["webhook.ping", "policy.proposed", "approval.submitted", "approval.submitted", "approval.submitted"], "\(types)")
        #expect(Array(types.suffix(3)) == ["job.start", "job.attesting", "job.failed"], "\(types)")
        // In the log's order, each once, each verified by the receiver with the webhook's secret.
        let bodies = events.compactMap { $0["event"] as? [String: Any] }.filter { $0["type"] as? String != "webhook.ping" }
        let seqs = bodies.compactMap { ($0["audit"] as? [String: Any])?["seq"] as? Int }
        #expect(seqs == seqs.sorted() && Set(seqs).count == seqs.count, "\(seqs)")
        #expect(bodies.allSatisfy { $0["collaborationId"] as? String == collaboration && $0["webhookId"] as? String == hooks[0].id })
        #expect(bodies.allSatisfy {
            let audit = $0["audit"] as? [String: Any]
            return ($0["id"] as? String) == "evt-\(audit?["seq"] as? Int ?? -1)-\((audit?["hash"] as? String ?? "").prefix(12))"
        })
        let failed = try #require(bodies.last)
        #expect(failed["subject"] as? String == job)
        #expect((failed["details"] as? [String: Any])?["code"] as? String == "attestation.pcr_mismatch", "\(failed)")
        // The events are the audit trail's entries: same sequence numbers and hashes.
        let trail = try Self.get("/v1/collaborations/\(collaboration)/audit", as: machines[0], server: server)
        let hashes = Dictionary(
            uniqueKeysWithValues: (trail["entries"] as? [[String: Any]] ?? []).map { ($0["seq"] as? Int ?? 0, $0["hash"] as? String) })
        for body in bodies {
            let audit = try #require(body["audit"] as? [String: Any])
            if let seq = audit["seq"] as? Int, let hash = hashes[seq] { #expect(hash == audit["hash"] as? String) }
        }
        #expect(bodies.filter { hashes[($0["audit"] as? [String: Any])?["seq"] as? Int ?? 0] != nil }.count >= 4)

        // The metrics count the failed job's duration (seconds, well under a minute).
        let metrics = try Self.metrics(server)
        #expect(metrics.contains(#"cleanroom_job_duration_seconds_count{state="failed"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"cleanroom_job_duration_seconds_bucket{state="failed",le="60"} 1"#))
        #expect(metrics.contains(#"cleanroom_job_duration_seconds_count{state="succeeded"} 0"#))

        // Northgate asked for approvals only; the outsider is no member and hears nothing.
        try northgate.wait("three approvals") { $0.count == 3 }
        #expect(northgate.types() == ["approval.submitted", "approval.submitted", "approval.submitted"])
        #expect(other.received().isEmpty, "\(other.types())")

        // Attempts are listed for the party; another party's webhook does not exist for it.
        let deliveries = try machines[0].json(["webhook", "deliveries", hooks[0].id])
        let items = try #require(deliveries["items"] as? [[String: Any]])
        #expect(items.count == events.count && items.allSatisfy { $0["succeeded"] as? Bool == true && $0["status"] as? Int == 204 })
        let foreign = try machines[1].cli(["webhook", "show", hooks[0].id, "--json"], expectStatus: 1)
        #expect(foreign.stdoutText.contains(#""code":"not_found""#), "\(foreign.stdoutText)")
    }

    /// A receiver that fails, then is down while the server restarts, then trusts only a rotated
    /// secret, then sits where the server no longer may send: every event arrives, in order, once
    /// the receiver works, and none after the address is no longer allowed.
    @Test func failuresAreRetriedNothingIsLostOverARestartSecretsRotateAndTheAddressIsCheckedAtEverySend() async throws {
        let root = try TestEnvironment.temporaryDirectory("e2e-webhook-retries")
        defer { try? FileManager.default.removeItem(at: root) }
        let server = try CleanroomdProcess(dataDirectory: root.appendingPathComponent("data"), keepsPort: true)
        try server.start(arguments: Self.serverArguments)
        defer { server.stop() }
        let (machines, datasets) = try GovernanceEndToEndTests.threeHospitals(server: server, root: root, rows: 40, viaKMS: { _ in false })
        let stMary = machines[0]
        let port = try TestEnvironment.freePort()
        let hook = try Self.addWebhook(stMary, url: "http://127.0.0.1:\(port)/hook", events: ["policy.*", "approval.*"], root: root)

        // Two 503s, then the event arrives on the third attempt (the first retry after about a second).
        var receiver = try Receiver(root: root, name: "first", secretFiles: [hook.secret], failFirst: 2, port: port)
        let policy = try GovernanceEndToEndTests.hospitalsPolicy(machines, datasets: datasets)
        let policyFile = root.appendingPathComponent("policy.json")
        try JSONSerialization.data(withJSONObject: policy).write(to: policyFile)
        let proposed = try stMary.json(["policy", "propose", policyFile.path])
        let collaboration = try #require(proposed["id"] as? String)
        let digest = try #require(proposed["digest"] as? String)
        let first = try receiver.wait("policy.proposed") { $0.count == 1 }
        #expect(first[0]["attempt"] as? Int == 3, "\(first)")
        let attempts = try #require(try stMary.json(["webhook", "deliveries", hook.id])["items"] as? [[String: Any]])
        #expect(attempts.map { $0["status"] as? Int } == [204, 503, 503], "\(attempts)")
        #expect(attempts.map { $0["attempt"] as? Int } == [3, 2, 1])
        #expect(try stMary.json(["webhook", "show", hook.id])["failures"] as? Int == 0)

        // The receiver goes down; three approvals wait while the server stops and starts again.
        receiver.stop()
        var approvals: [String] = []
        for machine in machines {
            let approved = try machine.json(["policy", "approve", collaboration, "--yes", "--digest", digest])
            approvals.append(try #require(approved["id"] as? String))
        }
        let deadline = Date().addingTimeInterval(20)
        while try stMary.json(["webhook", "show", hook.id])["failures"] as? Int ?? 0 < 2, Date() < deadline { usleep(100_000) }
        let failing = try stMary.json(["webhook", "show", hook.id])
        #expect(failing["failures"] as? Int ?? 0 >= 2 && failing["nextAttemptAt"] != nil, "\(failing)")
        #expect(try Self.metrics(server).contains(#"cleanroom_webhooks{state="failing"} 1"#))
        #expect(await server.stopped() == 0)
        receiver = try Receiver(root: root, name: "second", secretFiles: [hook.secret], port: port)
        try server.start(arguments: Self.serverArguments)
        let resumed = try receiver.wait("the three approvals after the restart") { $0.count == 3 }
        #expect(receiver.types() == ["approval.submitted", "approval.submitted", "approval.submitted"])
        let seqs = resumed.compactMap { (($0["event"] as? [String: Any])?["audit"] as? [String: Any])?["seq"] as? Int }
        #expect(seqs == seqs.sorted() && Set(seqs).count == 3, "\(seqs)")

        // A rotated secret: for a day both sign, so the receiver that knows only the old one still accepts.
        let newSecret = root.appendingPathComponent("rotated-secret")
        let rotated = try stMary.json(["webhook", "rotate-secret", hook.id, "--secret-file", newSecret.path])
        #expect(rotated["previousSecretExpiresAt"] != nil && rotated["secret"] == nil, "\(rotated)")
        #expect(try String(contentsOf: newSecret, encoding: .utf8) != (try String(contentsOf: hook.secret, encoding: .utf8)))
        _ = try machines[1].json(["policy", "revoke", collaboration, approvals[1]])
        let overlap = try receiver.wait("the first revocation") { $0.count == 4 }
        #expect(overlap[3]["signatures"] as? Int == 2 && overlap[3]["secretFile"] as? String == hook.secret.path, "\(overlap[3])")
        receiver.stop()
        receiver = try Receiver(root: root, name: "third", secretFiles: [newSecret], port: port)
        _ = try machines[2].json(["policy", "revoke", collaboration, approvals[2]])
        let switched = try receiver.wait("the second revocation") { $0.count == 1 }
        #expect(switched[0]["secretFile"] as? String == newSecret.path)

        // Without --webhook-allow-network the server may not reach loopback: the next event is not
        // sent (the address is checked at every send, not only at registration), and the attempt says why.
        #expect(await server.stopped() == 0)
        try server.start(arguments: ["--webhook-allow-http", "--webhook-retry-delay", "1"])
        _ = try stMary.json(["policy", "revoke", collaboration, approvals[0]])
        let deadline2 = Date().addingTimeInterval(20)
        var refused: [String: Any]?
        while refused == nil, Date() < deadline2 {
            let items = try stMary.json(["webhook", "deliveries", hook.id])["items"] as? [[String: Any]] ?? []
            refused = items.first { $0["succeeded"] as? Bool == false && $0["status"] == nil }
            usleep(100_000)
        }
        let error = try #require(refused?["error"] as? String, "no refused attempt")
        #expect(error.contains("127.0.0.1") && error.contains("loopback"), "\(error)")
        #expect(receiver.received().count == 1, "nothing reached the receiver: \(receiver.types())")
        // And such URLs are refused at registration, saying why.
        for (url, reason) in [
            ("http://127.0.0.1:\(port)/hook", "loopback"), ("http://169.254.169.254/latest/meta-data", "metadata"),
            ("http://10.1.2.3/", "private"), ("ftp://example.com/", "http"), ("http://[::1]:8080/", "loopback"),
        ] {
            let added = try stMary.cli(["webhook", "add", "--url", url, "--json"], expectStatus: 1)
            #expect(added.stdoutText.contains(#""code":"invalid_webhook_url""#), "\(url): \(added.stdoutText)")
            #expect(added.stderrText.lowercased().contains(reason), "\(url): \(added.stderrText)")
        }
        let unknown = try stMary.cli(["webhook", "add", "--url", "https://8.8.8.8/hook", "--event", "job.finished"], expectStatus: 1)
        #expect(unknown.stderrText.contains("unknown event type \"job.finished\""), "\(unknown.stderrText)")
    }

    /// The server's `/metrics` text, read with the token it keeps in its data directory.
    static func metrics(_ server: CleanroomdProcess) throws -> String {
        let token = try String(contentsOf: server.dataDirectory.appendingPathComponent("metrics-token"), encoding: .utf8)
        let client = try RawHTTPClient(port: server.port)
        try client.send(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token.trimmingCharacters(in: .whitespacesAndNewlines))\r\nConnection: close\r\n\r\n")
        return try client.readResponse().bodyText
    }

    /// GET `path` with `machine`'s credential, as JSON.
    static func get(_ path: String, as machine: Machine, server: CleanroomdProcess) throws -> [String: Any] {
        let profile = try JSONSerialization.jsonObject(
            with: Data(contentsOf: machine.home.appendingPathComponent("profiles/default.json"))) as? [String: Any]
        let token = try #require(profile?["credential"] as? String)
        let client = try RawHTTPClient(port: server.port)
        try client.send("GET \(path) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nConnection: close\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 200, "\(response.bodyText)")
        return try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }
}
