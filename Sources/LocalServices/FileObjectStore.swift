import AWS
import Crypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The embedded object store: one directory on local disk.
///
/// Layout: `objects/<sha256(key)>/key` holds the key, and each version is `<versionId>.meta`
/// (JSON metadata) plus `<versionId>.data`. A put writes the data to `tmp/`, fsyncs it, renames
/// the metadata into place and fsyncs the directory, then renames the data and fsyncs again: the
/// rename of the data file is the commit point, so a crash leaves either no new version (perhaps
/// a `.meta` without its data, which the next open removes) or a complete one, never data without
/// its metadata. Version ids sort by creation time, so the latest version is the greatest id whose
/// data file exists. Blocking file I/O runs on a dedicated queue, never on the caller's thread; a
/// put writes one block while it hashes the next and starts writeback early (`WriteConfiguration`).
///
/// Each open store holds a lock on `lock` in its root (`flock`, shared); opening sweeps what
/// interrupted puts and deletes left (`OpenSweep`) only when no other store, in this process or
/// another, has the root open, so a sweep never touches the files of a put in flight.
public final class FileObjectStore: ObjectStore {
    public let root: URL
    private let objectsDir: URL
    private let tmpDir: URL
    private let chunkSize = 1 << 18  // per read of a get
    private let io = DispatchQueue(label: "FileObjectStore.io", attributes: .concurrent)
    public let writes: WriteConfiguration
    /// What opening found and removed.
    public let openSweep: OpenSweep
    /// Held (shared) while the store is open.
    private let lock: FileBox

    /// Opens (creating if needed) a store at `root`, and removes leftovers of interrupted puts.
    public convenience init(root: URL) throws {
        try self.init(root: root, writes: WriteConfiguration())
    }

    /// Opens a store at `root` that writes as `writes` says.
    public init(root: URL, writes: WriteConfiguration) throws {
        self.root = root
        self.writes = writes
        objectsDir = root.appendingPathComponent("objects")
        tmpDir = root.appendingPathComponent("tmp")
        for dir in [root, objectsDir, tmpDir] {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let lockPath = root.appendingPathComponent("lock").path
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Self.posixError(errno, "open \(lockPath)") }
        lock = FileBox(fd: fd, path: lockPath)
        // Alone (an exclusive lock granted at once): no put can be in flight, so sweep. Otherwise
        // another open store may be mid-put: leave everything. Then hold the lock shared, which
        // waits for another store's sweep to end.
        if flock(fd, LOCK_EX | LOCK_NB) == 0 {
            openSweep = Self.sweep(objects: objectsDir, tmp: tmpDir)
        } else {
            openSweep = OpenSweep(skipped: true)
        }
        while flock(fd, LOCK_SH) != 0 {
            guard errno == EINTR else { throw Self.posixError(errno, "lock \(lockPath)") }
        }
    }

    deinit { lock.close() }  // releases the lock

