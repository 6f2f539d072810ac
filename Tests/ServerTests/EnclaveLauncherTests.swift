import Attestation
import Crypto
import Enclave
import Foundation
import Synchronization
import TestSupport
import Testing
@testable import Server

/// Whether a process with `pid` exists at all (running or zombie).
func processExists(_ pid: pid_t) -> Bool {
    FileManager.default.fileExists(atPath: "/proc/\(pid)")
}

@Suite struct LocalEnclaveLauncherTests {
    func launcher(_ executable: String, _ extra: [String] = [], timeout: Duration = .seconds(10)) -> LocalEnclaveLauncher {
        var configuration = LocalEnclaveLauncher.Configuration(executablePath: executable)
        configuration.extraArguments = extra
        configuration.connectTimeout = timeout
        configuration.terminateGrace = .milliseconds(500)
        return LocalEnclaveLauncher(configuration: configuration)
    }

    @Test func childConnectsOverAPrivateUnixSocketAndIsReapedOnTerminate() throws {
        // A real child process (Python) that dials the socket it is given and speaks one frame.
        let script = """
            import socket, sys, time
            path = sys.argv[sys.argv.index('--connect') + 1][len('unix:'):]
            s = socket.socket(socket.AF_UNIX); s.connect(path)
            payload = b'\\x00\\x00\\x00\\x04' + b'test' + b'\\x00\\x00\\x00\\x02' + b'hi'
            s.sendall(bytes([0xC7, 1, 0x7F, 0]) + len(payload).to_bytes(4, 'big') + payload)
            time.sleep(60)
            """
        let python = try TestEnvironment.python()
        var configuration = launcher(python).configuration
        configuration.leadingArguments = ["-c", script]
        let enclave = try LocalEnclaveLauncher(configuration: configuration).launch(jobID: "j")
        let local = try #require(enclave as? LocalEnclave)
        #expect(try enclave.connection.receive(timeout: .seconds(10)) == .error(ChannelFailure(code: "test", message: "hi")))
        #expect(enclave.isAlive())
        let pid = local.child.pid
        enclave.terminate()
        #expect(!enclave.isAlive())
        #expect(!processExists(pid), "the child is gone, not a zombie")
        enclave.terminate()  // idempotent
    }

    @Test func attestorIsMadeForEachLaunchWhileTheChildStartsAndTheRequestWaitsForIt() throws {
        // The child connects at once and idles; the attestor takes 300 ms to make (a slow measurement).
        let script = """
            import socket, sys, time
            path = sys.argv[sys.argv.index('--connect') + 1][len('unix:'):]
            s = socket.socket(socket.AF_UNIX); s.connect(path)
            time.sleep(60)
            """
        let made = LockedCounter()
        var configuration = launcher(try TestEnvironment.python()).configuration
        configuration.leadingArguments = ["-c", script]
        configuration.attestor = { _ in
            made.increment()
            Thread.sleep(forTimeInterval: 0.3)
            return FixedAttestor(document: [0xD2, made.value])
        }
        let launcher = LocalEnclaveLauncher(configuration: configuration)
        for launch in 1...2 {
            let start = ContinuousClock.now
            let enclave = try launcher.launch(jobID: "j\(launch)")
            defer { enclave.terminate() }
            let waitUntil = ContinuousClock.now + .seconds(2)
            while made.value < launch && ContinuousClock.now < waitUntil { Thread.sleep(forTimeInterval: 0.005) }
            #expect(made.value == launch, "made as soon as the child was spawned, before anyone asked")
            Thread.sleep(forTimeInterval: 0.3)
            let attest = try #require(enclave.localAttestation)
            let before = ContinuousClock.now
            #expect(try attest([1], [2], [3]) == [0xD2, UInt8(launch)], "a fresh attestor per launch")
            #expect(ContinuousClock.now - before < .milliseconds(250), "the 300 ms were spent while the child started")
            #expect(ContinuousClock.now - start >= .milliseconds(300))
        }
    }

