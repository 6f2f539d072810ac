import CCurl
import Foundation

/// The state of one libcurl transfer, shared with curl's C callbacks through `userdata`.
/// Runs entirely on one curl worker thread, except `cancel()` and the consumer side of the
/// channels.
final class CurlTransfer: @unchecked Sendable {
    let request: HTTPClientRequest
    let configuration: HTTPClient.Configuration
    let uploadChannel: ByteChannel?
    let downloadChannel: ByteChannel
    private var uploadBytes: [UInt8] = []
    private var uploadBuffer: UploadBuffer?
    private var uploadOffset = 0
    private var pendingUpload: [UInt8] = []
    private var pendingOffset = 0
    private var uploadFailure: (any Error)?
    private var status = 0
    private var headers: [(name: String, value: String)] = []
    private let state = LockedBox(State())

    struct State {
        var continuation: CheckedContinuation<HTTPClientResponse, any Error>?
        var headDelivered = false
        var cancelled = false
    }

    init(request: HTTPClientRequest, configuration: HTTPClient.Configuration) {
        self.request = request
        self.configuration = configuration
        self.downloadChannel = ByteChannel(limit: configuration.streamBufferBytes)
        switch request.body {
        case .stream: uploadChannel = ByteChannel(limit: configuration.streamBufferBytes)
        case .bytes(let b):
            uploadChannel = nil
            uploadBytes = b
        case .buffer(let b):
            uploadChannel = nil
            uploadBuffer = b
        case .empty: uploadChannel = nil
        }
    }

    func setHeadContinuation(_ c: CheckedContinuation<HTTPClientResponse, any Error>) {
        let cancelledAlready = state.withLock { s -> Bool in
            s.continuation = c
            return s.cancelled
        }
        if cancelledAlready { failHead(HTTPClientError(.cancelled, "request cancelled")) }
    }

    var isCancelled: Bool { state.withLock { $0.cancelled } || downloadChannel.isCancelled }

    func cancel() {
        state.withLock { $0.cancelled = true }
        uploadChannel?.cancel()
        failHead(HTTPClientError(.cancelled, "request cancelled"))
    }

    private func deliverHead() {
        let c: CheckedContinuation<HTTPClientResponse, any Error>? = state.withLock { s in
            guard !s.headDelivered else { return nil }
            s.headDelivered = true
            defer { s.continuation = nil }
            return s.continuation
        }
        let channel = downloadChannel
        c?.resume(
            returning: HTTPClientResponse(
                status: status, headers: headers,
                body: ByteStream(next: { try await channel.next() }, onCancel: { channel.cancel() })))
    }

    private func failHead(_ error: any Error) {
        let c: CheckedContinuation<HTTPClientResponse, any Error>? = state.withLock { s in
            guard !s.headDelivered, let c = s.continuation else { return nil }
            s.headDelivered = true
            s.continuation = nil
            return c
        }
        c?.resume(throwing: error)
    }

    // MARK: Running on the worker thread

    func perform(_ h: UnsafeMutableRawPointer) {
        var headerList: UnsafeMutablePointer<curl_slist>?
        var resolveList: UnsafeMutablePointer<curl_slist>?
        defer {
            curl_slist_free_all(headerList)
            curl_slist_free_all(resolveList)
        }
        let me = Unmanaged.passRetained(self)
        defer { me.release() }
        let ud = UnsafeRawPointer(me.toOpaque())

        _ = ccurl_setopt_string(h, CURLOPT_URL, request.url)
        _ = ccurl_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        _ = ccurl_setopt_long(h, CURLOPT_SSL_VERIFYPEER, 1)
        _ = ccurl_setopt_long(h, CURLOPT_SSL_VERIFYHOST, 2)
        if let ca = configuration.caBundlePath { _ = ccurl_setopt_string(h, CURLOPT_CAINFO, ca) }
        _ = ccurl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, Int(configuration.connectTimeout * 1000))
        _ = ccurl_setopt_long(h, CURLOPT_LOW_SPEED_LIMIT, 1)
        _ = ccurl_setopt_long(h, CURLOPT_LOW_SPEED_TIME, max(1, Int(configuration.stallTimeout)))
        if let total = configuration.totalTimeout {
            _ = ccurl_setopt_long(h, CURLOPT_TIMEOUT_MS, max(1, Int(total * 1000)))
        }
        _ = ccurl_setopt_long(h, CURLOPT_TCP_NODELAY, 1)
        _ = ccurl_setopt_long(h, CURLOPT_FOLLOWLOCATION, 0)
        _ = ccurl_setopt_long(h, CURLOPT_PATH_AS_IS, 1)  // S3 keys may contain "..": send them as signed
        _ = ccurl_setopt_long(h, CURLOPT_PROTOCOLS, Int(CURLPROTO_HTTP | CURLPROTO_HTTPS))
        if request.bypassProxy { _ = ccurl_setopt_string(h, CURLOPT_NOPROXY, "*") }
        if !request.resolve.isEmpty {
            for entry in request.resolve { resolveList = curl_slist_append(resolveList, entry) }
            _ = ccurl_setopt_ptr(h, CURLOPT_RESOLVE, UnsafeRawPointer(resolveList))
            // Connections are matched by host name, not address: never reuse one made under another pin.
            _ = ccurl_setopt_long(h, CURLOPT_FRESH_CONNECT, 1)
            _ = ccurl_setopt_long(h, CURLOPT_FORBID_REUSE, 1)
        }

