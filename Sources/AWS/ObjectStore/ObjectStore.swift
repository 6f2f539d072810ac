import Foundation

/// Where datasets and outputs (ciphertext only) are kept: S3 in production, files locally.
///
/// Contract shared by every implementation:
/// - `put` streams its body in constant memory and makes the object visible only once it is
///   completely and durably written; a failed put leaves no trace.
/// - `put` computes the content's SHA-256 on the way (one pass; callers need not hash again),
///   returns it as `ObjectInfo.sha256`, and lets `ObjectPutOptions.verifyContent` refuse the
///   content by it before the object becomes visible.
/// - Every put creates a new version; `versionId` selects one, nil means the latest.
/// - Errors are `ObjectStoreError`s with a code callers can branch on.
public protocol ObjectStore: Sendable {
    /// Writes an object from a stream; returns what was stored (size, ETag, version id).
    func put(key: String, body: ByteStream, options: ObjectPutOptions) async throws -> ObjectInfo
    /// Reads an object (or a byte range of it) as a stream.
    func get(key: String, versionId: String?, range: ByteRange?) async throws -> ObjectDownload
    /// An object's metadata without its body.
    func head(key: String, versionId: String?) async throws -> ObjectInfo
    /// Removes one version, or (versionId nil) the object.
    func delete(key: String, versionId: String?) async throws
    /// The latest version of every object whose key starts with `prefix`, sorted by key.
    func list(prefix: String) async throws -> [ObjectInfo]
}

extension ObjectStore {
    public func put(key: String, body: ByteStream) async throws -> ObjectInfo {
        try await put(key: key, body: body, options: ObjectPutOptions())
    }
    public func get(key: String) async throws -> ObjectDownload { try await get(key: key, versionId: nil, range: nil) }
    public func get(key: String, range: ByteRange) async throws -> ObjectDownload {
        try await get(key: key, versionId: nil, range: range)
    }
    public func head(key: String) async throws -> ObjectInfo { try await head(key: key, versionId: nil) }
    public func delete(key: String) async throws { try await delete(key: key, versionId: nil) }
}

/// Metadata of one stored object version.
public struct ObjectInfo: Sendable, Equatable, Codable {
    public var key: String
    public var size: Int64
    /// S3's ETag without quotes; the file store uses the SHA-256 of the content.
    public var etag: String
    /// The content's SHA-256, lower-case hex: always returned by `put`; by `head`, `get` and
    /// `list` where the store keeps it (the file store does, S3 does not).
    public var sha256: String?
    public var versionId: String?
    public var lastModified: Date?
    public var contentType: String?
    /// `aws:kms` when stored with SSE-KMS.
    public var serverSideEncryption: String?
    public var kmsKeyId: String?

    public init(
        key: String, size: Int64, etag: String, sha256: String? = nil, versionId: String? = nil,
        lastModified: Date? = nil, contentType: String? = nil, serverSideEncryption: String? = nil,
        kmsKeyId: String? = nil
    ) {
        self.key = key
        self.size = size
        self.etag = etag
        self.sha256 = sha256
        self.versionId = versionId
        self.lastModified = lastModified
        self.contentType = contentType
        self.serverSideEncryption = serverSideEncryption
        self.kmsKeyId = kmsKeyId
    }
}

/// Options of a put.
public struct ObjectPutOptions: Sendable {
    public var contentType: String?
    /// SSE-KMS: ask S3 to encrypt at rest under this KMS key (nil key: the bucket's AWS-managed key).
    public var serverSideEncryption: ServerSideEncryption?

    /// Called once the whole body has arrived, with its SHA-256, before the object becomes
    /// visible: if it throws, nothing is stored and `put` throws that error. The way to commit
    /// content only if it has the digest a peer announced after sending it.
    public var verifyContent: (@Sendable (_ sha256: [UInt8]) throws -> Void)?

    public enum ServerSideEncryption: Sendable, Equatable {
        case kms(keyId: String?, context: [String: String]?)
    }

    public init(
        contentType: String? = nil, serverSideEncryption: ServerSideEncryption? = nil,
        verifyContent: (@Sendable (_ sha256: [UInt8]) throws -> Void)? = nil
    ) {
        self.contentType = contentType
        self.serverSideEncryption = serverSideEncryption
        self.verifyContent = verifyContent
    }
}

/// A byte range: `offset` and an optional length (to the end when nil).
public struct ByteRange: Sendable, Equatable {
    public var offset: Int64
    public var length: Int64?
    public init(offset: Int64, length: Int64? = nil) {
        self.offset = offset
        self.length = length
    }
    /// The HTTP `Range` header value.
    public var httpValue: String {
        if let length { return "bytes=\(offset)-\(offset + length - 1)" }
        return "bytes=\(offset)-"
    }
}

/// An object being read: its metadata, the range actually served, and the streamed bytes.
public struct ObjectDownload: Sendable {
    public let info: ObjectInfo
    /// The bytes served (`offset`, `length`); the whole object when no range was asked for.
    public let range: ByteRange
    public let body: ByteStream
    public init(info: ObjectInfo, range: ByteRange, body: ByteStream) {
        self.info = info
        self.range = range
        self.body = body
    }
}

/// A failed object store operation. `code` is stable; `message` says what and why, without secrets
/// (a file store's messages name its files: for the operator's log, not for clients).
public struct ObjectStoreError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        case notFound, invalidKey, invalidRange, accessDenied, preconditionFailed, io, service, transport
        /// The store's storage is full (a file store's write failed with `ENOSPC` or `EDQUOT`):
        /// nothing was stored; the same put can succeed once space is freed.
        case insufficientStorage
    }
    public let code: Code
    public let message: String
    /// S3's error code (`NoSuchKey`, `SignatureDoesNotMatch`, …) when S3 answered.
    public let serviceCode: String?
    public let status: Int?
    /// The `errno` of the system call that failed, when a file store's call failed.
    public let errno: Int32?

    public init(_ code: Code, _ message: String, serviceCode: String? = nil, status: Int? = nil, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.serviceCode = serviceCode
        self.status = status
        self.errno = errno
    }

    public var description: String {
        var s = "object store \(code.rawValue): \(message)"
        if let serviceCode { s += " [\(serviceCode)\(status.map { " \($0)" } ?? "")]" }
        if let errno { s += " (errno \(errno))" }
        return s
    }

    /// Validates a key: 1…1024 UTF-8 bytes, no NUL or other control characters.
    public static func validate(key: String) throws {
        let n = key.utf8.count
        guard n > 0, n <= 1024 else { throw ObjectStoreError(.invalidKey, "object key must be 1…1024 bytes, got \(n)") }
        guard !key.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw ObjectStoreError(.invalidKey, "object key contains a control character")
        }
    }
}
