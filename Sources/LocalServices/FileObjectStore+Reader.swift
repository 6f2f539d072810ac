import AWS
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension FileObjectStore {
    /// Opens one version (nil: the latest) for reading on the caller's own thread, straight into
    /// the caller's buffer: for a blocking consumer (the job runner streaming a dataset to the
    /// enclave) this avoids a task hop and an array per chunk. The version stays readable while
    /// open, even if it is deleted meanwhile.
    public func openReader(key: String, versionId: String? = nil) throws -> FileObjectReader {
        let (version, meta) = try resolve(key: key, versionId: versionId)
        let path = objectDir(key).appendingPathComponent("\(version).data").path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ObjectStoreError(.notFound, "no object \(key)") }
        return FileObjectReader(file: FileBox(fd: fd), key: key, size: meta.size)
    }
}

/// A stored object version being read sequentially (see `FileObjectStore.openReader`). Not
/// thread-safe; closes its descriptor on `close()` or deinit.
public final class FileObjectReader {
    let file: FileBox
    public let key: String
    /// The object's size, as its metadata records it.
    public let size: Int64
    /// Bytes read so far.
    public private(set) var offset: Int64 = 0

    init(file: FileBox, key: String, size: Int64) {
        self.file = file
        self.key = key
        self.size = size
    }

    deinit { file.close() }

    /// Fills `buffer` with the next bytes; returns how many (fewer only at the end, 0 after it).
    /// An object whose file is shorter than its recorded size is an `io` error, never a short read.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let want = Int(min(Int64(buffer.count), size - offset))
        var got = 0
        while got < want {
            let n = pread(file.fd, buffer.baseAddress! + got, want - got, off_t(offset) + off_t(got))
            if n < 0 {
                if errno == EINTR { continue }
                throw FileObjectStore.posixError(errno, "read object data of \(key)")
            }
            if n == 0 { throw ObjectStoreError(.io, "object \(key) ended early") }
            got += n
        }
        offset += Int64(got)
        return got
    }

    public func close() { file.close() }
}