        _ = ccurl_setopt_header(h, curlHeaderCallback)
        _ = ccurl_setopt_ptr(h, CURLOPT_HEADERDATA, ud)
        _ = ccurl_setopt_write(h, curlWriteCallback)
        _ = ccurl_setopt_ptr(h, CURLOPT_WRITEDATA, ud)
        _ = ccurl_setopt_xferinfo(h, curlProgressCallback)
        _ = ccurl_setopt_ptr(h, CURLOPT_XFERINFODATA, ud)
        _ = ccurl_setopt_long(h, CURLOPT_NOPROGRESS, 0)

        let method = request.method.uppercased()
        switch request.body {
        case .empty:
            if method == "HEAD" {
                _ = ccurl_setopt_long(h, CURLOPT_NOBODY, 1)
            } else if method == "POST" || method == "PUT" {
                // An empty body, sent with Content-Length: 0.
                _ = ccurl_setopt_long(h, CURLOPT_UPLOAD, 1)
                _ = ccurl_setopt_off(h, CURLOPT_INFILESIZE_LARGE, 0)
                _ = ccurl_setopt_read(h, curlReadCallback)
                _ = ccurl_setopt_ptr(h, CURLOPT_READDATA, ud)
            }
        case .bytes(let b):
            _ = ccurl_setopt_long(h, CURLOPT_UPLOAD, 1)
            _ = ccurl_setopt_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(b.count))
            _ = ccurl_setopt_read(h, curlReadCallback)
            _ = ccurl_setopt_ptr(h, CURLOPT_READDATA, ud)
        case .buffer(let b):
            _ = ccurl_setopt_long(h, CURLOPT_UPLOAD, 1)
            _ = ccurl_setopt_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(b.count))
            _ = ccurl_setopt_long(h, CURLOPT_UPLOAD_BUFFERSIZE, configuration.uploadBufferBytes)
            _ = ccurl_setopt_read(h, curlReadCallback)
            _ = ccurl_setopt_ptr(h, CURLOPT_READDATA, ud)
        case .stream(_, let length):
            _ = ccurl_setopt_long(h, CURLOPT_UPLOAD, 1)
            if let length { _ = ccurl_setopt_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(length)) }
            _ = ccurl_setopt_read(h, curlReadCallback)
            _ = ccurl_setopt_ptr(h, CURLOPT_READDATA, ud)
        }
        if method != "GET" && method != "HEAD" { _ = ccurl_setopt_string(h, CURLOPT_CUSTOMREQUEST, method) }

        for (name, value) in request.headers {
            let line = value.isEmpty ? "\(name);" : "\(name): \(value)"
            headerList = curl_slist_append(headerList, line)
        }
        headerList = curl_slist_append(headerList, "Expect:")  // no 100-continue round trip
        _ = ccurl_setopt_ptr(h, CURLOPT_HTTPHEADER, UnsafeRawPointer(headerList))

        let rc = curl_easy_perform(h)
        // The handle is reused; make sure no callback can reach this transfer again.
        _ = ccurl_setopt_ptr(h, CURLOPT_HTTPHEADER, nil)
        _ = ccurl_setopt_ptr(h, CURLOPT_RESOLVE, nil)

        if rc == CURLE_OK {
            deliverHead()
            downloadChannel.finish()
            return
        }
        let error: any Error
        if isCancelled {
            error = HTTPClientError(.cancelled, "request cancelled", curlCode: Int(rc.rawValue))
        } else if let uploadFailure, rc == CURLE_ABORTED_BY_CALLBACK || rc == CURLE_READ_ERROR {
            error = uploadFailure
        } else {
            error = Self.mapError(rc, url: request.url)
        }
        failHead(error)
        downloadChannel.finish(error)
    }

    static func mapError(_ rc: CURLcode, url: String) -> HTTPClientError {
        let text = String(cString: curl_easy_strerror(rc))
        let code: HTTPClientError.Code
        switch rc {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_SEND_ERROR,
            CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE:
            code = .connectionFailed
        case CURLE_OPERATION_TIMEDOUT: code = .timedOut
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CACERT_BADFILE:
            code = .tls
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: code = .invalidRequest
        default: code = .transport
        }
        let host = URL(string: url)?.host ?? "?"
        return HTTPClientError(code, "\(text) (host \(host))", curlCode: Int(rc.rawValue))
    }

    // MARK: Callbacks

    fileprivate func onHeaderLine(_ line: String) {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("HTTP/") {
            let parts = trimmed.split(separator: " ", maxSplits: 2)
            status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
            headers = []
        } else if let colon = trimmed.firstIndex(of: ":") {
            headers.append(
                (String(trimmed[..<colon]), String(trimmed[trimmed.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
        } else if trimmed.isEmpty && status >= 200 && request.method.uppercased() == "HEAD" {
            deliverHead()
        }
    }

    fileprivate func onBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        deliverHead()
        return downloadChannel.sendBlocking(Array(bytes))
    }

    fileprivate func onRead(_ buffer: UnsafeMutableRawBufferPointer) -> Int? {
        if let channel = uploadChannel {
            while pendingOffset >= pendingUpload.count {
                do {
                    guard let next = try channel.receiveBlocking() else { return 0 }
                    pendingUpload = next
                    pendingOffset = 0
                } catch {
                    uploadFailure = error
                    return nil
                }
            }
            let n = min(buffer.count, pendingUpload.count - pendingOffset)
            pendingUpload.withUnsafeBytes { src in
                buffer.baseAddress!.copyMemory(from: src.baseAddress! + pendingOffset, byteCount: n)
            }
            pendingOffset += n
            return n
        }
        if let uploadBuffer {
            let n = uploadBuffer.read(at: uploadOffset, into: buffer)
            uploadOffset += n
            return n
        }
        let n = min(buffer.count, uploadBytes.count - uploadOffset)
        if n > 0 {
            uploadBytes.withUnsafeBytes { src in
                buffer.baseAddress!.copyMemory(from: src.baseAddress! + uploadOffset, byteCount: n)
            }
            uploadOffset += n
        }
        return n
    }
}

private func transfer(_ ud: UnsafeMutableRawPointer?) -> CurlTransfer {
    Unmanaged<CurlTransfer>.fromOpaque(ud!).takeUnretainedValue()
}

private let curlHeaderCallback: curl_write_callback = { ptr, size, nmemb, ud in
    let n = size * nmemb
    let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self)
    transfer(ud).onHeaderLine(line)
    return n
}

private let curlWriteCallback: curl_write_callback = { ptr, size, nmemb, ud in
    let n = size * nmemb
    return transfer(ud).onBody(UnsafeRawBufferPointer(start: ptr, count: n)) ? n : 0
}

private let curlReadCallback: curl_read_callback = { ptr, size, nmemb, ud in
    let t = transfer(ud)
    if t.isCancelled { return Int(CURL_READFUNC_ABORT) }
    guard let n = t.onRead(UnsafeMutableRawBufferPointer(start: ptr, count: size * nmemb)) else {
        return Int(CURL_READFUNC_ABORT)
    }
    return n
}

private let curlProgressCallback: curl_xferinfo_callback = { ud, _, _, _, _ in
    transfer(ud).isCancelled ? 1 : 0
}
