import Crypto

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The measurements a development document reports: PCR0 is SHA-384 of the enclave executable's
/// bytes (so a changed binary changes PCR0 and a policy pinned to the old one refuses it, as on
/// Nitro); PCR1 and PCR2 come from configuration (48 zero bytes by default). The document carries
/// PCR0–15 like a real one; PCR3–15 are zeros.
public struct DevelopmentMeasurements: Sendable, Hashable {
    public let pcr0: [UInt8]
    public let pcr1: [UInt8]
    public let pcr2: [UInt8]

    /// Zero bytes of PCR length.
    public static let zero = [UInt8](repeating: 0, count: 48)

    public init(pcr0: [UInt8], pcr1: [UInt8]? = nil, pcr2: [UInt8]? = nil) {
        self.pcr0 = pcr0
        self.pcr1 = pcr1 ?? Self.zero
        self.pcr2 = pcr2 ?? Self.zero
    }

    /// Measures the executable at `path` (streamed in 64 KiB reads; constant memory).
    public init(executableAt path: String, pcr1: [UInt8]? = nil, pcr2: [UInt8]? = nil) throws(AttestationError) {
        self.init(pcr0: try Self.sha384(ofFileAt: path), pcr1: pcr1, pcr2: pcr2)
    }

    /// All sixteen PCRs as the document carries them.
    public var pcrs: [Int: [UInt8]] {
        var all = Dictionary(uniqueKeysWithValues: (0..<16).map { ($0, Self.zero) })
        all[0] = pcr0
        all[1] = pcr1
        all[2] = pcr2
        return all
    }

    /// The set a policy would list to allow exactly this image.
    public var pcrSet: PCRSet { PCRSet([0: pcr0, 1: pcr1, 2: pcr2]) }

    static func sha384(ofFileAt path: String) throws(AttestationError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            throw AttestationError(.measurementFailed, "cannot open the enclave executable \(path): \(reason)")
        }
        defer { close(fd) }
        var hasher = IncrementalHash(.sha384)
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                throw AttestationError(.measurementFailed, "cannot read the enclave executable \(path): \(reason)")
            }
            if count == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
        }
        return hasher.finalize()
    }
}
