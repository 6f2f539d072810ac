import Foundation

/// AWS Signature Version 4: canonical requests, strings to sign, signing keys, header
/// signatures, presigned URLs and the chunk signatures of `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`.
///
/// Two flavours differ only in the canonical URI: generic services normalise the path
/// (remove `.`/`..` segments and empty segments) before encoding it; S3 does neither and
/// encodes the path exactly once.
public struct SigV4: Sendable {
    public static let algorithm = "AWS4-HMAC-SHA256"
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    public static let streamingPayload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

    /// Headers that proxies and clients change in flight; never signed.
    static let unsignedHeaders: Set<String> = ["authorization", "user-agent", "expect", "x-amzn-trace-id"]

    public var credentials: AWSCredentials
    public var region: String
    public var service: String
    /// S3 rules: no path normalisation, single encoding, `x-amz-content-sha256` always sent.
    public var isS3: Bool
    /// Whether `X-Amz-Security-Token` is part of the signature (true for every current service).
    public var signsSessionToken: Bool

    public init(credentials: AWSCredentials, region: String, service: String, signsSessionToken: Bool = true) {
        self.credentials = credentials
        self.region = region
        self.service = service
        self.isS3 = service == "s3"
        self.signsSessionToken = signsSessionToken
    }

    // MARK: Canonical pieces

