import Foundation
import Spawn
import Testing
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// `ChildProcess` with real children (`/bin/sh`, `sleep`).
@Suite struct ChildProcessTests {
    @Test func outputGoesToFilesAppendedOrTruncatedAndStderrFollowsStdout() throws {
        let dir = try TestEnvironment.temporaryDirectory("spawn-output")
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("log").path
        for _ in 0..<2 {
            let child = try ChildProcess.spawn(
                executable: "/bin/sh", arguments: ["-c", "echo out; echo err >&2"], environment: [:],
                stdout: .file(log, append: true))
            #expect(child.waitForExit() == .exited(0))
        }
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "out\nerr\nout\nerr\n")
        let out = dir.appendingPathComponent("out").path, err = dir.appendingPathComponent("err").path
        let child = try ChildProcess.spawn(
            executable: "/bin/sh", arguments: ["-c", "echo fresh; echo oops >&2; exit 3"], environment: [:],
            stdout: .file(log, append: false), stderr: .file(err, append: false))
        #expect(child.waitForExit() == .exited(3))
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "fresh\n")
        #expect(try String(contentsOfFile: err, encoding: .utf8) == "oops\n")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    /// Only stdin, stdout and stderr reach a child: a descriptor this process holds without
    /// close-on-exec (or got from its own parent) does not (the enclave had two of its parent shell's).
    @Test func noOtherDescriptorIsInherited() throws {
        let dir = try TestEnvironment.temporaryDirectory("spawn-fds")
        defer { try? FileManager.default.removeItem(at: dir) }
        let leaked = open(dir.appendingPathComponent("held").path, O_CREAT | O_WRONLY, 0o600)  // no O_CLOEXEC
        #expect(leaked > 2)
        defer { close(leaked) }
        let log = dir.appendingPathComponent("fds").path
        let child = try ChildProcess.spawn(
            executable: "/bin/sh", arguments: ["-c", "ls /proc/$$/fd"], environment: [:], stdout: .file(log, append: false))
        #expect(child.waitForExit() == .exited(0))
        let listed = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").compactMap { Int32($0) }
        #expect(!listed.contains(leaked), "\(listed)")
        #expect(Set(listed).isSubset(of: [0, 1, 2, 3]), "\(listed)")  // 3: the shell's own, if any
    }

    @Test func theEnvironmentIsExactlyTheOneGiven() throws {
        let dir = try TestEnvironment.temporaryDirectory("spawn-env")
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("env").path
        setenv("CLEANROOM_SPAWN_TEST_INHERITED", "yes", 1)
        let child = try ChildProcess.spawn(
            executable: "/usr/bin/env", arguments: [], environment: ["ONLY": "this"], stdout: .file(log, append: false))
        #expect(child.waitForExit() == .exited(0))
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "ONLY=this\n")
    }

    /// A thread blocked waiting for the child holds no lock: another thread can still signal it
    /// (and the waiter then sees how it ended).
    @Test func aThreadWaitingForTheChildDoesNotBlockSignallingIt() throws {
        let child = try ChildProcess.spawn(executable: "/bin/sleep", arguments: ["30"], environment: [:])
        let ended = DispatchSemaphore(value: 0)
        let status = Locked<ChildProcess.ExitStatus?>(nil)
        Thread.detachNewThread {
            status.set(child.waitForExit())
            ended.signal()
        }
        Thread.sleep(forTimeInterval: 0.1)
        let signalled = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            child.signal(SIGTERM)
            signalled.signal()
        }
        #expect(signalled.wait(timeout: .now() + 2) == .success, "signal() waited for the waiting thread")
        #expect(ended.wait(timeout: .now() + 5) == .success)
        #expect(status.get() == .signaled(SIGTERM))
        #expect(child.poll() == .signaled(SIGTERM))
        #expect(ChildProcess.ExitStatus.signaled(SIGTERM).code == 128 + SIGTERM)
    }

    @Test func terminateEndsTheWholeProcessGroup() throws {
        let dir = try TestEnvironment.temporaryDirectory("spawn-group")
        defer { try? FileManager.default.removeItem(at: dir) }
        let pidFile = dir.appendingPathComponent("pid").path
        let child = try ChildProcess.spawn(
            executable: "/bin/sh", arguments: ["-c", "sleep 30 & echo $! > \(pidFile); wait"], environment: [:])
        var grandchild: pid_t = 0
        for _ in 0..<200 where grandchild == 0 {
            grandchild = pid_t((try? String(contentsOfFile: pidFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
            if grandchild == 0 { Thread.sleep(forTimeInterval: 0.01) }
        }
        try #require(grandchild > 0)
        #expect(child.terminate(grace: .seconds(2)) == .signaled(SIGTERM))
        // The grandchild got the group's SIGTERM too: it is gone, or a zombie waiting for its reaper.
        var alive = true
        for _ in 0..<200 where alive {
            let state = (try? String(contentsOfFile: "/proc/\(grandchild)/stat", encoding: .utf8))?.split(separator: " ")
            alive = state.map { $0.count > 2 && $0[2] != "Z" } ?? false
            if alive { Thread.sleep(forTimeInterval: 0.01) }
        }
        #expect(!alive, "the sleep in the child's group still runs")
    }

    @Test func aMissingExecutableIsAnError() {
        #expect(throws: ChildProcess.SpawnError.self) {
            try ChildProcess.spawn(executable: "/nonexistent/program", arguments: [], environment: [:])
        }
    }
}

/// A value shared between test threads.
final class Locked<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func get() -> Value { lock.withLock { value } }
    func set(_ newValue: Value) { lock.withLock { value = newValue } }
}