    private func onIO<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { c in io.async { c.resume(with: Result { try body() }) } }
    }

    func objectDir(_ key: String) -> URL {
        objectsDir.appendingPathComponent(PayloadHasher.hexDigest(Array(key.utf8)))
    }

    static func newVersionId() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let nanos = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        let hexNanos = String(nanos, radix: 16)
        let padded = String(repeating: "0", count: max(0, 16 - hexNanos.count)) + hexNanos
        return padded + String(format: "%08x", UInt32.random(in: 0...UInt32.max))
    }

    static func validVersionId(_ v: String) -> Bool {
        v.utf8.count == 24 && v.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    struct Meta: Codable {
        var size: Int64
        var sha256: String
        var contentType: String?
        /// Milliseconds since 1970 (an integer, so a round trip through JSON is exact).
        var created: Int64
        var serverSideEncryption: String?
        var kmsKeyId: String?
    }

    // MARK: Put

    public func put(key: String, body: ByteStream, options: ObjectPutOptions) async throws -> ObjectInfo {
        try ObjectStoreError.validate(key: key)
        let version = Self.newVersionId()
        let tmpData = tmpDir.appendingPathComponent("\(version).data")
        let fd = open(tmpData.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Self.posixError(errno, "create \(tmpData.path)") }
        let file = FileBox(fd: fd, path: tmpData.path)
        writes.dataFileCreated?(fd)
        var committed = false
        defer {
            file.close()
            if !committed { unlink(tmpData.path) }
        }
        let hasher = PayloadHasher()
        var size: Int64 = 0
        let writer = PipelinedFileWriter(file: file, io: io, configuration: writes)
        do {
            // Hashing this chunk overlaps with the write of the previous block.
            for try await chunk in body {
                hasher.update(chunk)
                size += Int64(chunk.count)
                try await writer.append(chunk)
            }
            try await writer.finish()
        } catch {
            await writer.drain()  // no write may still use the descriptor when it is closed
            throw error
        }
        let sha256 = hasher.finalize()
        try options.verifyContent?(sha256)
        let digest = Hex.encode(sha256)
        var sse: String?
        var kmsKey: String?
        if case .kms(let keyId, _) = options.serverSideEncryption {
            sse = "aws:kms"
            kmsKey = keyId
        }
        let meta = Meta(
            size: size, sha256: digest, contentType: options.contentType,
            created: Int64(Date().timeIntervalSince1970 * 1000), serverSideEncryption: sse,
            kmsKeyId: kmsKey)
        let dir = objectDir(key)
        let tmp = tmpDir, objects = objectsDir
        try await onIO {
            guard fsync(file.fd) == 0 else { throw Self.posixError(errno, "fsync \(tmpData.path)") }
            if mkdir(dir.path, 0o700) == 0 {
                try Self.fsyncDirectory(objects)
            } else if errno != EEXIST {
                throw Self.posixError(errno, "create \(dir.path)")
            }
            let keyFile = dir.appendingPathComponent("key")
            if !FileManager.default.fileExists(atPath: keyFile.path) {
                try Self.writeDurably(Array(key.utf8), to: keyFile, tmpDir: tmp)
            }
            let metaFile = dir.appendingPathComponent("\(version).meta")
            let dataFile = dir.appendingPathComponent("\(version).data")
            try Self.writeDurably(Array(try JSONEncoder().encode(meta)), to: metaFile, tmpDir: tmp)
            do {
                // The metadata (and key) are durable before the data can be: whatever a crash
                // keeps of the two renames, it is never data without metadata.
                try Self.fsyncDirectory(dir)
                guard rename(tmpData.path, dataFile.path) == 0 else {
                    throw Self.posixError(errno, "commit \(dataFile.path)")
                }
            } catch {
                unlink(metaFile.path)  // no metadata stays without its data
                throw error
            }
            try Self.fsyncDirectory(dir)
        }
        committed = true
        return info(key: key, version: version, meta: meta)
    }

    private func info(key: String, version: String, meta: Meta) -> ObjectInfo {
        ObjectInfo(
            key: key, size: meta.size, etag: meta.sha256, sha256: meta.sha256, versionId: version,
            lastModified: Date(timeIntervalSince1970: Double(meta.created) / 1000),
            contentType: meta.contentType, serverSideEncryption: meta.serverSideEncryption, kmsKeyId: meta.kmsKeyId)
    }

    // MARK: Read

    private func latestVersion(in dir: URL) -> String? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".data") }.map { String($0.dropLast(5)) }.filter(Self.validVersionId).max()
    }

    func resolve(key: String, versionId: String?) throws -> (version: String, meta: Meta) {
        try ObjectStoreError.validate(key: key)
        let dir = objectDir(key)
        let version: String
        if let versionId {
            guard Self.validVersionId(versionId),
                FileManager.default.fileExists(atPath: dir.appendingPathComponent("\(versionId).data").path)
            else { throw ObjectStoreError(.notFound, "no version \(versionId) of object \(key)") }
            version = versionId
        } else {
            guard let v = latestVersion(in: dir) else { throw ObjectStoreError(.notFound, "no object \(key)") }
            version = v
        }
        guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent("\(version).meta").path) else {
            throw ObjectStoreError(.io, "metadata of \(key) version \(version) is missing")
        }
        return (version, try JSONDecoder().decode(Meta.self, from: data))
    }

    public func head(key: String, versionId: String?) async throws -> ObjectInfo {
        let (v, meta) = try await onIO { try self.resolve(key: key, versionId: versionId) }
        return info(key: key, version: v, meta: meta)
    }

    public func get(key: String, versionId: String?, range: ByteRange?) async throws -> ObjectDownload {
        let (v, meta) = try await onIO { try self.resolve(key: key, versionId: versionId) }
        var offset: Int64 = 0
        var length = meta.size
        if let range {
            guard range.offset >= 0, range.offset < meta.size || (meta.size == 0 && range.offset == 0),
                (range.length ?? 1) > 0
            else {
                throw ObjectStoreError(.invalidRange, "range \(range.httpValue) is outside object \(key) of \(meta.size) bytes")
            }
            offset = range.offset
            length = min(range.length ?? (meta.size - offset), meta.size - offset)
        }
        let path = objectDir(key).appendingPathComponent("\(v).data").path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        // A concurrent delete may have removed the version between resolve and open.
        guard fd >= 0 else { throw ObjectStoreError(.notFound, "no object \(key)") }
        let file = FileBox(fd: fd)
        let position = LockedBox((offset, offset + length))
        let chunk = chunkSize
        let io = self.io
        let body = ByteStream(
            next: {
                let (pos, end) = position.withLock { $0 }
                guard pos < end else {
                    file.close()
                    return nil
                }
                let n = Int(min(Int64(chunk), end - pos))
                let bytes: [UInt8] = try await withCheckedThrowingContinuation { c in
                    io.async { c.resume(with: Result { try file.read(count: n, at: pos) }) }
                }
                guard !bytes.isEmpty else {
                    file.close()
                    throw ObjectStoreError(.io, "object \(key) ended early")
                }
                position.withLock { $0.0 += Int64(bytes.count) }
                return bytes
            }, onCancel: { file.close() })
        return ObjectDownload(info: info(key: key, version: v, meta: meta), range: ByteRange(offset: offset, length: length), body: body)
    }

    // MARK: Delete and list

    public func delete(key: String, versionId: String?) async throws {
        try ObjectStoreError.validate(key: key)
        let dir = objectDir(key)
        let tmp = tmpDir
        try await onIO {
            if let versionId {
                guard Self.validVersionId(versionId) else { throw ObjectStoreError(.notFound, "no version \(versionId) of object \(key)") }
                let data = dir.appendingPathComponent("\(versionId).data")
                guard unlink(data.path) == 0 else {
                    if errno == ENOENT { throw ObjectStoreError(.notFound, "no version \(versionId) of object \(key)") }
                    throw Self.posixError(errno, "delete \(data.path)")
                }
                unlink(dir.appendingPathComponent("\(versionId).meta").path)
                try Self.fsyncDirectory(dir)
            } else {
                // Move the whole object out of sight in one rename, then remove it.
                let graveyard = tmp.appendingPathComponent("deleted-\(UUID().uuidString)")
                guard rename(dir.path, graveyard.path) == 0 else {
                    if errno == ENOENT { throw ObjectStoreError(.notFound, "no object \(key)") }
                    throw Self.posixError(errno, "delete \(dir.path)")
                }
                try Self.fsyncDirectory(dir.deletingLastPathComponent())
                try? FileManager.default.removeItem(at: graveyard)
            }
        }
    }

    public func list(prefix: String) async throws -> [ObjectInfo] {
        try await onIO {
            var out: [ObjectInfo] = []
            for name in (try? FileManager.default.contentsOfDirectory(atPath: self.objectsDir.path)) ?? [] {
                let dir = self.objectsDir.appendingPathComponent(name)
                guard let keyData = FileManager.default.contents(atPath: dir.appendingPathComponent("key").path) else { continue }
                let key = String(decoding: keyData, as: UTF8.self)
                guard key.hasPrefix(prefix), let (v, meta) = try? self.resolve(key: key, versionId: nil) else { continue }
                out.append(self.info(key: key, version: v, meta: meta))
            }
            return out.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
        }
    }

    /// Every version of an object, oldest first.
    public func versions(key: String) async throws -> [ObjectInfo] {
        try ObjectStoreError.validate(key: key)
        let dir = objectDir(key)
        return try await onIO {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            return try names.filter { $0.hasSuffix(".data") }.map { String($0.dropLast(5)) }.filter(Self.validVersionId)
                .sorted().map { v in
                    let (_, meta) = try self.resolve(key: key, versionId: v)
                    return self.info(key: key, version: v, meta: meta)
                }
        }
    }

    // MARK: POSIX helpers

    /// The error of a failed system call: `number` is its `errno` (pass `errno` first, before
    /// anything else can change it); `what` says what failed and on which file. A full file system
    /// (`ENOSPC`, or `EDQUOT` for a full quota) is `insufficientStorage`, anything else `io`.
    static func posixError(_ number: Int32, _ what: String) -> ObjectStoreError {
        let code: ObjectStoreError.Code = number == ENOSPC || number == EDQUOT ? .insufficientStorage : .io
        return ObjectStoreError(code, "\(what): \(String(cString: strerror(number)))", errno: number)
    }

    static func fsyncDirectory(_ url: URL) throws {
        let fd = open(url.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw posixError(errno, "open directory \(url.path)") }
        defer { Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw posixError(errno, "fsync directory \(url.path)") }
    }

    /// Writes a small file atomically and durably: temp file, fsync, rename.
    static func writeDurably(_ bytes: [UInt8], to url: URL, tmpDir: URL) throws {
        let tmp = tmpDir.appendingPathComponent(UUID().uuidString)
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw posixError(errno, "create \(tmp.path)") }
        let file = FileBox(fd: fd, path: tmp.path)
        defer { file.close() }
        do {
            try file.writeAll(bytes)
            guard fsync(fd) == 0 else { throw posixError(errno, "fsync \(tmp.path)") }
            guard rename(tmp.path, url.path) == 0 else { throw posixError(errno, "rename \(tmp.path) to \(url.path)") }
        } catch {
            unlink(tmp.path)
            throw error
        }
    }
}
