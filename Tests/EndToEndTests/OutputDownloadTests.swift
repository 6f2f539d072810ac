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

    /// Starts the peer serving `fixture`'s job with `model` as the model output's content (and
    /// `policyFile` as the policy the job ran, else the fixture's).
    static func serve(_ fixture: ResultBundleFixture, modelFile: URL, policyFile: URL? = nil) throws -> (Process, String) {
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
        let routes: [String: [String]] = [
            "/v1/jobs/\(job)": ["application/json", try document("job.json", [
                "id": job, "collaborationId": "collab-1", "policyDigest": fixture.policyDigest, "status": "succeeded",
            ])],
            "/v1/jobs/\(job)/outputs": ["application/json", try document("outputs.json", ["items": [
                ["id": "out-1", "name": "model", "sha256": try sha(modelFile), "size": try size(modelFile)],
                ["id": "out-2", "name": "metrics", "sha256": try sha(fixture.file("metrics.esdk")),
                 "size": try size(fixture.file("metrics.esdk"))],
            ]])],
            "/v1/jobs/\(job)/policy": ["application/json", policyFile?.path ?? fixture.file("policy.json").path],
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

    /// The policy the job ran comes from the server, which is not trusted: one that does not hash
    /// to the job's digest is refused, and the bundle gets no policy.json.
    @Test func aPolicyThatIsNotTheJobsIsRefused() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        let other = fixture.root.appendingPathComponent("other-policy.json")
        var text = try String(contentsOf: fixture.file("policy.json"), encoding: .utf8)
        text = text.replacingOccurrences(of: "\"maxRuns\":", with: "\"maxRuns\": ")
        try Data(text.utf8).write(to: other)
        let (peer, _) = try Self.serve(fixture, modelFile: fixture.file("model.esdk"), policyFile: other)
        defer { Self.stop(peer) }
        let out = fixture.root.appendingPathComponent("downloaded")
        let result = try await fixture.cli(["output", "download", fixture.jobID, "--out", out.path])
        #expect(result.status == 1)
        #expect(
            result.stderrText.contains("the server's policy for job \(fixture.jobID) does not hash to the job's policy digest"),
            "\(result.stderrText)")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("policy.json").path))
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("model.json").path))
    }

    /// The bundle's folder must be new, empty, or this job's own bundle (downloads add to it), so
    /// results of two jobs never mix; a bad `--out` or `--only` is a usage error that creates nothing.
    /// (A review downloaded into a folder holding another job's model and `verify` then passed.)
    @Test func theFolderMustBeNewEmptyOrThisJobsOwnBundle() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        let (peer, _) = try Self.serve(fixture, modelFile: fixture.file("model.esdk"))
        defer { Self.stop(peer) }
        let out = fixture.root.appendingPathComponent("downloaded")
        func listing(_ url: URL) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).sorted() }

        // A leftover of an interrupted download counts as nothing and is cleared.
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("partial".utf8).write(to: out.appendingPathComponent(".model.json.cleanroom-AbC123"))
        let first = try await fixture.cli(["output", "download", fixture.jobID, "--out", out.path, "--only", "metrics"])
        #expect(first.status == 0, "\(first.stderrText)")
        #expect(!listing(out).contains { $0.hasPrefix(".") }, "\(listing(out))")
        // The same job's bundle takes more of its outputs: the manifest lists both, and both verify.
        let second = try await fixture.cli(["output", "download", fixture.jobID, "--out", out.path, "--only", "model"])
        #expect(second.status == 0, "\(second.stderrText)")
        let verified = try await fixture.cli(["verify", out.path, "--root", fixture.developmentRoot.path])
        #expect(verified.status == 0, "\(verified.stderrText)")
        #expect(verified.stdoutText.contains("your metrics, model match its SHA-256"), "\(verified.stdoutText)")
        #expect(verified.stdoutText.contains("✓ decrypted    metrics.json, model.json are the decryptions"), "\(verified.stdoutText)")

        // Another job's bundle, or other files, are refused and left as they were.
        let other = fixture.root.appendingPathComponent("other-job")
        try FileManager.default.copyItem(at: out, to: other)
        let manifestURL = other.appendingPathComponent("manifest.json")
        var manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: manifestURL)) as? [String: Any])
        manifest["job"] = "job-fedcba9876543210"
        try JSONSerialization.data(withJSONObject: manifest).write(to: manifestURL)
        let before = listing(other)
        let mixed = try await fixture.cli(["output", "download", fixture.jobID, "--out", other.path, "--only", "metrics"])
        #expect(mixed.status == 2, "\(mixed)")
        #expect(mixed.stderrText.contains("holds party alpha's bundle of job job-fedcba9876543210: download job \(fixture.jobID) into a new or empty folder"), "\(mixed.stderrText)")
        #expect(listing(other) == before)
        let cluttered = fixture.root.appendingPathComponent("cluttered")
        try FileManager.default.createDirectory(at: cluttered, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: cluttered.appendingPathComponent("model.json"))
        let refused = try await fixture.cli(["output", "download", fixture.jobID, "--out", cluttered.path])
        #expect(refused.status == 2 && refused.stderrText.contains("holds other files"), "\(refused)")
        #expect(listing(cluttered) == ["model.json"])

        // Usage errors say what to give instead, and create nothing.
        let file = fixture.root.appendingPathComponent("a-file")
        try Data().write(to: file)
        for (arguments, message) in [
            (["--out", file.path], "--out \(file.path) is a file: give a folder"),
            (["--out", "-"], "--out is the bundle's folder, not a file"),
            (["--out", out.path + "-x", "--only", "modle"], "--only modle is not an artifact: use model, metrics, scores:own"),
        ] {
            let result = try await fixture.cli(["output", "download", fixture.jobID] + arguments)
            #expect(result.status == 2, "\(arguments): \(result)")
            #expect(result.stderrText.contains(message), "\(arguments): \(result.stderrText)")
        }
        #expect(!FileManager.default.fileExists(atPath: out.path + "-x"))
        // So does a refusal by the server: no empty folder is left behind.
        let missing = fixture.root.appendingPathComponent("never")
        let unknown = try await fixture.cli(["output", "download", "job-0000000000000000", "--out", missing.path])
        #expect(unknown.status == 1, "\(unknown)")
        #expect(!FileManager.default.fileExists(atPath: missing.path))
    }

    /// Interrupted (SIGINT) while an output is being decrypted, the command removes what it had
    /// written so far, says so, and exits 130. (A review found 77 MB of hidden partial files left.)
    @Test func anInterruptedDecryptionLeavesNothingBehind() async throws {
        let fixture = try await ResultBundleFixture()
        defer { fixture.remove() }
        let fifo = fixture.root.appendingPathComponent("incoming.esdk")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        let folder = fixture.root.appendingPathComponent("plain")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestEnvironment.executable("cleanroom"))
        process.arguments = [
            "output", "decrypt", fifo.path, "--out", folder.appendingPathComponent("model.json").path, "--party", "alpha",
        ]
        process.environment = ["CLEANROOM_HOME": fixture.home.path]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let ciphertext = Array(try Data(contentsOf: fixture.file("model.esdk")))
        let listing = try await offPool { () throws -> [String] in
            let writer = try FileHandle(forWritingTo: fifo)  // opens once the command opened its end
            writer.write(Data(ciphertext[0..<(ciphertext.count / 2)]))
            // Wait for the command to have written part of the plaintext to its temporary file.
            let deadline = Date().addingTimeInterval(20)
            var names: [String] = []
            while Date() < deadline {
                names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
                if names.contains(where: { $0.hasPrefix(".model.json.cleanroom-") }) { break }
                usleep(20_000)
            }
            process.interrupt()
            let exitDeadline = Date().addingTimeInterval(10)
            while process.isRunning, Date() < exitDeadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }  // fails the status check below
            process.waitUntilExit()
            try writer.close()
            return names
        }
        #expect(listing.contains { $0.hasPrefix(".model.json.cleanroom-") }, "the command wrote its temporary file: \(listing)")
        #expect(process.terminationStatus == 130)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(stderr.contains("interrupted: the unfinished output was removed"), "\(stderr)")
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
        let (peer, _) = try Self.serve(fixture, modelFile: tampered)  // stopped below (it also exits with the test process)
        let out = fixture.root.appendingPathComponent("downloaded")
        let result = try await fixture.cli(["output", "download", fixture.jobID, "--out", out.path, "--only", "model"])
        #expect(result.status == 1)
        #expect(result.stderrText.contains("output model does not decrypt and authenticate"), "\(result.stderrText)")
        let written = (try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []
        #expect(!written.contains { $0.hasPrefix("model") || $0.hasPrefix(".model") }, "written: \(written)")

        // The folder a failed download left is still this job's bundle: the retry completes it.
        Self.stop(peer)
        let (good, _) = try Self.serve(fixture, modelFile: fixture.file("model.esdk"))
        defer { Self.stop(good) }
        let retried = try await fixture.cli(["output", "download", fixture.jobID, "--out", out.path, "--only", "model"])
        #expect(retried.status == 0, "\(retried.stderrText)")
        #expect(Array(try Data(contentsOf: out.appendingPathComponent("model.json"))) == fixture.model)
    }
}