/// `SealedExecutable`: a copy that neither the source nor its holder can change, that runs.
@Suite struct SealedExecutableTests {
    @Test func theCopyRunsAndStaysAsItWasCopied() throws {
        let dir = try TestEnvironment.temporaryDirectory("sealed-executable")
        defer { try? FileManager.default.removeItem(at: dir) }
        let source = dir.appendingPathComponent("tool").path
        try FileManager.default.copyItem(atPath: "/bin/echo", toPath: source)
        let original = try Data(contentsOf: URL(fileURLWithPath: source))
        let image = try SealedExecutable(copying: source)
        try Data("replaced".utf8).write(to: URL(fileURLWithPath: source))
        #expect(try Data(contentsOf: URL(fileURLWithPath: image.path)) == original, "the copy, not the file now at the path")

        // Sealed: no write, no truncation, and the seals cannot be lifted.
        let reopened = open(image.path, O_WRONLY)
        #expect(reopened < 0 || (write(reopened, "x", 1) < 0 && errno == EPERM), "written through another descriptor")
        if reopened >= 0 { close(reopened) }
        #expect(ftruncate(image.fileDescriptor, 0) != 0 && errno == EPERM)
        #expect(pwrite(image.fileDescriptor, "x", 1, 0) < 0 && errno == EPERM)
        #expect(try Data(contentsOf: URL(fileURLWithPath: image.path)) == original)

        let log = dir.appendingPathComponent("out").path
        let child = try ChildProcess.spawn(
            image: image, argv0: "named-tool", arguments: ["from", "memory"], environment: [:],
            stdout: .file(log, append: false))
        #expect(child.waitForExit() == .exited(0))
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "from memory\n")
    }

    /// A script runs from its sealed copy too: its interpreter reads it as the child's descriptor 3
    /// (with the copy close-on-exec, the interpreter found it closed, and a wrapper script as the
    /// enclave binary stopped working; a review).
    @Test func aScriptRunsFromItsCopy() throws {
        let dir = try TestEnvironment.temporaryDirectory("sealed-script")
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = dir.appendingPathComponent("wrapper.sh").path
        try Data("#!/bin/sh\necho \"$0 says $1\"\n".utf8).write(to: URL(fileURLWithPath: script))
        #expect(chmod(script, 0o755) == 0)
        let image = try SealedExecutable(copying: script)
        let log = dir.appendingPathComponent("out").path
        let child = try ChildProcess.spawn(
            image: image, argv0: script, arguments: ["hello"], environment: [:], stdout: .file(log, append: false))
        #expect(child.waitForExit() == .exited(0))
        #expect(try String(contentsOfFile: log, encoding: .utf8) == "/proc/self/fd/3 says hello\n")
    }

    @Test func aMissingSourceIsAClearError() {
        #expect(throws: ChildProcess.SpawnError.self) { try SealedExecutable(copying: "/nonexistent/tool") }
        do {
            _ = try SealedExecutable(copying: "/nonexistent/tool")
        } catch {
            #expect(error.description.contains("cannot open /nonexistent/tool"))
        }
    }
}
