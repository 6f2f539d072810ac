import Foundation
import Testing
import TestSupport

@testable import AWS

/// Retries: a multipart upload survives the S3 endpoint's process being killed (SIGKILL) and
/// restarted mid-upload. moto keeps its state in memory, so the process killed is the
/// endpoint's front (a TCP relay process in front of moto, as a load balancer would be):
/// in-flight connections are reset and new ones refused until it comes back.
@Suite(.serialized)
struct S3RetryMotoTests {
    static let relay = """
        import socket, sys, threading
        ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", int(sys.argv[1]))); ls.listen(64)
        def pipe(a, b):
            try:
                while True:
                    d = a.recv(65536)
                    if not d: break
                    b.sendall(d)
            except OSError: pass
            finally:
                for s in (a, b):
                    try: s.shutdown(socket.SHUT_RDWR)
                    except OSError: pass
        while True:
            c, _ = ls.accept()
            u = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
            threading.Thread(target=pipe, args=(c, u), daemon=True).start()
            threading.Thread(target=pipe, args=(u, c), daemon=True).start()
        """

    final class Relay: @unchecked Sendable {
        let port: Int
        let target: Int
        let dir: URL
        private let lock = NSLock()
        private var child: ChildProcess?
        private(set) var restarts = 0

        init(target: Int) throws {
            port = try TestEnvironment.freePort()
            self.target = target
            dir = try TestEnvironment.temporaryDirectory("relay")
            try start()
        }

        func start() throws {
            let c = try ChildProcess.start(
                try TestEnvironment.python(), ["-c", S3RetryMotoTests.relay, String(port), String(target)],
                stdout: dir.appendingPathComponent("out").path, stderr: dir.appendingPathComponent("err").path)
            lock.withLock { child = c }
            try MotoServer.waitForPort(port)
        }

        func kill() {
            let c = lock.withLock { child }
            c?.kill()
            c?.wait()
        }

        func restart(after seconds: Double) {
            kill()
            let t = Thread {
                Thread.sleep(forTimeInterval: seconds)
                try? self.start()
                self.lock.withLock { self.restarts += 1 }
            }
            t.start()
        }

        func stop() {
            kill()
            try? FileManager.default.removeItem(at: dir)
        }
    }

    @Test func aMultipartUploadSurvivesTheEndpointBeingKilledAndRestartedMidUpload() async throws {
        let moto = try MotoServer()
        defer { moto.stop() }
        try moto.boto(#"client("s3").create_bucket(Bucket="retry-test")"#)
        let relay = try Relay(target: moto.port)
        defer { relay.stop() }

        var cfg = HTTPClient.Configuration()
        cfg.retry = RetryPolicy(maxAttempts: 12, baseDelay: 0.2, maxDelay: 1.5)
        cfg.maxConcurrentTransfers = 4
        let client = HTTPClient(configuration: cfg)
        let store = try S3ObjectStore(
            bucket: "retry-test",
            configuration: AWSConfiguration(
                region: "us-east-1", credentials: StaticCredentialsProvider(moto.credentials),
                endpointOverrides: ["": "http://127.0.0.1:\(relay.port)"]), partSize: 5 << 20, concurrentParts: 2, client: client)

        let total = 40 << 20
        let killAt = 12 << 20
        let sent = LockedBox((0, false))
        let body = ByteStream(next: {
            let (offset, kill) = sent.withLock { s -> (Int, Bool) in
                let o = s.0
                let k = o >= killAt && !s.1
                if k { s.1 = true }
                return (o, k)
            }
            if kill { relay.restart(after: 1.0) }
            guard offset < total else { return nil }
            let n = min(1 << 20, total - offset)
            sent.withLock { $0.0 += n }
            return [UInt8](repeating: UInt8(truncatingIfNeeded: offset >> 20), count: n)
        })
        let info = try await store.put(key: "survivor", body: body)
        #expect(relay.restarts == 1)
        #expect(info.size == Int64(total))
        let got = try await store.get(key: "survivor")
        var offset = 0
        var ok = true
        for try await chunk in got.body {
            for b in chunk {
                if b != UInt8(truncatingIfNeeded: offset >> 20) { ok = false }
                offset += 1
            }
        }
        #expect(offset == total)
        #expect(ok)
    }
}