    /// What is measured is the file the child runs, not what is at its path by then: a binary
    /// renamed over the path right after the spawn (the moment a review's race won, so that its
    /// own enclave got the allowed binary's PCR0 and the keys) changes nothing.
    @Test func theMeasurementIsOfTheFileTheChildRunsNotOfWhatIsAtItsPathNow() throws {
        let folder = try TestEnvironment.temporaryDirectory("measured-enclave")
        defer { try? FileManager.default.removeItem(at: folder) }
        let running = folder.appendingPathComponent("cleanroom-enclave").path
        let other = folder.appendingPathComponent("other-enclave").path
        let original = try Data(contentsOf: URL(fileURLWithPath: try TestEnvironment.executable("cleanroom-enclave")))
        try original.write(to: URL(fileURLWithPath: running))
        try (original + Data("another image".utf8)).write(to: URL(fileURLWithPath: other))
        #expect(chmod(running, 0o755) == 0 && chmod(other, 0o755) == 0)

        let measured = Mutex<[UInt8]?>(nil)
        var configuration = launcher(running, ["--attestor", "development"]).configuration
        configuration.attestor = { path in
            // The swap, at the worst moment: the child started, the measurement not yet made.
            guard rename(other, running) == 0 else { throw AttestationError(.measurementFailed, "rename failed") }
            let measurements = try DevelopmentMeasurements(executableAt: path)
            measured.withLock { $0 = measurements.pcr0 }
            return FixedAttestor(document: [0xD2])
        }
        let enclave = try LocalEnclaveLauncher(configuration: configuration).launch(jobID: "j")
        defer { enclave.terminate() }
        let attest = try #require(enclave.localAttestation)
        _ = try attest([1], [2], [3])
        #expect(measured.withLock { $0 } == SHA384.hash(Array(original)), "the running binary's PCR0")
        #expect(try Data(contentsOf: URL(fileURLWithPath: running)) != original, "the path now holds the other binary")
    }

    /// A program at the path that runs its own code and then executes the allowed binary (here
    /// `env`, which does just that) is measured as itself. Measured as the child's /proc/PID/exe once
    /// it has executed the allowed one, it had that binary's PCR0 and got the keys.
    @Test func aProgramThatExecutesTheAllowedBinaryIsMeasuredAsItself() throws {
        let allowed = try TestEnvironment.executable("cleanroom-enclave")
        let stub = "/usr/bin/env"
        let measured = Mutex<[UInt8]?>(nil)
        var configuration = launcher(stub, ["--attestor", "development"]).configuration
        configuration.leadingArguments = [allowed]
        configuration.attestor = { path in
            Thread.sleep(forTimeInterval: 0.3)  // long after the stub executed the allowed binary
            let measurements = try DevelopmentMeasurements(executableAt: path)
            measured.withLock { $0 = measurements.pcr0 }
            return FixedAttestor(document: [0xD2])
        }
        let enclave = try LocalEnclaveLauncher(configuration: configuration).launch(jobID: "j")
        defer { enclave.terminate() }
        let local = try #require(enclave as? LocalEnclave)
        let attest = try #require(enclave.localAttestation)
        _ = try attest([1], [2], [3])
        let stubImage = try Data(contentsOf: URL(fileURLWithPath: stub).resolvingSymlinksInPath())
        #expect(measured.withLock { $0 } == SHA384.hash(Array(stubImage)), "the stub's PCR0")
        #expect(measured.withLock { $0 } != SHA384.hash(Array(try Data(contentsOf: URL(fileURLWithPath: allowed)))))
        // The allowed binary did run (it connected), under its own name.
        let name = try String(contentsOfFile: "/proc/\(local.child.pid)/comm", encoding: .utf8)
        #expect(name == "cleanroom-encla\n")
    }

    /// The child runs from a sealed in-memory copy, yet goes by the binary's path and name.
    @Test func theEnclaveRunsFromASealedCopyUnderItsOwnName() throws {
        let binary = try TestEnvironment.executable("cleanroom-enclave")
        let enclave = try launcher(binary, ["--attestor", "development"]).launch(jobID: "j")
        defer { enclave.terminate() }
        let pid = try #require(enclave as? LocalEnclave).child.pid
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
        #expect(executable.hasPrefix("/memfd:cleanroom-enclave"), "\(executable)")
        let argv = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")).split(separator: 0)
        #expect(argv.first.map { String(decoding: $0, as: UTF8.self) } == binary)
        #expect(try String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8) == "cleanroom-encla\n")
    }

    @Test func attestorFailureIsTheAttestationsFailure() throws {
        let script = "import socket, sys, time\npath = sys.argv[sys.argv.index('--connect') + 1][len('unix:'):]\n"
            + "s = socket.socket(socket.AF_UNIX); s.connect(path)\ntime.sleep(60)\n"
        var configuration = launcher(try TestEnvironment.python()).configuration
        configuration.leadingArguments = ["-c", script]
        configuration.attestor = { _ in throw AttestationError(.measurementFailed, "cannot open the enclave executable") }
        let enclave = try LocalEnclaveLauncher(configuration: configuration).launch(jobID: "j")
        defer { enclave.terminate() }
        let attest = try #require(enclave.localAttestation)
        #expect(throws: AttestationError.self) { try attest([1], [2], [3]) }
    }

