import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A real full file system under a real `cleanroomd`: the server runs in a user and mount namespace
/// of its own (`unshare -Urm`, no privileges needed) with a 4 MiB tmpfs mounted as its object store,
/// which the test fills through `/proc/PID/root` (the server's view of the files). Needs unprivileged
/// user namespaces; the same paths are tested everywhere by writing to `/dev/full`
/// (`FileObjectStoreFullDiskTests`, `UploadTests`).
@Suite(.serialized, .enabled(if: UserNamespaces.available, "needs unprivileged user namespaces (unshare -Urm)"))
struct FullDiskEndToEndTests {
    static let unshare = UserNamespaces.unshare

    @Test func anUploadToAFullDiskAnswers507AndSucceedsOnceSpaceIsFreed() throws {
        let root = try TestEnvironment.temporaryDirectory("e2e-full-disk")
        let objects = root.appendingPathComponent("objects")
        try FileManager.default.createDirectory(at: objects, withIntermediateDirectories: false)
        let server = try CleanroomdProcess(dataDirectory: root.appendingPathComponent("data"), keepsPort: true)
        defer {
            server.stop()
            try? FileManager.default.removeItem(at: root)
        }
        try server.start(
            arguments: ["--object-store", "file:\(objects.path)"],
            wrapper: [
                Self.unshare, "-Urm", "/bin/sh", "-c", #"mount -t tmpfs -o size=4m,mode=0700 tmpfs "$0" && exec "$@""#,
                objects.path,
            ])
        let pid = try #require(server.pid)
        // The object store as the server sees it: the tmpfs, not the empty folder outside its namespace.
        let mounted = URL(fileURLWithPath: "/proc/\(pid)/root\(objects.path)")
        var fs = statvfs()
        #expect(statvfs(mounted.path, &fs) == 0 && UInt64(fs.f_blocks) * UInt64(fs.f_frsize) == 4 << 20)

        let machine = try GovernanceEndToEndTests.onboard("Alpha", server: server, root: root)
        let (datasetId, sealed) = try GovernanceEndToEndTests.sealedDataset(
            machine, csv: GovernanceEndToEndTests.csv(rows: 60_000, seed: 5), name: "big", root: root)
        let size = try Data(contentsOf: sealed).count
        #expect(size > 1 << 20 && size < 3 << 20, "\(size)")

        // The disk fills up: what is free is less than the upload.
        #expect(statvfs(mounted.path, &fs) == 0)
        let ballast = mounted.appendingPathComponent("ballast")
        try Data(count: Int(UInt64(fs.f_bavail) * UInt64(fs.f_frsize)) - size / 2).write(to: ballast)

        let full = try machine.cli(["dataset", "upload", datasetId, sealed.path, "--ciphertext"], expectStatus: nil)
        #expect(full.status != 0)
        #expect(full.stderrText.contains("the server's storage is full"), "\(full.stderrText)")
        #expect(full.stderrText.contains("once the server's operator has freed space"), "\(full.stderrText)")
        let log = server.stderr
        let line = log.split(separator: "\n").first { $0.contains("object store is full") }
        #expect(line?.contains("errno=\(ENOSPC)") == true, "\(log)")
        #expect(line?.contains(objects.path + "/tmp/") == true, "the line names the file: \(String(describing: line))")
        let shown = try machine.json(["dataset", "show", datasetId])
        #expect(shown["status"] as? String == "created")
        #expect(try FileManager.default.contentsOfDirectory(atPath: mounted.appendingPathComponent("tmp").path).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: mounted.appendingPathComponent("objects").path).isEmpty)

        // The operator frees space; the same upload succeeds.
        try FileManager.default.removeItem(at: ballast)
        let uploaded = try machine.json(["dataset", "upload", datasetId, sealed.path, "--ciphertext"])
        #expect(uploaded["status"] as? String == "available")
        #expect(uploaded["size"] as? Int == size)
    }
}

/// Whether this machine lets an unprivileged process make a user and mount namespace.
enum UserNamespaces {
    static let unshare = "/usr/bin/unshare"
    static let available: Bool =
        FileManager.default.isExecutableFile(atPath: unshare)
        && (try? ProcessRunner.run(unshare, ["-Urm", "/bin/true"]).status) == 0
}
