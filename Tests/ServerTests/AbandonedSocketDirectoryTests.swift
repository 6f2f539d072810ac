import Enclave
import Foundation
import LocalServices
import Logging
import TestSupport
import Testing

@testable import Server

#if canImport(Glibc)
    import Glibc
#endif

/// The socket directories of local enclave launches: each names the server that made it, and a
/// server starting removes those of servers that are gone (killed while an enclave started) and
/// never one of a server still running: several servers and test runs share /tmp on one machine.
@Suite struct AbandonedSocketDirectoryTests {
    /// A socket directory under `parent` as a launch makes it (mkdtemp, 0700), with `owner` written
    /// and a file where the socket would be.
    static func socketDirectory(in parent: URL, owner: SocketDirectoryOwner?) throws -> String {
        var template = Array("\(parent.path)/\(LocalEnclaveLauncher.socketDirectoryPrefix)XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        let path = String(cString: try #require(made))
        if let owner { #expect(owner.write(to: path + "/owner")) }
        #expect(FileManager.default.createFile(atPath: path + "/channel.sock", contents: nil))
        return path
    }

    /// A real process (`sleep`), and who it is as the owner of a socket directory.
    static func process() throws -> (ChildProcess, SocketDirectoryOwner) {
        let process = try ChildProcess.start("/bin/sleep", ["60"], stdout: "/dev/null", stderr: "/dev/null")
        let pid = process.pid
        var start: UInt64?
        for _ in 0..<100 where start == nil {
            start = SocketDirectoryOwner.startTime(of: pid)
            if start == nil { Thread.sleep(forTimeInterval: 0.01) }
        }
        let me = try #require(SocketDirectoryOwner.current)
        return (process, SocketDirectoryOwner(pid: pid, startTime: try #require(start), bootID: me.bootID, pidNamespace: me.pidNamespace))
    }

    /// Kills the process and reaps it: its pid is gone.
    static func end(_ process: ChildProcess) {
        process.kill()
        process.wait()
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    @Test func onlyDirectoriesOfServersThatAreGoneAreRemoved() throws {
        let parent = try TestEnvironment.temporaryDirectory("sockets")
        defer { try? FileManager.default.removeItem(at: parent) }
        let me = try #require(SocketDirectoryOwner.current)
        let (running, runningOwner) = try Self.process()
        defer { Self.end(running) }
        let (exited, exitedOwner) = try Self.process()
        Self.end(exited)

        var reused = me
        reused.startTime += 1  // this pid, but another process's start: the pid was reused
        var earlierBoot = me
        earlierBoot.bootID = "00000000-0000-0000-0000-000000000000"
        var elsewhere = exitedOwner
        elsewhere.pidNamespace = "pid:[1]"  // another pid namespace: cannot be checked, kept

        let gone = [
            try Self.socketDirectory(in: parent, owner: exitedOwner),
            try Self.socketDirectory(in: parent, owner: reused),
            try Self.socketDirectory(in: parent, owner: earlierBoot),
        ]
        let unownedOld = try Self.socketDirectory(in: parent, owner: nil)
        var old = [timeval(tv_sec: time(nil) - 7200, tv_usec: 0), timeval(tv_sec: time(nil) - 7200, tv_usec: 0)]
        #expect(utimes(unownedOld, &old) == 0)
        let kept = [
            try Self.socketDirectory(in: parent, owner: me),
            try Self.socketDirectory(in: parent, owner: runningOwner),
            try Self.socketDirectory(in: parent, owner: elsewhere),
            try Self.socketDirectory(in: parent, owner: nil),  // unowned but recent: perhaps mid-launch
        ]
        // Not directories of socket launches: a symlink by the name (and what it points to), another name.
        let target = parent.appendingPathComponent("target").path
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
        let link = parent.appendingPathComponent("\(LocalEnclaveLauncher.socketDirectoryPrefix)link").path
        #expect(symlink(target, link) == 0)
        let other = parent.appendingPathComponent("cleanroom-other").path
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: false)

        let removed = LocalEnclaveLauncher.removeAbandonedSocketDirectories(under: parent.path)
        #expect(Set(removed) == Set(gone + [unownedOld]), "\(removed)")
        for path in gone + [unownedOld] { #expect(!Self.exists(path), "\(path) stays") }
        for path in kept + [link, target, other] { #expect(Self.exists(path), "\(path) was removed") }
    }

    /// A launch writes this server's owner line into its directory: the child reads it there and
    /// sends it back over the socket. The directory is gone once the child has connected.
    @Test func aLaunchNamesThisServerInItsDirectory() throws {
        let parent = try TestEnvironment.temporaryDirectory("sockparent-owner")
        defer { try? FileManager.default.removeItem(at: parent) }
        let script = """
            import os, socket, sys, time
            path = sys.argv[sys.argv.index('--connect') + 1][len('unix:'):]
            owner = open(os.path.join(os.path.dirname(path), 'owner'), 'rb').read().strip()
            s = socket.socket(socket.AF_UNIX); s.connect(path)
            payload = b'\\x00\\x00\\x00\\x05' + b'owner' + len(owner).to_bytes(4, 'big') + owner
            s.sendall(bytes([0xC7, 1, 0x7F, 0]) + len(payload).to_bytes(4, 'big') + payload)
            time.sleep(60)
            """
        var configuration = LocalEnclaveLauncher.Configuration(executablePath: try TestEnvironment.python())
        configuration.leadingArguments = ["-c", script]
        configuration.socketParent = parent.path
        configuration.terminateGrace = .milliseconds(200)
        let enclave = try LocalEnclaveLauncher(configuration: configuration).launch(jobID: "j")
        defer { enclave.terminate() }
        let me = try #require(SocketDirectoryOwner.current)
        let line = "\(me.pid) \(me.startTime) \(me.bootID) \(me.pidNamespace)"
        #expect(try enclave.connection.receive(timeout: .seconds(10)) == .error(ChannelFailure(code: "owner", message: line)))
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty)
    }

    /// At start (`JobManager.Services.make`, which `cleanroomd serve` calls before it listens), the
    /// directories of a server that is gone are removed and logged; those of running servers stay.
    @Test func serverStartRemovesTheDirectoriesOfServersThatAreGone() throws {
        let dir = try TestEnvironment.temporaryDirectory("serve-sockets")
        defer { try? FileManager.default.removeItem(at: dir) }
        let parent = dir.appendingPathComponent("sockets")
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: false)
        let (exited, exitedOwner) = try Self.process()
        Self.end(exited)
        let gone = try Self.socketDirectory(in: parent, owner: exitedOwner)
        let me = try #require(SocketDirectoryOwner.current)
        let live = try Self.socketDirectory(in: parent, owner: me)

        let data = DataDirectory(path: dir.appendingPathComponent("data").path)
        let storage = try StorageServices.make(StorageConfiguration(), dataDirectory: data)
        var enclave = EnclaveConfiguration()
        enclave.binaryPath = try TestEnvironment.executable("cleanroom-enclave")
        enclave.standby = false
        enclave.socketParent = parent.path
        let log = CapturedLog()
        _ = try JobManager.Services.make(enclave, dataDirectory: data, storage: storage, logger: log.logger)
        #expect(!Self.exists(gone))
        #expect(Self.exists(live))
        #expect(log.entries.map(\.metadata["path"]) == [gone], "\(log.entries)")
    }
}