    @Test func childThatNeverConnectsIsKilledAtTheDeadline() throws {
        let start = ContinuousClock.now
        let marker = "30.\(UInt32.random(in: 100_000...999_999))"
        do {
            var configuration = launcher("/bin/sh", timeout: .milliseconds(500)).configuration
            configuration.leadingArguments = ["-c", "sleep \(marker); true"]
            _ = try LocalEnclaveLauncher(configuration: configuration).launch(jobID: "j")
            Issue.record("launch should time out")
        } catch {
            #expect(error.code == .connectTimeout)
        }
        #expect(ContinuousClock.now - start < .seconds(5))
        // Neither the shell nor its sleep grandchild is left behind (the whole group is killed).
        #expect(try ProcessRunner.run("/bin/sh", ["-c", "pgrep -f 'sleep \(marker.replacingOccurrences(of: ".", with: "\\\\."))' || true"]).stdoutText.isEmpty)
    }

    @Test func childThatExitsBeforeConnectingIsReportedAtOnce() throws {
        let start = ContinuousClock.now
        do {
            _ = try launcher("/bin/false", timeout: .seconds(30)).launch(jobID: "j")
            Issue.record("launch should fail")
        } catch {
            #expect(error.code == .exitedEarly)
            #expect(error.message.contains("exited with status 1"))
        }
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test func missingExecutableIsASpawnFailure() {
        do {
            _ = try launcher("/nonexistent/cleanroom-enclave").launch(jobID: "j")
            Issue.record("launch should fail")
        } catch {
            #expect(error.code == .spawnFailed || error.code == .exitedEarly)
        }
    }

    @Test func socketDirectoryIsRemovedAfterLaunch() throws {
        let parent = try TestEnvironment.temporaryDirectory("sockparent")
        defer { try? FileManager.default.removeItem(at: parent) }
        var configuration = LocalEnclaveLauncher.Configuration(executablePath: "/bin/false")
        configuration.socketParent = parent.path
        _ = try? LocalEnclaveLauncher(configuration: configuration).launch(jobID: "j")
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty)
    }
}

@Suite struct NitroEnclaveLauncherTests {
    @Test func runArgumentsCarryImageResourcesAndDebugFlag() throws {
        var configuration = NitroEnclaveLauncher.Configuration(
            eifPath: "/opt/cleanroom/enclave.eif", cpuCount: 2, memoryMiB: 4096, port: 5005)
        #expect(
            try NitroEnclaveLauncher(configuration: configuration).runArguments == [
                "run-enclave", "--eif-path", "/opt/cleanroom/enclave.eif", "--cpu-count", "2", "--memory", "4096",
            ])
        configuration.enclaveCID = 16
        configuration.debugMode = true
        #expect(
            try NitroEnclaveLauncher(configuration: configuration).runArguments == [
                "run-enclave", "--eif-path", "/opt/cleanroom/enclave.eif", "--cpu-count", "2", "--memory", "4096",
                "--enclave-cid", "16", "--debug-mode",
            ])
        #expect(
            NitroEnclaveLauncher.terminateArguments(enclaveID: "i-0abc-enc0123")
                == ["terminate-enclave", "--enclave-id", "i-0abc-enc0123"])
    }

    @Test func invalidConfigurationIsRefused() {
        for (cpu, memory, port, eif) in [(0, 4096, 5005, "/e.eif"), (2, 32, 5005, "/e.eif"), (2, 4096, 0, "/e.eif"), (2, 4096, 5005, "")] {
            #expect(throws: EnclaveLaunchError.self) {
                try NitroEnclaveLauncher(
                    configuration: .init(eifPath: eif, cpuCount: cpu, memoryMiB: memory, port: UInt32(port)))
            }
        }
    }

    @Test func enclaveIDIsReadFromRunOutput() throws {
        let output = """
            Start allocating memory...
            Started enclave with enclave-cid: 16, memory: 4096 MiB, cpu-ids: [1, 3]
            {
              "EnclaveName": "cleanroom",
              "EnclaveID": "i-0123456789abcdef0-enc0123456789abcd",
              "ProcessID": 4242,
              "EnclaveCID": 16,
              "NumberOfCPUs": 2,
              "CPUIDs": [1, 3],
              "MemoryMiB": 4096
            }
            """
        #expect(try NitroEnclaveLauncher.enclaveID(fromRunOutput: Array(output.utf8)) == "i-0123456789abcdef0-enc0123456789abcd")
        for bad in ["", "error", #"{"EnclaveID": ""}"#, #"{"EnclaveID": "i-1; rm -rf /"}"#, #"{"Other": 1}"#] {
            #expect(throws: EnclaveLaunchError.self) { try NitroEnclaveLauncher.enclaveID(fromRunOutput: Array(bad.utf8)) }
        }
    }

    @Test func failingNitroCLIIsReportedWithItsOutput() throws {
        // A stand-in nitro-cli that fails the way the real one does without enclave support.
        let dir = try TestEnvironment.temporaryDirectory("nitro")
        defer { try? FileManager.default.removeItem(at: dir) }
        let tool = dir.appendingPathComponent("nitro-cli")
        try "#!/bin/sh\necho '[ E26 ] Insufficient CPUs available in the pool.' >&2\nexit 1\n".write(
            to: tool, atomically: true, encoding: .utf8)
        chmod(tool.path, 0o755)
        var configuration = NitroEnclaveLauncher.Configuration(eifPath: "/e.eif", cpuCount: 2, memoryMiB: 512, port: 5005)
        configuration.nitroCLI = tool.path
        configuration.connectTimeout = .seconds(5)
        let launcher = try NitroEnclaveLauncher(configuration: configuration)
        var outcome: EnclaveLaunchError?
        // A script just written can be briefly "text file busy" if another test spawns meanwhile.
        for _ in 0..<20 {
            do {
                _ = try launcher.launch(jobID: "j")
                Issue.record("launch should fail")
                return
            } catch {
                outcome = error
                if error.code != .spawnFailed { break }
                usleep(50_000)
            }
        }
        let error = try #require(outcome)
        // Without vsock support in this kernel the listener fails first; with it, nitro-cli does.
        #expect(error.code == .nitroCLIFailed || error.code == .socket, "\(error)")
        if error.code == .nitroCLIFailed { #expect(error.message.contains("E26")) }
    }
}

