import AWS
import Foundation

/// The local KMS over the AWS KMS JSON 1.1 protocol, independent of any HTTP server: the
/// `cleanroomd` route hands it the request and writes back what it returns.
///
/// `POST /` with `X-Amz-Target: TrentService.<Operation>`, authenticated by a SigV4 header
/// signature (service `kms`) whose access key `directory` knows. Errors use KMS's JSON shape
/// `{"__type": …, "message": …}` with KMS's codes and HTTP 400 (500 for internal errors).
public struct LocalKMSEndpoint: Sendable {
    public let kms: LocalKMS
    public let directory: any AccessKeyDirectory
    public let maxBodyBytes: Int
    let verifier = SigV4Verifier(service: "kms")

    public init(kms: LocalKMS, directory: any AccessKeyDirectory, maxBodyBytes: Int = 1 << 20) {
        self.kms = kms
        self.directory = directory
        self.maxBodyBytes = maxBodyBytes
    }

    /// An answer to send back.
    public struct Reply: Sendable {
        public let status: Int
        public let headers: [(name: String, value: String)]
        public let body: [UInt8]
    }

    static func error(_ e: KMSError) -> Reply {
        Reply(status: e.code == "KMSInternalException" ? 500 : 400, headers: [("Content-Type", KMSWire.contentType)], body: e.jsonBody)
    }

    /// Handles one request. `path` and `query` are decoded; `headers` are as received.
    public func handle(
        method: String, path: String, query: [(name: String, value: String)], headers: [(name: String, value: String)],
        body: [UInt8], now: Date = Date()
    ) async -> Reply {
        do {
            let body = try await handleThrowing(method: method, path: path, query: query, headers: headers, body: body, now: now)
            return Reply(status: 200, headers: [("Content-Type", KMSWire.contentType)], body: body)
        } catch let e as KMSError {
            return Self.error(e)
        } catch let e as SigV4Verifier.Failure {
            return Self.error(KMSError(e.code, e.message))
        } catch {
            return Self.error(KMSError("KMSInternalException", "internal error"))
        }
    }

    func handleThrowing(
        method: String, path: String, query: [(name: String, value: String)], headers: [(name: String, value: String)],
        body: [UInt8], now: Date
    ) async throws -> [UInt8] {
        guard method == "POST", path == "/" else {
            throw KMSError("UnknownOperationException", "the KMS endpoint accepts only POST /")
        }
        guard body.count <= maxBodyBytes else { throw KMSError("ValidationException", "request body exceeds \(maxBodyBytes) bytes") }
        let request = SigV4Request(
            method: method, path: path, query: query.map { .init($0.name, $0.value) },
            headers: headers.map { .init($0.name, $0.value) })
        guard let target = request.header("X-Amz-Target"), target.hasPrefix(KMSWire.targetPrefix) else {
            throw KMSError("UnknownOperationException", "X-Amz-Target must be TrentService.<Operation>")
        }
        let payloadHash = PayloadHasher.hexDigest(body)
        if let claimed = request.header("x-amz-content-sha256"), claimed != payloadHash {
            throw KMSError("InvalidSignatureException", "x-amz-content-sha256 does not match the request body")
        }
        let dir = directory
        var caller: KMSCaller?
        let auth = try await verifier.verify(request, payloadHash: payloadHash, now: now) { id in
            guard let record = try await dir.accessKey(id: id) else { return nil }
            caller = record.principal
            return record.secretAccessKey
        }
        guard let caller, auth.region == kms.region else {
            throw KMSError("InvalidSignatureException", "Credential should be scoped to a valid region: '\(kms.region)'")
        }
        return try dispatch(String(target.dropFirst(KMSWire.targetPrefix.count)), body: body, caller: caller)
    }

    func decode<T: Decodable>(_ type: T.Type, _ body: [UInt8]) throws -> T {
        do {
            return try KMSWire.decoder.decode(T.self, from: Data(body))
        } catch {
            throw KMSError("SerializationException", "the request body is not valid JSON for this operation")
        }
    }

    func encode<T: Encodable>(_ value: T) throws -> [UInt8] { Array(try KMSWire.encoder.encode(value)) }

    func dispatch(_ operation: String, body: [UInt8], caller: KMSCaller) throws -> [UInt8] {
        switch operation {
        case "GenerateDataKey": return try encode(kms.generateDataKey(decode(KMSWire.GenerateDataKeyRequest.self, body), caller: caller))
        case "Encrypt": return try encode(kms.encrypt(decode(KMSWire.EncryptRequest.self, body), caller: caller))
        case "Decrypt": return try encode(kms.decrypt(decode(KMSWire.DecryptRequest.self, body), caller: caller))
        case "ReEncrypt": return try encode(kms.reEncrypt(decode(KMSWire.ReEncryptRequest.self, body), caller: caller))
        case "DescribeKey": return try encode(kms.describeKey(decode(KMSWire.KeyIdRequest.self, body), caller: caller))
        case "CreateKey": return try encode(kms.createKey(decode(KMSWire.CreateKeyRequest.self, body), caller: caller))
        case "RotateKeyOnDemand":
            let r = try decode(KMSWire.KeyIdRequest.self, body)
            _ = try kms.rotateKey(r, caller: caller)
            return try encode(["KeyId": kms.arn(keyId: try kms.resolve(r.keyId).id)])
        case "PutKeyPolicy":
            try kms.putKeyPolicy(decode(KMSWire.KeyPolicyRequest.self, body), caller: caller)
            return Array("{}".utf8)
        case "GetKeyPolicy": return try encode(kms.getKeyPolicy(decode(KMSWire.KeyPolicyRequest.self, body), caller: caller))
        case "CreateAlias":
            struct R: Decodable { let aliasName: String; let targetKeyId: String }
            let r = try decode(R.self, body)
            try kms.createAlias(name: r.aliasName, targetKeyId: r.targetKeyId, caller: caller)
            return Array("{}".utf8)
        default:
            throw KMSError("UnknownOperationException", "operation \(operation) is not supported by the local KMS")
        }
    }
}
