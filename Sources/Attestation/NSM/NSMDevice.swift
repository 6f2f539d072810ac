#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// Moves one request's bytes to the NSM and returns the response bytes. ``NSMIoctlTransport``
/// is the real `/dev/nsm`; tests substitute recorded bytes, since no Nitro hardware is here.
public protocol NSMTransport: Sendable {
    func exchange(_ request: [UInt8]) throws(AttestationError) -> [UInt8]
}

/// The client of the Nitro Security Module inside an enclave: attestation documents, PCRs, entropy.
///
/// Every call encodes one ``NSMRequest``, sends it through the transport, and decodes the
/// ``NSMResponse``; an NSM `Error` answer or a response to a different request is an error.
public struct NSMDevice: Sendable {
    /// The driver's response buffer size (`NSM_RESPONSE_MAX_SIZE`).
    public static let responseCapacity = 0x3000

    public let transport: any NSMTransport

    public init(transport: any NSMTransport) {
        self.transport = transport
    }

    /// Opens `/dev/nsm` (fails with ``AttestationError/Code/nsmUnavailable`` outside a Nitro Enclave).
    public static func open(path: String = NSMIoctlTransport.defaultPath) throws(AttestationError) -> NSMDevice {
        NSMDevice(transport: try NSMIoctlTransport(path: path))
    }

    /// Sends a request and returns the matching response (never `.error`).
    public func send(_ request: NSMRequest) throws(AttestationError) -> NSMResponse {
        try request.validate()
        let response = try NSMResponse(decoding: try transport.exchange(request.encoded()))
        if case .error(let code) = response {
            throw AttestationError(.nsmError, "the NSM answered \(request.responseName) with error \(code)")
        }
        return response
    }

    /// A fresh attestation document (COSE_Sign1 bytes) binding the given values (each ≤ 1024 bytes).
    public func attestation(
        userData: [UInt8]?,
        nonce: [UInt8]?,
        publicKey: [UInt8]?
    ) throws(AttestationError) -> [UInt8] {
        let response = try send(.attestation(userData: userData, nonce: nonce, publicKey: publicKey))
        guard case .attestation(let document) = response else { throw mismatched(response, "Attestation") }
        return document
    }

    /// The value of PCR `index` and whether it is locked.
    public func describePCR(_ index: UInt16) throws(AttestationError) -> (lock: Bool, data: [UInt8]) {
        let response = try send(.describePCR(index: index))
        guard case .describePCR(let lock, let data) = response else { throw mismatched(response, "DescribePCR") }
        return (lock, data)
    }

    /// Entropy from the NSM (the amount is the NSM's choice).
    public func random() throws(AttestationError) -> [UInt8] {
        let response = try send(.getRandom)
        guard case .getRandom(let random) = response else { throw mismatched(response, "GetRandom") }
        return random
    }

    /// The module's version, id, PCR count and digest.
    public func describe() throws(AttestationError) -> NSMDescription {
        let response = try send(.describeNSM)
        guard case .describeNSM(let description) = response else { throw mismatched(response, "DescribeNSM") }
        return description
    }

    private func mismatched(_ response: NSMResponse, _ expected: String) -> AttestationError {
        AttestationError(.nsmMalformedResponse, "expected a \(expected) response, the NSM sent another variant")
    }
}

/// The real transport: `ioctl(fd, 0xC0200A00, &nsm_message)` on `/dev/nsm`, where
/// `struct nsm_message { struct iovec request; struct iovec response; }` and
/// 0xC0200A00 = `_IOWR(0x0A, 0, sizeof(struct nsm_message) = 32)`. The driver writes the response
/// into the response iovec and shortens its length to what it wrote.
public final class NSMIoctlTransport: NSMTransport, @unchecked Sendable {
    public static let defaultPath = "/dev/nsm"
    /// `_IOWR(NSM_IOCTL_MAGIC = 0x0A, 0, 32)`.
    public static let ioctlRequest: UInt = 0xC020_0A00

    private let fd: CInt
    /// The device takes one request at a time.
    private let lock = Mutex(())

    public init(path: String = NSMIoctlTransport.defaultPath) throws(AttestationError) {
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            let error = errno
            throw AttestationError(.nsmUnavailable, "cannot open \(path): \(String(cString: strerror(error)))")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    public func exchange(_ request: [UInt8]) throws(AttestationError) -> [UInt8] {
        var response = [UInt8](repeating: 0, count: NSMDevice.responseCapacity)
        var request = request
        let result: (status: CInt, errno: CInt, length: Int) = lock.withLock { _ in
            request.withUnsafeMutableBytes { requestBuffer in
                response.withUnsafeMutableBytes { responseBuffer in
                    var message = (
                        iovec(iov_base: requestBuffer.baseAddress, iov_len: requestBuffer.count),
                        iovec(iov_base: responseBuffer.baseAddress, iov_len: responseBuffer.count)
                    )
                    let status = withUnsafeMutablePointer(to: &message) {
                        ioctl(fd, Self.ioctlRequest, UnsafeMutableRawPointer($0))
                    }
                    return (status, errno, message.1.iov_len)
                }
            }
        }
        guard result.status == 0 else {
            let reason = result.errno == EMSGSIZE ? "the request is too large" : String(cString: strerror(result.errno))
            throw AttestationError(.nsmUnavailable, "NSM ioctl failed: \(reason)")
        }
        guard result.length <= response.count else {
            throw AttestationError(.nsmMalformedResponse, "the NSM reported \(result.length) response bytes")
        }
        return Array(response.prefix(result.length))
    }
}
