import Foundation

/// `ObjectStore` over Amazon S3 (or any S3-compatible server), signed with SigV4.
///
/// Puts up to `partSize` bytes go in one `PutObject`; larger streams become a multipart upload,
/// aborted if anything fails, with at most `concurrentParts` part buffers alive (the part being
/// read counts as one), so a put holds at most `partSize × concurrentParts` bytes whatever the
/// object size (`uploadMemory` shows it). Parts are sent from their buffer without a copy.
/// Every request carries the SHA-256 of its payload. Gets stream with backpressure. S3's XML
/// errors become `ObjectStoreError`s that keep S3's code.
public final class S3ObjectStore: ObjectStore {
    public let bucket: String
    /// Key prefix inside the bucket (`datasets/` …), applied to every key; may be empty.
    public let prefix: String
    public let partSize: Int
    /// Part buffers alive at once per put, in flight or being filled.
    public let concurrentParts: Int
    /// Bytes of part buffers alive across this store's puts, and the peak.
    public let uploadMemory = UploadMemoryGauge()
    private let sender: AWSRequestSender
    private let pathStyle: Bool

    /// - Parameters:
    ///   - endpoint: S3 endpoint; nil uses `configuration` (overrides, else the regional AWS endpoint).
    ///   - pathStyle: `https://host/bucket/key` instead of `https://bucket.host/key`; default true
    ///     when the endpoint is overridden (S3-compatible servers) or the bucket name has dots.
    public init(
        bucket: String, prefix: String = "", configuration: AWSConfiguration, endpoint: String? = nil,
        pathStyle: Bool? = nil, partSize: Int = 8 << 20, concurrentParts: Int = 3, client: HTTPClient = .shared
    ) throws {
        guard Self.validBucketName(bucket) else { throw ObjectStoreError(.invalidKey, "invalid S3 bucket name \(bucket)") }
        guard partSize >= 5 << 20 else { throw ObjectStoreError(.invalidKey, "S3 parts must be at least 5 MiB") }
        self.bucket = bucket
        self.prefix = prefix
        self.partSize = partSize
        self.concurrentParts = max(1, concurrentParts)
        let overridden = endpoint != nil || configuration.hasEndpointOverride(for: "s3")
        let usePathStyle = pathStyle ?? (overridden || bucket.contains("."))
        self.pathStyle = usePathStyle
        let base = try AWSRequestSender(
            endpoint: endpoint ?? configuration.endpoint(for: "s3"), region: configuration.region, service: "s3",
            credentials: configuration.credentials, client: client)
        self.sender = usePathStyle ? base : base.withHost("\(bucket).\(base.host)")
    }

    static func validBucketName(_ b: String) -> Bool {
        (3...63).contains(b.count)
            && b.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" || $0 == "." }
    }

    private func path(_ key: String) -> String {
        pathStyle ? "/\(bucket)/\(prefix)\(key)" : "/\(prefix)\(key)"
    }

    private var bucketPath: String { pathStyle ? "/\(bucket)" : "/" }

    // MARK: Errors

    static func error(status: Int, body: [UInt8], key: String?) -> ObjectStoreError {
        let xml = S3XMLElement.parse(body)
        let code = xml?["Code"] ?? (status == 404 ? "NotFound" : "HTTP\(status)")
        let message = xml?["Message"] ?? "S3 answered HTTP \(status)"
        let what = key.map { "object \($0): " } ?? ""
        let mapped: ObjectStoreError.Code
        switch code {
        case "NoSuchKey", "NoSuchVersion", "NoSuchBucket", "NoSuchUpload", "NotFound": mapped = .notFound
        case "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken",
            "RequestTimeTooSkewed", "Forbidden":
            mapped = .accessDenied
        case "InvalidRange": mapped = .invalidRange
        case "PreconditionFailed": mapped = .preconditionFailed
        default: mapped = status == 403 ? .accessDenied : .service
        }
        return ObjectStoreError(mapped, what + message, serviceCode: code, status: status)
    }

    private static func isThrottle(_ status: Int, _ body: [UInt8]) -> Bool {
        guard let code = S3XMLElement.parse(body)?["Code"] else { return false }
        return ["SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError"].contains(code)
    }

