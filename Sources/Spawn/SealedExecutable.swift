import CSystemIO

#if canImport(Glibc)
import Glibc
#endif

/// An executable copied into a sealed, anonymous in-memory file (`memfd_create`), so that what
/// is measured and what is run are the same bytes.
///
/// A path can change between reading it and executing it, and a program at a path can run its own
/// code first and then execute another: hashing the path, or the child's `/proc/PID/exe` later,
/// measures what is there then, not what started. A copy sealed against writes, growth and
/// shrinking cannot change; `path` opens it in this process (for measuring), and
/// `ChildProcess.spawn(image:…)` runs it. The descriptor is close-on-exec, so no other child gets
/// it; it is closed when this object goes away.
public final class SealedExecutable: Sendable {
    public let fileDescriptor: Int32

    /// The path that opens the sealed copy in this process.
    public var path: String { "/proc/self/fd/\(fileDescriptor)" }

    /// Copies the file at `source` (following symbolic links) and seals the copy.
    public init(copying source: String) throws(ChildProcess.SpawnError) {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw Self.error("cannot open \(source)") }
        defer { close(input) }
        let name = source.split(separator: "/").last.map(String.init) ?? "executable"
        // MFD_EXEC (Linux 6.3+) asks for an executable memfd where vm.memfd_noexec would make
        // it non-executable by default; older kernels reject the flag, and make every memfd executable.
        var memory = csystemio_memfd_create(name, Self.closeOnExec | Self.allowSealing | Self.executableFlag)
        if memory < 0, errno == EINVAL { memory = csystemio_memfd_create(name, Self.closeOnExec | Self.allowSealing) }
        guard memory >= 0 else { throw Self.error("cannot create an in-memory copy of \(source)") }
        fileDescriptor = memory
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count >= 0 else { throw Self.error("cannot read \(source)") }
            if count == 0 { break }
            var written = 0
            while written < count {
                let result = buffer.withUnsafeBytes { write(memory, $0.baseAddress! + written, count - written) }
                if result < 0, errno == EINTR { continue }
                guard result > 0 else { throw Self.error("cannot copy \(source) into memory") }
                written += result
            }
        }
        guard fchmod(memory, 0o500) == 0,
            fcntl(memory, Self.addSeals, Self.sealWrite | Self.sealGrow | Self.sealShrink | Self.sealSeal) == 0
        else { throw Self.error("cannot seal the in-memory copy of \(source)") }
    }

    deinit { close(fileDescriptor) }

    private static func error(_ what: String) -> ChildProcess.SpawnError {
        ChildProcess.SpawnError(description: "\(what): \(String(cString: strerror(errno)))")
    }

    // From <linux/memfd.h> and <linux/fcntl.h>, which Glibc's module does not export.
    private static let closeOnExec: UInt32 = 0x0001
    private static let allowSealing: UInt32 = 0x0002
    private static let executableFlag: UInt32 = 0x0010
    private static let addSeals: Int32 = 1024 + 9
    private static let sealSeal: Int32 = 0x0001
    private static let sealShrink: Int32 = 0x0002
    private static let sealGrow: Int32 = 0x0004
    private static let sealWrite: Int32 = 0x0008
}
