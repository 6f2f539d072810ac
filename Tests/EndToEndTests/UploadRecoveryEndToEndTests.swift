import Foundation
import TestSupport
import Testing

/// Uploads cut off mid-stream and a server killed (SIGKILL) during an upload, over real sockets.
@Suite(.serialized) struct UploadRecoveryEndToEndTests {
    /// Sends `PUT path` declaring `declared` bytes but writing only the first `send` bytes of FILE,
    /// then either closes the connection or holds it open until killed.
    static let partialPut = """
        import socket, sys, time
        port, path, token, file, declared, send, hold = sys.argv[1:8]
        body = open(file, "rb").read()
        s = socket.create_connection(("127.0.0.1", int(port)))
        s.sendall((f"PUT {path} HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer {token}\\r\\n"
                   f"Content-Type: application/octet-stream\\r\\nContent-Length: {declared}\\r\\n\\r\\n").encode())
        s.sendall(body[:int(send)])
        if hold == "hold":
            print("sent", flush=True)
            time.sleep(30)
        s.close()
        """

    struct Setup {
        let root: URL
        let server: CleanroomdProcess
        let machine: GovernanceEndToEndTests.PartyMachine
        let datasetId: String
        let ciphertext: URL
        let token: String
    }

    static func setup(_ label: String) throws -> Setup {
        let root = try TestEnvironment.temporaryDirectory(label)
        let server = try CleanroomdProcess(dataDirectory: root.appendingPathComponent("data"), keepsPort: true)
        try server.start()
        let machine = try GovernanceEndToEndTests.onboard("Alpha", server: server, root: root)
        let (datasetId, sealed) = try GovernanceEndToEndTests.sealedDataset(
            machine, csv: GovernanceEndToEndTests.csv(rows: 20_000, seed: 3), name: "big", root: root)
        let profile = try JSONSerialization.jsonObject(
            with: Data(contentsOf: machine.home.appendingPathComponent("profiles/default.json"))) as! [String: Any]
        return Setup(
            root: root, server: server, machine: machine, datasetId: datasetId, ciphertext: sealed,
            token: profile["credential"] as! String)
    }

    static func datasetFiles(_ server: CleanroomdProcess, _ datasetId: String) -> [String] {
        let objects = server.dataDirectory.appendingPathComponent("objects")
        let all = FileManager.default.enumerator(atPath: objects.path)?.allObjects as? [String] ?? []
        return all.filter { $0.contains(datasetId) && !$0.hasSuffix("/") }
    }

    @Test func uploadCutOffMidStreamLeavesNoVisibleDataset() throws {
        let s = try Self.setup("e2e-cutoff")
        defer {
            s.server.stop()
            try? FileManager.default.removeItem(at: s.root)
        }
        let size = try Data(contentsOf: s.ciphertext).count
        let cut = try ProcessRunner.python(
            Self.partialPut,
            ["\(s.server.port)", "/v1/datasets/\(s.datasetId)/content", s.token, s.ciphertext.path, "\(size)", "\(size / 2)", "close"])
        #expect(cut.status == 0, "\(cut.stderrText)")
        Thread.sleep(forTimeInterval: 0.5)
        let shown = try s.machine.json(["dataset", "show", s.datasetId])
        #expect(shown["status"] as? String == "created")
        #expect(shown["sha256"] == nil)
        // The retry through the CLI succeeds.
        let uploaded = try s.machine.json(["dataset", "upload", s.datasetId, s.ciphertext.path, "--ciphertext"])
        #expect(uploaded["status"] as? String == "available")
    }

    @Test func sigkillDuringUploadThenRestartLeavesAConsistentStoreAndTheUploadCanBeRetried() throws {
        let s = try Self.setup("e2e-sigkill")
        defer {
            s.server.stop()
            try? FileManager.default.removeItem(at: s.root)
        }
        let size = try Data(contentsOf: s.ciphertext).count
        // A client that sends half the message and then stalls, in the background.
        let client = Process()
        client.executableURL = URL(fileURLWithPath: try TestEnvironment.python())
        client.arguments = [
            "-c", Self.partialPut, "\(s.server.port)", "/v1/datasets/\(s.datasetId)/content", s.token, s.ciphertext.path,
            "\(size)", "\(size / 2)", "hold",
        ]
        let out = Pipe()
        client.standardOutput = out
        try client.run()
        defer { if client.isRunning { client.terminate() } }
        _ = out.fileHandleForReading.availableData  // "sent"
        Thread.sleep(forTimeInterval: 1.0)  // let the server write part of the object
        s.server.stop(signal: SIGKILL)
        client.terminate()
        // The kill really happened mid-upload: the pending-upload record is there.
        let pending = try ProcessRunner.python(
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM pendingUpload').fetchone()[0])",
            [s.server.dataDirectory.appendingPathComponent("cleanroom.sqlite").path])
        #expect(pending.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "1", "\(pending.stderrText)")

        try s.server.start()
        let afterRestart = try ProcessRunner.python(
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM pendingUpload').fetchone()[0])",
            [s.server.dataDirectory.appendingPathComponent("cleanroom.sqlite").path])
        #expect(afterRestart.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        let shown = try s.machine.json(["dataset", "show", s.datasetId])
        #expect(shown["status"] as? String == "created")
        #expect(shown["sha256"] == nil)
        #expect(Self.datasetFiles(s.server, s.datasetId).isEmpty, "no partial object survives the restart")
        let uploaded = try s.machine.json(["dataset", "upload", s.datasetId, s.ciphertext.path, "--ciphertext"])
        #expect(uploaded["status"] as? String == "available")
        #expect(uploaded["size"] as? Int == size)
        let verified = try CLI.json(
            try CLI.run("cleanroomd", ["audit", "verify", "--data-dir", s.server.dataDirectory.path, "--json"]))
        #expect(verified["valid"] as? Bool == true)
    }
}
