import CleanRoom
import Foundation
import Logging
import Testing
import TestSupport

@testable import Server

/// A webhook to an https receiver named by a host name: the connection is pinned to the address
/// checked, and the receiver's certificate is verified (against `--webhook-ca-file`'s bundle).
@Suite(.serialized) struct WebhookTLSTests {
    @Test func aPinnedHTTPSReceiverIsReachedOnlyWithACertificateTheBundleTrusts() async throws {
        let pki = try await offPool { try CleanroomdTLSTests.PKI() }
        let fixture = try GovernanceFixture()
        let party = try await fixture.register("Alpha")
        let caller = try #require(try fixture.store.authenticate(bearer: party.token))
        let port = try TestEnvironment.freePort()
        // localhost resolves to 127.0.0.1 (and ::1 where configured): both must be allowed.
        let webhook = try fixture.store.createWebhook(
            url: "https://localhost:\(port)/hook", events: [], description: nil, caller: caller)
        let secretFile = pki.dir.appendingPathComponent("secret")
        try Data(webhook.secret.utf8).write(to: secretFile)
        let receiver = try ChildProcess.start(
            try TestEnvironment.python(),
            [
                TestEnvironment.repoRoot.appendingPathComponent("docs/examples/webhook_receiver.py").path, "--port", String(port),
                "--secret-file", secretFile.path, "--tls-cert", pki.path("server.pem"), "--tls-key", pki.path("server.key"),
                "--log", pki.path("events.jsonl"),
            ], stdout: pki.path("receiver.out"), stderr: pki.path("receiver.err"))
        defer {
            receiver.kill()
            receiver.wait()
        }
        try await offPool {
            let deadline = Date().addingTimeInterval(20)
            while (try? RawHTTPClient(port: port, timeout: 1)) == nil, Date() < deadline { usleep(50_000) }
        }

        func dispatcher(caBundle: String?) throws -> WebhookDispatcher {
            var configuration = WebhookDispatcher.Configuration()
            configuration.target = WebhookTargetPolicy(
                allowedNetworks: [try IPNetwork(cidr: "127.0.0.0/8"), try IPNetwork(cidr: "::1/128")])
            configuration.caBundlePath = caBundle
            configuration.timeout = 5
            return WebhookDispatcher(store: fixture.store, configuration: configuration, logger: Logger(label: "test"))
        }
        // The system's roots do not know the test CA: refused as a TLS failure, nothing delivered.
        let untrusted = try await dispatcher(caBundle: nil).ping(webhook)
        #expect(!untrusted.succeeded && untrusted.status == nil)
        #expect(untrusted.error?.hasPrefix("tls") == true, "\(untrusted.error ?? "")")
        #expect(!FileManager.default.fileExists(atPath: pki.path("events.jsonl")))
        // With the CA's bundle: delivered, and the receiver checked the signature.
        let trusted = try await dispatcher(caBundle: pki.path("ca.pem")).ping(webhook)
        #expect(trusted.succeeded && trusted.status == 204, "\(trusted.error ?? "")")
        let logged = try String(contentsOf: URL(fileURLWithPath: pki.path("events.jsonl")), encoding: .utf8)
        #expect(logged.contains(#""type": "webhook.ping""#), "\(logged)")
        // Without the loopback networks allowed, the same name is refused before any connection.
        var closed = WebhookDispatcher.Configuration()
        closed.caBundlePath = pki.path("ca.pem")
        let refused = try await WebhookDispatcher(store: fixture.store, configuration: closed, logger: Logger(label: "test")).ping(webhook)
        #expect(refused.error?.contains("loopback") == true, "\(refused.error ?? "")")
    }
}
