import Enclave
import Foundation
import TestSupport
import Testing
@testable import Server

/// `StandbyEnclaveLauncher` over the real `LocalEnclaveLauncher` and real child processes: a
/// Python "enclave" that writes its pid to a log, connects, and idles; with `--speak` the first one
/// launched sends an `error` frame before any job, as an enclave that failed while waiting would.
@Suite struct StandbyEnclaveLauncherTests {
    static let script = """
        import os, socket, sys, time
        log = sys.argv[sys.argv.index('--log') + 1]
        time.sleep(float(sys.argv[sys.argv.index('--delay') + 1]))
        with open(log, 'a') as f: f.write('%d\\n' % os.getpid())
        path = sys.argv[sys.argv.index('--connect') + 1][len('unix:'):]
        s = socket.socket(socket.AF_UNIX); s.connect(path)
        if '--speak' in sys.argv and len(open(log).read().split()) == 1:
            payload = b'\\x00\\x00\\x00\\x04' + b'test' + b'\\x00\\x00\\x00\\x02' + b'hi'
            s.sendall(bytes([0xC7, 1, 0x7F, 0]) + len(payload).to_bytes(4, 'big') + payload)
        time.sleep(60)
        """

    /// A folder with the child's program (the standby's "image") and the log of the children started.
    final class World: @unchecked Sendable {
        let folder: URL
        let image: URL
        let log: URL
        let standby: StandbyEnclaveLauncher

        init(delay: Double = 0, speak: Bool = false) throws {
            folder = try TestEnvironment.temporaryDirectory("standby")
            image = folder.appendingPathComponent("enclave.py")
            log = folder.appendingPathComponent("children")
            try Data(StandbyEnclaveLauncherTests.script.utf8).write(to: image)
            var configuration = LocalEnclaveLauncher.Configuration(executablePath: try TestEnvironment.python())
            configuration.leadingArguments = [image.path]
            configuration.extraArguments = ["--log", log.path, "--delay", "\(delay)"] + (speak ? ["--speak"] : [])
            configuration.connectTimeout = .seconds(10)
            configuration.terminateGrace = .milliseconds(500)
            standby = StandbyEnclaveLauncher(inner: LocalEnclaveLauncher(configuration: configuration), imagePath: image.path)
        }

        deinit {
            standby.stop()
            try? FileManager.default.removeItem(at: folder)
        }

        /// The pids of every child started, in order.
        var children: [pid_t] {
            ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { pid_t($0) }
        }

        /// Waits until `count` children have started.
        func waitForChildren(_ count: Int) -> [pid_t] {
            let deadline = Date().addingTimeInterval(10)
            while children.count < count && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
            return children
        }
    }

    static func pid(_ instance: any EnclaveInstance) throws -> pid_t {
        let taken = try #require(instance as? ReplacedWhenEnded)
        return try #require(taken.inner as? LocalEnclave).child.pid
    }

    @Test func aJobTakesTheWaitingEnclaveAndOverlappingJobsLaunchTheirOwn() throws {
        let world = try World()
        world.standby.start()
        let waiting = try #require(world.waitForChildren(1).first)
        let first = try world.standby.launch(jobID: "j1")
        #expect(try Self.pid(first) == waiting)
        // A second job while the first runs: no standby is waiting, so it launches its own.
        let second = try world.standby.launch(jobID: "j2")
        #expect(try Self.pid(second) != waiting)
        #expect(world.children.count == 2, "nothing was launched while the jobs ran")
        // Each job's end asks for a replacement; one standby results, not two.
        first.terminate()
        second.terminate()
        first.terminate()  // idempotent: no further replacement either
        #expect(world.waitForChildren(3).count == 3)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(world.children.count == 3)
        #expect(!processExists(waiting))
    }

    @Test func aStandbyThatSpokeBeforeAnyJobIsTerminatedAndTheJobGetsAFreshOne() throws {
        let world = try World(speak: true)
        world.standby.start()
        let spoke = try #require(world.waitForChildren(1).first)
        Thread.sleep(forTimeInterval: 0.1)  // its error frame is on the way
        let job = try world.standby.launch(jobID: "j")
        defer { job.terminate() }
        #expect(try Self.pid(job) != spoke)
        #expect(!processExists(spoke), "the standby that failed was terminated")
    }

    @Test func aStandbyOfAnImageThatChangedSinceIsTerminatedAndTheJobGetsAFreshOne() throws {
        let world = try World()
        world.standby.start()
        let old = try #require(world.waitForChildren(1).first)
        // The same program, rewritten in place: another modification time, so another identity.
        Thread.sleep(forTimeInterval: 0.02)
        try Data((Self.script + "\n").utf8).write(to: world.image)
        let job = try world.standby.launch(jobID: "j")
        defer { job.terminate() }
        #expect(try Self.pid(job) != old)
        #expect(!processExists(old))
    }

    @Test func stopTerminatesAStandbyStillBeingLaunchedAndNothingIsLaunchedAfter() throws {
        let world = try World(delay: 0.3)
        world.standby.start()
        world.standby.stop()  // while the child has not connected yet: stop waits for it, then ends it
        let child = try #require(world.children.first, "the launch in flight completed before stop returned")
        #expect(!processExists(child), "stop left the standby it was launching running")
        // After stop no enclave starts at all: a job is refused with the reason.
        #expect(throws: EnclaveLaunchError(.stopping, "the server is shutting down; start the job again after it restarts")) {
            try world.standby.launch(jobID: "j")
        }
        Thread.sleep(forTimeInterval: 0.3)
        #expect(world.children.count == 1)
    }

    @Test func aJobWaitingForTheStandbyWhenStoppingBeginsStartsNoEnclave() throws {
        let world = try World(delay: 0.5)
        world.standby.start()
        let outcome = LockedList()
        let job = Thread {
            do {
                let enclave = try world.standby.launch(jobID: "j")
                outcome.append("launched")
                enclave.terminate()
            } catch let error as EnclaveLaunchError {
                outcome.append(error.code.rawValue)
            } catch {
                outcome.append("\(error)")
            }
        }
        job.start()
        Thread.sleep(forTimeInterval: 0.1)  // the job now waits for the standby being launched
        world.standby.beginStopping()  // as the server does before cancelling its jobs
        let deadline = Date().addingTimeInterval(5)
        while outcome.values.isEmpty && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(outcome.values == ["enclave.server_stopping"])
        world.standby.stop()
        Thread.sleep(forTimeInterval: 0.3)
        let children = world.children
        #expect(children.count == 1, "only the standby was ever started")
        #expect(children.allSatisfy { !processExists($0) })
    }

    @Test func beforeStartNothingIsLaunchedAhead() throws {
        let world = try World()
        let job = try world.standby.launch(jobID: "j")  // a launch of its own: nothing is on standby
        #expect(world.children.count == 1)
        job.terminate()
        Thread.sleep(forTimeInterval: 0.3)
        #expect(world.children.count == 1, "a job's end launched a standby for a launcher never started")
    }
}