extension NitroEnclaveLauncherTests {
    @Test func launchesAtOnceTakeTurnsOnTheirPortInsteadOfFailingToListen() throws {
        // The stand-in nitro-cli "starts" an enclave that never dials back, so each launch waits out
        // its connect deadline while it holds the port.
        let port = UInt32.random(in: 20_000...60_000)
        do {
            close(try ChannelSocket.listen(.vsock(cid: ChannelAddress.anyCID, port: port)))
        } catch {
            return  // no vsock in this kernel: every launch fails at its listener, in turn or not
        }
        let dir = try TestEnvironment.temporaryDirectory("nitro-turns")
        defer { try? FileManager.default.removeItem(at: dir) }
        let tool = dir.appendingPathComponent("nitro-cli")
        try "#!/bin/sh\necho '{\"EnclaveID\": \"i-0123-enc0123\"}'\n".write(to: tool, atomically: true, encoding: .utf8)
        chmod(tool.path, 0o755)
        usleep(100_000)  // a script just written can be briefly "text file busy"
        var configuration = NitroEnclaveLauncher.Configuration(eifPath: "/e.eif", cpuCount: 2, memoryMiB: 512, port: port)
        configuration.nitroCLI = tool.path
        configuration.connectTimeout = .milliseconds(600)
        let launcher = try NitroEnclaveLauncher(configuration: configuration)
        let outcomes = LockedList()
        let start = ContinuousClock.now
        let threads = (0..<2).map { index in
            Thread {
                do {
                    _ = try launcher.launch(jobID: "j\(index)")
                    outcomes.append("launched")
                } catch let error as EnclaveLaunchError {
                    outcomes.append(error.code.rawValue)
                } catch {
                    outcomes.append("\(error)")
                }
            }
        }
        threads.forEach { $0.start() }
        while outcomes.values.count < 2 && ContinuousClock.now - start < .seconds(10) { usleep(10_000) }
        #expect(outcomes.values == ["enclave.connect_timeout", "enclave.connect_timeout"], "neither failed to listen")
        #expect(ContinuousClock.now - start >= .milliseconds(1200), "one after the other")
    }
}

final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    var values: [String] { lock.withLock { items } }
    func append(_ item: String) { lock.withLock { items.append(item) } }
}

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count: UInt8 = 0
    var value: UInt8 { lock.withLock { count } }
    func increment() { lock.withLock { count += 1 } }
}

/// Answers every request with the same bytes.
struct FixedAttestor: Attestor {
    let document: [UInt8]
    func attestationDocument(publicKey: [UInt8]?, userData: [UInt8]?, nonce: [UInt8]?) throws(AttestationError) -> [UInt8] {
        document
    }
}
