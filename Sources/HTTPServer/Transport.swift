import COpenSSL
import Glibc

/// The byte stream under a connection: the socket itself, or TLS over it.
protocol Transport: AnyObject {
    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult
    func write(_ buffer: UnsafeRawBufferPointer) -> IOResult
    /// The last operation could not progress until the socket is writable (TLS handshake).
    var needsWritable: Bool { get }
    /// Decrypted bytes are waiting inside the transport (epoll will not report them).
    var hasBufferedInput: Bool { get }
    var isTLS: Bool { get }
    /// The subject of a verified client certificate (mutual TLS).
    var clientCertificateSubject: String? { get }
    /// Sends what a clean close needs (TLS close_notify), best effort.
    func shutdown()
}

final class PlainTransport: Transport {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult { Socket.read(fd, into: buffer) }
    func write(_ buffer: UnsafeRawBufferPointer) -> IOResult { Socket.write(fd, buffer) }
    var needsWritable: Bool { false }
    var hasBufferedInput: Bool { false }
    var isTLS: Bool { false }
    var clientCertificateSubject: String? { nil }
    func shutdown() {}
}

/// A TLS server context: certificate chain and key from PEM files, TLS 1.2 minimum, optional
/// client-certificate verification against a CA file.
final class TLSContext: @unchecked Sendable {  // immutable after init; OpenSSL's SSL_CTX is thread-safe for SSL_new
    let ctx: OpaquePointer

    init(_ configuration: TLSConfiguration) throws {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSError("SSL_CTX_new") }
        self.ctx = ctx
        SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(TLS1_2_VERSION), nil)
        SSL_CTX_ctrl(
            ctx, SSL_CTRL_MODE,
            Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS), nil)
        // SSL_OP_NO_COMPRESSION (bit 17) | SSL_OP_NO_RENEGOTIATION (bit 30): function-like macros in ssl.h.
        SSL_CTX_set_options(ctx, (1 << 17) | (1 << 30))
        guard SSL_CTX_use_certificate_chain_file(ctx, configuration.certificateChainPath) == 1 else {
            throw TLSError("cannot load the certificate chain from \(configuration.certificateChainPath)")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, configuration.privateKeyPath, SSL_FILETYPE_PEM) == 1 else {
            throw TLSError("cannot load the private key from \(configuration.privateKeyPath)")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            throw TLSError("the private key does not match the certificate")
        }
        if let ca = configuration.clientCAPath {
            guard SSL_CTX_load_verify_locations(ctx, ca, nil) == 1, let names = SSL_load_client_CA_file(ca) else {
                throw TLSError("cannot load client CA certificates from \(ca)")
            }
            SSL_CTX_set_client_CA_list(ctx, names)
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        }
        ERR_clear_error()
    }

    deinit { SSL_CTX_free(ctx) }
}

/// A TLS configuration problem (file missing, key mismatch); never contains key material.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ message: String) {
        var detail = ""
        let code = ERR_get_error()
        if code != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            detail = " (\(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)))"
        }
        ERR_clear_error()
        description = message + detail
    }
}

/// TLS over a non-blocking socket, driven by the event loop (SSL_read/SSL_write report
/// WANT_READ / WANT_WRITE, which become `.wouldBlock`).
final class TLSTransport: Transport {
    private let ssl: OpaquePointer
    private(set) var needsWritable = false
    private var failed = false

    init?(context: TLSContext, fd: Int32) {
        guard let ssl = SSL_new(context.ctx) else { return nil }
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        SSL_set_accept_state(ssl)
    }

    deinit { SSL_free(ssl) }

    var isTLS: Bool { true }
    var hasBufferedInput: Bool { SSL_pending(ssl) > 0 }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        if failed { return .failed(EIO) }
        ERR_clear_error()
        var n = 0
        if SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &n) == 1 {
            needsWritable = false
            return .bytes(n)
        }
        return translate(SSL_get_error(ssl, 0))
    }

    func write(_ buffer: UnsafeRawBufferPointer) -> IOResult {
        if failed { return .failed(EIO) }
        ERR_clear_error()
        var n = 0
        if SSL_write_ex(ssl, buffer.baseAddress, buffer.count, &n) == 1 {
            needsWritable = false
            return .bytes(n)
        }
        return translate(SSL_get_error(ssl, 0))
    }

    private func translate(_ error: Int32) -> IOResult {
        switch error {
        case SSL_ERROR_WANT_READ:
            needsWritable = false
            return .wouldBlock
        case SSL_ERROR_WANT_WRITE:
            needsWritable = true
            return .wouldBlock
        case SSL_ERROR_ZERO_RETURN:
            return .eof
        default:
            failed = true
            ERR_clear_error()
            return .failed(EIO)
        }
    }

    var clientCertificateSubject: String? {
        guard let cert = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(cert) }
        guard SSL_get_verify_result(ssl) == X509_V_OK, let name = X509_get_subject_name(cert),
            let line = X509_NAME_oneline(name, nil, 0)
        else { return nil }
        defer { CRYPTO_free(line, #fileID, #line) }
        return String(cString: line)
    }

    func shutdown() {
        if !failed {
            ERR_clear_error()
            SSL_shutdown(ssl)
            ERR_clear_error()
        }
    }
}