    /// RFC 3986 encoding as SigV4 defines it: unreserved characters stay, every other byte
    /// of the UTF-8 form becomes `%XX` (upper-case hex); `/` stays when `encodeSlash` is false.
    public static func uriEncode(_ s: String, encodeSlash: Bool = true) -> String {
        let hexDigits = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.append(b)
            case UInt8(ascii: "/") where !encodeSlash:
                out.append(b)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(b >> 4)])
                out.append(hexDigits[Int(b & 0x0f)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes `%XX` escapes (and nothing else: `+` stays `+`). Returns nil on a malformed escape.
    public static func percentDecode(_ s: String) -> String? {
        var out = [UInt8]()
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "%") {
                guard it.count >= 2, let hi = hexValue(it.popFirst()!), let lo = hexValue(it.popFirst()!) else {
                    return nil
                }
                out.append(hi << 4 | lo)
            } else {
                out.append(b)
            }
        }
        return String(bytes: out, encoding: .utf8)
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Removes `.` and `..` segments and empty segments, keeping a trailing slash (RFC 3986 §5.2.4).
    public static func normalizePath(_ path: String) -> String {
        var segments: [Substring] = []
        for seg in path.split(separator: "/", omittingEmptySubsequences: true) {
            if seg == "." { continue }
            if seg == ".." {
                if !segments.isEmpty { segments.removeLast() }
                continue
            }
            segments.append(seg)
        }
        var out = "/" + segments.joined(separator: "/")
        let last = path.split(separator: "/", omittingEmptySubsequences: false).last
        if path.hasSuffix("/") || last == "." || last == ".." {
            if !out.hasSuffix("/") { out += "/" }
        }
        return out
    }

    /// The canonical URI of a decoded path.
    public func canonicalURI(_ path: String) -> String {
        let p = path.isEmpty ? "/" : path
        return SigV4.uriEncode(isS3 ? p : SigV4.normalizePath(p), encodeSlash: false)
    }

    /// Encoded `name=value` pairs sorted by name, then value, joined with `&`.
    public static func canonicalQuery(_ items: [SigV4Request.QueryItem]) -> String {
        let encoded: [(String, String)] = items.map { (uriEncode($0.name), uriEncode($0.value)) }
        let sorted = encoded.sorted { (a: (String, String), b: (String, String)) -> Bool in
            a.0 == b.0 ? a.1 < b.1 : a.0 < b.0
        }
        return sorted.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// Trims a header value and folds each run of whitespace into one space.
    static func canonicalHeaderValue(_ v: String) -> String {
        var out = ""
        var pendingSpace = false
        for ch in v.unicodeScalars {
            if ch == " " || ch == "\t" || ch == "\n" || ch == "\r" {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.unicodeScalars.append(" ") }
                pendingSpace = false
                out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// Canonical header block and the `SignedHeaders` list for the headers named in `only`
    /// (all signable headers when nil). Repeated headers are joined with `,` in order.
    public static func canonicalHeaders(_ headers: [SigV4Request.Header], only: Set<String>? = nil)
        -> (block: String, signed: String)
    {
        var merged: [String: [String]] = [:]
        for h in headers {
            let name = h.name.lowercased()
            if let only { guard only.contains(name) else { continue } } else if unsignedHeaders.contains(name) {
                continue
            }
            merged[name, default: []].append(canonicalHeaderValue(h.value))
        }
        let names = merged.keys.sorted()
        let block = names.map { "\($0):\(merged[$0]!.joined(separator: ","))\n" }.joined()
        return (block, names.joined(separator: ";"))
    }

    /// The canonical request (task 1 of SigV4).
    public func canonicalRequest(_ request: SigV4Request, payloadHash: String, signedHeaders only: Set<String>? = nil)
        -> (text: String, signedHeaders: String)
    {
        let (block, signed) = SigV4.canonicalHeaders(request.headers, only: only)
        let text = [
            request.method.uppercased(), canonicalURI(request.path), SigV4.canonicalQuery(request.query), block,
            signed, payloadHash,
        ].joined(separator: "\n")
        return (text, signed)
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    public static func amzDate(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970.rounded(.down))
        var tmv = tm()
        gmtime_r(&t, &tmv)
        return String(
            format: "%04d%02d%02dT%02d%02d%02dZ", Int(tmv.tm_year) + 1900, Int(tmv.tm_mon) + 1, Int(tmv.tm_mday),
            Int(tmv.tm_hour), Int(tmv.tm_min), Int(tmv.tm_sec))
    }

    /// Parses `yyyyMMdd'T'HHmmss'Z'`.
    public static func parseAmzDate(_ s: String) -> Date? {
        let b = Array(s.utf8)
        guard b.count == 16, b[8] == UInt8(ascii: "T"), b[15] == UInt8(ascii: "Z") else { return nil }
        func num(_ r: Range<Int>) -> Int? {
            var v = 0
            for i in r {
                guard b[i] >= 48, b[i] <= 57 else { return nil }
                v = v * 10 + Int(b[i] - 48)
            }
            return v
        }
        guard let y = num(0..<4), let mo = num(4..<6), let d = num(6..<8), let h = num(9..<11), let mi = num(11..<13),
            let se = num(13..<15), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, se < 61
        else { return nil }
        var tmv = tm()
        tmv.tm_year = Int32(y - 1900)
        tmv.tm_mon = Int32(mo - 1)
        tmv.tm_mday = Int32(d)
        tmv.tm_hour = Int32(h)
        tmv.tm_min = Int32(mi)
        tmv.tm_sec = Int32(se)
        return Date(timeIntervalSince1970: TimeInterval(timegm(&tmv)))
    }

    /// `date/region/service/aws4_request`.
    public func scope(dateStamp: String) -> String { "\(dateStamp)/\(region)/\(service)/aws4_request" }

    /// The string to sign (task 2).
    public func stringToSign(canonicalRequest: String, amzDate: String) -> String {
        [
            SigV4.algorithm, amzDate, scope(dateStamp: String(amzDate.prefix(8))),
            AWSHash.sha256Hex(Array(canonicalRequest.utf8)),
        ].joined(separator: "\n")
    }

    /// The derived signing key (task 3): HMAC chain over date, region, service, `aws4_request`.
    public func signingKey(dateStamp: String) -> [UInt8] {
        var k = AWSHash.hmac(key: Array(("AWS4" + credentials.secretAccessKey).utf8), Array(dateStamp.utf8))
        k = AWSHash.hmac(key: k, Array(region.utf8))
        k = AWSHash.hmac(key: k, Array(service.utf8))
        return AWSHash.hmac(key: k, Array("aws4_request".utf8))
    }

    /// Hex HMAC of a string to sign.
    public func signature(stringToSign: String, amzDate: String) -> String {
        hex(AWSHash.hmac(key: signingKey(dateStamp: String(amzDate.prefix(8))), Array(stringToSign.utf8)))
    }

    /// Signs `request` in place: adds `X-Amz-Date`, `X-Amz-Security-Token` (when the credentials
    /// carry one), `x-amz-content-sha256` for S3, and `Authorization`. Returns the signature
    /// (the seed of a chunk-signed upload).
    @discardableResult
    public func sign(_ request: inout SigV4Request, payloadHash: String, date: Date) -> String {
        let amzDate = SigV4.amzDate(date)
        request.setHeader("X-Amz-Date", amzDate)
        if isS3 { request.setHeader("x-amz-content-sha256", payloadHash) }
        if let token = credentials.sessionToken, signsSessionToken {
            request.setHeader("X-Amz-Security-Token", token)
        }
        let (creq, signed) = canonicalRequest(request, payloadHash: payloadHash)
        let sig = signature(stringToSign: stringToSign(canonicalRequest: creq, amzDate: amzDate), amzDate: amzDate)
        request.setHeader("Authorization", authorization(signedHeaders: signed, signature: sig, amzDate: amzDate))
        if let token = credentials.sessionToken, !signsSessionToken {
            request.setHeader("X-Amz-Security-Token", token)
        }
        return sig
    }

    /// The `Authorization` header value.
    public func authorization(signedHeaders: String, signature: String, amzDate: String) -> String {
        "\(SigV4.algorithm) Credential=\(credentials.accessKeyId)/\(scope(dateStamp: String(amzDate.prefix(8)))), "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"
    }

    /// A presigned request: the signature travels in the query (`X-Amz-Signature`), the payload
    /// is `UNSIGNED-PAYLOAD`, and only the headers already on `request` (at least `Host`) are signed.
    public func presign(_ request: SigV4Request, expires: Int, date: Date) -> SigV4Request {
        var r = request
        let amzDate = SigV4.amzDate(date)
        let (_, signed) = SigV4.canonicalHeaders(r.headers)
        r.query += [
            .init("X-Amz-Algorithm", SigV4.algorithm),
            .init("X-Amz-Credential", "\(credentials.accessKeyId)/\(scope(dateStamp: String(amzDate.prefix(8))))"),
            .init("X-Amz-Date", amzDate), .init("X-Amz-Expires", String(expires)),
            .init("X-Amz-SignedHeaders", signed),
        ]
        if let token = credentials.sessionToken { r.query.append(.init("X-Amz-Security-Token", token)) }
        let (creq, _) = canonicalRequest(r, payloadHash: SigV4.unsignedPayload)
        let sig = signature(stringToSign: stringToSign(canonicalRequest: creq, amzDate: amzDate), amzDate: amzDate)
        r.query.append(.init("X-Amz-Signature", sig))
        return r
    }

    /// The string to sign of one chunk of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` body.
    public func chunkStringToSign(previousSignature: String, chunkHash: String, amzDate: String) -> String {
        [
            "AWS4-HMAC-SHA256-PAYLOAD", amzDate, scope(dateStamp: String(amzDate.prefix(8))), previousSignature,
            SigV4.emptyPayloadHash, chunkHash,
        ].joined(separator: "\n")
    }

    /// The signature of one chunk, chained to the previous one (the seed for the first chunk).
    public func chunkSignature(previousSignature: String, chunk: [UInt8], amzDate: String) -> String {
        let sts = chunkStringToSign(
            previousSignature: previousSignature, chunkHash: AWSHash.sha256Hex(chunk), amzDate: amzDate)
        return signature(stringToSign: sts, amzDate: amzDate)
    }

    /// The wire size of an aws-chunked body of `length` bytes cut into `chunkSize` chunks
    /// (each `hex(len);chunk-signature=<64 hex>\r\n data \r\n`, then the empty final chunk).
    public static func awsChunkedLength(decodedLength: Int, chunkSize: Int) -> Int {
        func frame(_ n: Int) -> Int { String(n, radix: 16).count + 17 + 64 + 2 + n + 2 }
        let full = decodedLength / chunkSize, rest = decodedLength % chunkSize
        return full * frame(chunkSize) + (rest > 0 ? frame(rest) : 0) + frame(0)
    }
}

/// Produces the chunk framing of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` body, chaining each
/// chunk's signature to the previous one, starting from the seed signature of the headers.
public struct SigV4ChunkSigner: Sendable {
    public let signer: SigV4
    public let amzDate: String
    public private(set) var previousSignature: String

    public init(signer: SigV4, amzDate: String, seedSignature: String) {
        self.signer = signer
        self.amzDate = amzDate
        self.previousSignature = seedSignature
    }

    /// The framed chunk: `hex(len);chunk-signature=SIG\r\n` + data + `\r\n`. Call with an empty
    /// chunk last.
    public mutating func frame(_ chunk: [UInt8]) -> [UInt8] {
        let sig = signer.chunkSignature(previousSignature: previousSignature, chunk: chunk, amzDate: amzDate)
        previousSignature = sig
        var out = Array("\(String(chunk.count, radix: 16));chunk-signature=\(sig)\r\n".utf8)
        out += chunk
        out += [13, 10]
        return out
    }
}