    private func send(
        _ method: String, _ path: String, query: [SigV4Request.QueryItem] = [], headers: [SigV4Request.Header] = [],
        body: [UInt8]? = nil, key: String?, idempotent: Bool = true
    ) async throws -> HTTPClientResponse {
        let hash = body.map { PayloadHasher.hexDigest($0) } ?? SigV4.emptyPayloadHash
        return try await send(
            method, path, query: query, headers: headers, body: body.map { .bytes($0) } ?? .empty, payloadHash: hash,
            key: key, idempotent: idempotent)
    }

    /// Sends a part or a small object straight from its buffer; `payloadHash` when the buffer's
    /// SHA-256 is already known (a small object's is its whole content's).
    private func send(
        _ method: String, _ path: String, query: [SigV4Request.QueryItem] = [], headers: [SigV4Request.Header] = [],
        buffer: UploadBuffer, payloadHash: String? = nil, key: String
    ) async throws -> HTTPClientResponse {
        let hash = payloadHash ?? {
            let hasher = PayloadHasher()
            buffer.withUnsafeBytes { hasher.update($0) }
            return hasher.finalizeHex()
        }()
        return try await send(
            method, path, query: query, headers: headers, body: .buffer(buffer), payloadHash: hash, key: key, idempotent: true)
    }

    private func send(
        _ method: String, _ path: String, query: [SigV4Request.QueryItem], headers: [SigV4Request.Header],
        body: HTTPClientRequest.Body, payloadHash hash: String, key: String?, idempotent: Bool
    ) async throws -> HTTPClientResponse {
        let req = SigV4Request(method: method, path: path, query: query, headers: headers)
        let response: HTTPClientResponse
        do {
            response = try await sender.send(
                req, body: body, payloadHash: hash, idempotent: idempotent, shouldRetry: Self.isThrottle)
        } catch let e as HTTPClientError {
            throw ObjectStoreError(.transport, "S3 \(method) \(key.map { "object \($0)" } ?? "bucket \(bucket)"): \(e)")
        }
        if response.status >= 300 {
            let errBody = try await response.body.collect(limit: 1 << 20)
            throw Self.error(status: response.status, body: errBody, key: key)
        }
        return response
    }

    private func readXML(_ response: HTTPClientResponse, limit: Int = 1 << 20) async throws -> S3XMLElement {
        let body = try await response.body.collect(limit: limit)
        guard let xml = S3XMLElement.parse(body) else {
            throw ObjectStoreError(.service, "S3 answered with malformed XML")
        }
        if xml.name == "Error" { throw Self.error(status: 200, body: body, key: nil) }
        return xml
    }

    static func stripQuotes(_ s: String?) -> String {
        guard var s else { return "" }
        if s.hasPrefix("\"") && s.hasSuffix("\"") && s.count >= 2 { s = String(s.dropFirst().dropLast()) }
        return s
    }

    private func info(key: String, response: HTTPClientResponse, size: Int64) -> ObjectInfo {
        ObjectInfo(
            key: key, size: size, etag: Self.stripQuotes(response.header("ETag")),
            versionId: response.header("x-amz-version-id"),
            lastModified: response.header("Last-Modified").flatMap(Self.parseHTTPDate),
            contentType: response.header("Content-Type"),
            serverSideEncryption: response.header("x-amz-server-side-encryption"),
            kmsKeyId: response.header("x-amz-server-side-encryption-aws-kms-key-id"))
    }

