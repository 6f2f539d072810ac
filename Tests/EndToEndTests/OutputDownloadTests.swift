import Crypto
import Foundation
import TestSupport
import Testing

/// `cleanroom output download` against an HTTP peer that serves a job's documents and a (possibly
/// tampered) output ciphertext: the download writes a bundle `verify` accepts, and refuses — writing
/// nothing — a ciphertext that does not authenticate or does not match its listed SHA-256.
@Suite(.serialized) struct OutputDownloadTests {
    /// Serves exact paths from a JSON map {path: [content type, file]} on a free port; prints the port.
    static let peer = """
        import http.server, json, os, signal, sys, threading
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # Exit when the test process goes away (its end of our stdin closes).
        threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
        routes = json.load(open(sys.argv[1]))
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                route = routes.get(self.path)
                if route is None or self.headers.get("Authorization") != "Bearer party-token":
                    body = json.dumps({"error": {"code": "not_found", "message": "no such object"}}).encode()
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                else:
                    body = open(route[1], "rb").read()
                    self.send_response(200)
                    self.send_header("Content-Type", route[0])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass
        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """

    /// Starts the peer serving `fixture`'s job with `model` as the model output's content.
    static func serve(_ fixture: ResultBundleFixture, modelFile: URL) throws -> (Process, String) {
        let sha = { (url: URL) in Hex.encode(SHA256.hash(Array(try Data(contentsOf: url)))) }
        let size = { (url: URL) in try Data(contentsOf: url).count }
        let job = fixture.jobID
        let folder = fixture.root.appendingPathComponent("peer")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        func document(_ name: String, _ object: Any) throws -> String {
            let url = folder.appendingPathComponent(name)
            try JSONSerialization.data(withJSONObject: object).write(to: url)
            return url.path
        }
        let policy = try String(contentsOf: fixture.file("policy.json"), encoding: .utf8)
        let routes: [String: [String]] = [
            "/v1/jobs/\(job)": ["application/json", try document("job.json", [
                "id": job, "collaborationId": "collab-1", "policyDigest": fixture.policyDigest, "status": "succeeded",
            ])],
            "/v1/jobs/\(job)/outputs": ["application/json", try document("outputs.json", ["items": [
                ["id": "out-1", "name": "model", "sha256": try sha(modelFile), "size": try size(modelFile)],
                ["id": "out-2", "name": "metrics", "sha256": try sha(fixture.file("metrics.esdk")),
                 "size": try size(fixture.file("metrics.esdk"))],
            ]])],
            "/v1/collaborations/collab-1": ["application/json", try document("collaboration.json", [
                "id": "collab-1", "currentDigest": fixture.policyDigest, "canonicalPolicy": policy, "version": 1,
            ])],
            "/v1/jobs/\(job)/approval-bundle": ["application/json", fixture.file("approval-bundle.json").path],
            "/v1/jobs/\(job)/receipt": ["application/json", fixture.file("receipt.json").path],
            "/v1/jobs/\(job)/outputs/out-1/content": ["application/octet-stream", modelFile.path],
            "/v1/jobs/\(job)/outputs/out-2/content": ["application/octet-stream", fixture.file("metrics.esdk").path],
        ]
        let routesFile = try document("routes.json", routes)
        let script = folder.appendingPathComponent("peer.py")
        try Data(peer.utf8).write(to: script)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestEnvironment.python())
        process.arguments = [script.path, routesFile]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardInput = Pipe()
        try process.run()
        let line = String(decoding: pipe.fileHandleForReading.availableData, as: UTF8.self)
        guard let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw TestEnvironmentError("the HTTP peer did not start: \(line)")
        }
        // The party's profile: its server, party id and credential.
        let profile = fixture.home.appendingPathComponent("profiles/default.json")
        try FileManager.default.createDirectory(at: profile.deletingLastPathComponent(), withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: [
            "server": "http://127.0.0.1:\(port)", "partyId": "alpha", "credential": "party-token",
        ]).write(to: profile)
        return (process, "http://127.0.0.1:\(port)")
    }

    /// SIGKILL: the peer may have inherited an ignored SIGTERM from the test runner.
    static func stop(_ peer: Process) {
        kill(peer.processIdentifier, SIGKILL)
        peer.waitUntilExit()
    }

    @Test func downloadDecryptsLocallyAndWritesABundleVerifyAccepts() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        let (peer, _) = try Self.serve(fixture, modelFile: fixture.file("model.esdk"))
        defer { Self.stop(peer) }
        let out = fixture.root.appendingPathComponent("downloaded")
        let result = try await fixture.cli(["output", "download", fixture.jobID, "--out", out.path])
        #expect(result.status == 0, "\(result.stderrText)")
        #expect(Array(try Data(contentsOf: out.appendingPathComponent("model.json"))) == fixture.model)
        #expect(Array(try Data(contentsOf: out.appendingPathComponent("metrics.json"))) == fixture.metrics)
        let verified = try await fixture.cli(["verify", out.path, "--root", fixture.developmentRoot.path])
        #expect(verified.status == 0, "\(verified.stderrText)")
        #expect(verified.stdoutText.contains("VERIFIED"))
    }

    @Test func tamperedCiphertextIsRefusedAndNothingIsWritten() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        // The server (or anyone on the way) flips a bit in the model's last frame and lists the
        // tampered bytes' hash, so only authentication can catch it.
        let tampered = fixture.root.appendingPathComponent("tampered.esdk")
        var bytes = Array(try Data(contentsOf: fixture.file("model.esdk")))
        bytes[bytes.count - 3] ^= 0x01
        try Data(bytes).write(to: tampered)
        let (peer, _) = try Self.serve(fixture, modelFile: tampered)
        defer { Self.stop(peer) }
        let out = fixture.root.appendingPathComponent("downloaded")
        let result = try await fixture.cli(["output", "download", fixture.jobID, "--out", out.path, "--only", "model"])
        #expect(result.status == 1)
        #expect(result.stderrText.contains("output model does not decrypt and authenticate"), "\(result.stderrText)")
        let written = (try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []
        #expect(!written.contains { $0.hasPrefix("model") || $0.hasPrefix(".model") }, "written: \(written)")
    }
}