    /// An HTTP date. IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, what S3 sends) is parsed by
    /// hand — no formatter per response, and no ICU data paged in; other forms via DateFormatter.
    static func parseHTTPDate(_ s: String) -> Date? {
        if let d = parseIMFFixdate(s) { return d }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: s)
    }

    /// RFC 9110 §5.6.7: `day-name "," SP 2DIGIT SP month SP 4DIGIT SP 2DIGIT ":" 2DIGIT ":" 2DIGIT SP "GMT"`.
    static func parseIMFFixdate(_ s: String) -> Date? {
        let b = Array(s.utf8)
        guard b.count == 29, b[3] == UInt8(ascii: ","), b[4] == 32, b[7] == 32, b[11] == 32, b[16] == 32,
            b[19] == UInt8(ascii: ":"), b[22] == UInt8(ascii: ":"), b[25] == 32, Array(b[26...]) == Array("GMT".utf8)
        else { return nil }
        func number(_ r: Range<Int>) -> Int? {
            var v = 0
            for i in r {
                guard b[i] >= 48 && b[i] <= 57 else { return nil }
                v = v * 10 + Int(b[i] - 48)
            }
            return v
        }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard let monthIndex = months.firstIndex(where: { Array($0.utf8) == Array(b[8..<11]) }),
            let day = number(5..<7), let year = number(12..<16), let hour = number(17..<19),
            let minute = number(20..<22), let second = number(23..<25),
            (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        // Days from 1970-01-01 to the civil date (Howard Hinnant's days_from_civil).
        let m = monthIndex + 1
        let y = m <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Date(timeIntervalSince1970: Double(days * 86_400 + hour * 3600 + minute * 60 + second))
    }

    private func sseHeaders(_ options: ObjectPutOptions) -> [SigV4Request.Header] {
        var h: [SigV4Request.Header] = []
        if let ct = options.contentType { h.append(.init("Content-Type", ct)) }
        if case .kms(let keyId, let context) = options.serverSideEncryption {
            h.append(.init("x-amz-server-side-encryption", "aws:kms"))
            if let keyId { h.append(.init("x-amz-server-side-encryption-aws-kms-key-id", keyId)) }
            if let context {
                let json = try? JSONSerialization.data(withJSONObject: context, options: [.sortedKeys])
                h.append(.init("x-amz-server-side-encryption-context", json.map { $0.base64EncodedString() } ?? ""))
            }
        }
        return h
    }

    // MARK: Put

    public func put(key: String, body: ByteStream, options: ObjectPutOptions) async throws -> ObjectInfo {
        try ObjectStoreError.validate(key: key)
        var reader = PartReader(stream: body)
        let first = try UploadBuffer(capacity: partSize, gauge: uploadMemory)
        try await reader.fill(first)
        if try await reader.peekEnd() {
            let sha256 = reader.sha256()
            try options.verifyContent?(sha256)
            let r = try await send(
                "PUT", path(key), headers: sseHeaders(options), buffer: first, payloadHash: hex(sha256), key: key)
            _ = try await r.body.collect(limit: 1 << 20)  // the transfer is over: nothing reads `first` any more
            var i = info(key: key, response: r, size: Int64(first.count))
            i.sha256 = hex(sha256)
            i.contentType = options.contentType
            return i
        }
        return try await multipart(key: key, first: first, reader: &reader, options: options)
    }

    private func multipart(key: String, first: UploadBuffer, reader: inout PartReader, options: ObjectPutOptions)
        async throws -> ObjectInfo
    {
        let created = try await readXML(
            try await send("POST", path(key), query: [.init("uploads", "")], headers: sseHeaders(options), body: [], key: key,
                idempotent: false))
        guard let uploadId = created["UploadId"], !uploadId.isEmpty else {
            throw ObjectStoreError(.service, "S3 CreateMultipartUpload returned no UploadId")
        }
        do {
            let uploader = BoundedPartUploader(partSize: partSize, maxBuffers: concurrentParts, gauge: uploadMemory)
            let parts = try await uploader.run(first: first, reader: &reader) { n, buffer in
                let r = try await self.send(
                    "PUT", self.path(key), query: [.init("partNumber", String(n)), .init("uploadId", uploadId)],
                    buffer: buffer, key: key)
                // Read to the end, so the transfer is over before the buffer is filled again.
                _ = try await r.body.collect(limit: 1 << 20)
                return Self.stripQuotes(r.header("ETag"))
            }
            // Every part is uploaded, none is visible yet: the last moment to refuse the content.
            let sha256 = reader.sha256()
            try options.verifyContent?(sha256)
            var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            for n in parts.etags.keys.sorted() {
                xml += "<Part><PartNumber>\(n)</PartNumber><ETag>\"\(parts.etags[n]!.xmlEscaped)\"</ETag></Part>"
            }
            xml += "</CompleteMultipartUpload>"
            let response = try await send(
                "POST", path(key), query: [.init("uploadId", uploadId)], headers: [.init("Content-Type", "application/xml")],
                body: Array(xml.utf8), key: key)
            let headers = response
            let done = try await readXML(response)  // a 200 may still carry an <Error>
            var i = info(key: key, response: headers, size: parts.total)
            i.etag = Self.stripQuotes(done["ETag"])
            i.sha256 = hex(sha256)
            i.contentType = options.contentType
            return i
        } catch {
            reader.stream.cancel()
            // Best effort: do not leave parts behind (they cost money and are invisible).
            _ = try? await send("DELETE", path(key), query: [.init("uploadId", uploadId)], key: key)
            throw error
        }
    }

    // MARK: Get, head, delete, list

    public func get(key: String, versionId: String?, range: ByteRange?) async throws -> ObjectDownload {
        try ObjectStoreError.validate(key: key)
        var headers: [SigV4Request.Header] = []
        if let range { headers.append(.init("Range", range.httpValue)) }
        let query = versionId.map { [SigV4Request.QueryItem("versionId", $0)] } ?? []
        let r = try await send("GET", path(key), query: query, headers: headers, key: key)
        let length = Int64(r.header("Content-Length") ?? "") ?? 0
        var total = length
        var offset: Int64 = 0
        if let cr = r.header("Content-Range"), let slash = cr.lastIndex(of: "/") {
            // bytes START-END/TOTAL
            total = Int64(cr[cr.index(after: slash)...]) ?? length
            let spec = cr.dropFirst("bytes ".count).prefix { $0 != "-" }
            offset = Int64(spec) ?? 0
        }
        return ObjectDownload(
            info: info(key: key, response: r, size: total), range: ByteRange(offset: offset, length: length), body: r.body)
    }

    public func head(key: String, versionId: String?) async throws -> ObjectInfo {
        try ObjectStoreError.validate(key: key)
        let query = versionId.map { [SigV4Request.QueryItem("versionId", $0)] } ?? []
        let r = try await send("HEAD", path(key), query: query, key: key)
        return info(key: key, response: r, size: Int64(r.header("Content-Length") ?? "") ?? 0)
    }

    public func delete(key: String, versionId: String?) async throws {
        try ObjectStoreError.validate(key: key)
        let query = versionId.map { [SigV4Request.QueryItem("versionId", $0)] } ?? []
        _ = try await send("DELETE", path(key), query: query, key: key)
    }

    public func list(prefix listPrefix: String) async throws -> [ObjectInfo] {
        var out: [ObjectInfo] = []
        var token: String?
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        repeat {
            var query: [SigV4Request.QueryItem] = [.init("list-type", "2"), .init("prefix", prefix + listPrefix)]
            if let token { query.append(.init("continuation-token", token)) }
            let xml = try await readXML(try await send("GET", bucketPath, query: query, key: nil), limit: 16 << 20)
            for c in xml.all("Contents") {
                guard let fullKey = c["Key"], fullKey.hasPrefix(prefix) else { continue }
                let lm = c["LastModified"].flatMap { iso.date(from: $0) ?? ISO8601DateFormatter().date(from: $0) }
                out.append(
                    ObjectInfo(
                        key: String(fullKey.dropFirst(prefix.count)), size: Int64(c["Size"] ?? "") ?? 0,
                        etag: Self.stripQuotes(c["ETag"]), lastModified: lm))
            }
            token = xml["IsTruncated"] == "true" ? xml["NextContinuationToken"] : nil
        } while token != nil
        return out.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
    }

    /// Every version of a key (newest first as S3 lists them), via `ListObjectVersions`.
    public func versions(key: String) async throws -> [ObjectInfo] {
        let xml = try await readXML(
            try await send("GET", bucketPath, query: [.init("versions", ""), .init("prefix", prefix + key)], key: key),
            limit: 16 << 20)
        return xml.all("Version").filter { $0["Key"] == prefix + key }.map {
            ObjectInfo(key: key, size: Int64($0["Size"] ?? "") ?? 0, etag: Self.stripQuotes($0["ETag"]), versionId: $0["VersionId"])
        }
    }
}
