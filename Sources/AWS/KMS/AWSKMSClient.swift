import Crypto
import Envelope
import Foundation

/// AWS KMS over its JSON 1.1 protocol, signed with SigV4; also talks to the local KMS endpoint
/// of `cleanroomd` (same protocol). Throttling and 5xx answers are retried with backoff.
///
/// Plaintext data keys come back as `SecureBytes`. The request body and the raw response bytes are
/// overwritten before they are released; the `Data` the JSON decoder makes on the way is not
/// (Foundation gives no hook for it), so this is best effort, not a guarantee.
public final class AWSKMSClient: KeyManagementService {
    private let sender: AWSRequestSender

    /// - Parameter endpoint: overrides `configuration`'s KMS endpoint (e.g. `http://127.0.0.1:8080`).
    public init(configuration: AWSConfiguration, endpoint: String? = nil, client: HTTPClient = .shared) throws {
        sender = try AWSRequestSender(
            endpoint: endpoint ?? configuration.endpoint(for: "kms"), region: configuration.region, service: "kms",
            credentials: configuration.credentials, client: client)
    }

    static let throttlingCodes: Set<String> = [
        "ThrottlingException", "LimitExceededException", "KMSInternalException", "DependencyTimeoutException",
        "RequestLimitExceeded",
    ]

    /// Calls one operation: `TrentService.<operation>` with a JSON body.
    public func call<Request: Encodable, Response: Decodable>(
        _ operation: String, _ request: Request, as: Response.Type = Response.self
    ) async throws -> Response {
        var body = Array(try KMSWire.encoder.encode(request))
        defer { for i in body.indices { body[i] = 0 } }
        let req = SigV4Request(
            method: "POST", path: "/",
            headers: [
                .init("Content-Type", KMSWire.contentType), .init("X-Amz-Target", KMSWire.targetPrefix + operation),
            ])
        let response: HTTPClientResponse
        do {
            response = try await sender.send(
                req, body: .bytes(body), payloadHash: PayloadHasher.hexDigest(body),
                shouldRetry: { status, body in Self.throttlingCodes.contains(KMSError.parse(status: status, body: body).code) })
        } catch let e as HTTPClientError {
            throw KMSError("TransportError", "KMS \(operation): \(e)", status: 0)
        }
        var bytes = try await response.body.collect(limit: 4 << 20)
        defer { for i in bytes.indices { bytes[i] = 0 } }
        guard response.status == 200 else { throw KMSError.parse(status: response.status, body: bytes) }
        if bytes.isEmpty { bytes = Array("{}".utf8) }  // PutKeyPolicy, CreateAlias: an empty body
        do {
            return try KMSWire.decoder.decode(Response.self, from: Data(bytes))
        } catch {
            throw KMSError("MalformedResponse", "KMS \(operation) answered with JSON that does not match its shape", status: 200)
        }
    }

    static func secure(_ data: Data?) throws -> SecureBytes {
        guard let data else { throw KMSError("MalformedResponse", "KMS returned no Plaintext", status: 200) }
        return SecureBytes(Array(data))
    }

    // MARK: KeyManagementService

    public func generateDataKey(keyID: String, byteCount: Int, encryptionContext: [String: String]) async throws
        -> KMSGeneratedDataKey
    {
        let r: KMSWire.GenerateDataKeyResponse = try await call(
            "GenerateDataKey",
            KMSWire.GenerateDataKeyRequest(
                keyId: keyID, numberOfBytes: byteCount, encryptionContext: encryptionContext.isEmpty ? nil : encryptionContext))
        return KMSGeneratedDataKey(plaintext: try Self.secure(r.plaintext), ciphertextBlob: Array(r.ciphertextBlob), keyARN: r.keyId)
    }

    public func encrypt(keyID: String, plaintext: SecureBytes, encryptionContext: [String: String]) async throws
        -> KMSEncryptedKey
    {
        let r: KMSWire.EncryptResponse = try await call(
            "Encrypt",
            KMSWire.EncryptRequest(
                keyId: keyID, plaintext: Data(plaintext.copyBytes()),
                encryptionContext: encryptionContext.isEmpty ? nil : encryptionContext))
        return KMSEncryptedKey(ciphertextBlob: Array(r.ciphertextBlob), keyARN: r.keyId)
    }

    public func decrypt(keyID: String, ciphertextBlob: [UInt8], encryptionContext: [String: String]) async throws
        -> KMSDecryptedKey
    {
        let r: KMSWire.DecryptResponse = try await call(
            "Decrypt",
            KMSWire.DecryptRequest(
                ciphertextBlob: Data(ciphertextBlob), keyId: keyID,
                encryptionContext: encryptionContext.isEmpty ? nil : encryptionContext))
        return KMSDecryptedKey(plaintext: try Self.secure(r.plaintext), keyARN: r.keyId)
    }

    // MARK: Recipient (Nitro Enclaves)

    /// `Decrypt` with `Recipient`: KMS returns the plaintext only inside `CiphertextForRecipient`,
    /// a CMS EnvelopedData for the attested enclave key; `Plaintext` stays empty.
    public func decrypt(
        keyID: String?, ciphertextBlob: [UInt8], encryptionContext: [String: String], attestationDocument: [UInt8]
    ) async throws -> (keyARN: String, ciphertextForRecipient: [UInt8]) {
        let r: KMSWire.DecryptResponse = try await call(
            "Decrypt",
            KMSWire.DecryptRequest(
                ciphertextBlob: Data(ciphertextBlob), keyId: keyID,
                encryptionContext: encryptionContext.isEmpty ? nil : encryptionContext,
                recipient: .init(attestationDocument: Data(attestationDocument))))
        guard let cms = r.ciphertextForRecipient else {
            throw KMSError("MalformedResponse", "KMS answered a Recipient request without CiphertextForRecipient", status: 200)
        }
        return (r.keyId, Array(cms))
    }

    // MARK: Other operations

    public func reEncrypt(
        ciphertextBlob: [UInt8], sourceEncryptionContext: [String: String], destinationKeyID: String,
        destinationEncryptionContext: [String: String]
    ) async throws -> KMSWire.ReEncryptResponse {
        try await call(
            "ReEncrypt",
            KMSWire.ReEncryptRequest(
                ciphertextBlob: Data(ciphertextBlob),
                sourceEncryptionContext: sourceEncryptionContext.isEmpty ? nil : sourceEncryptionContext,
                destinationKeyId: destinationKeyID,
                destinationEncryptionContext: destinationEncryptionContext.isEmpty ? nil : destinationEncryptionContext))
    }

    public func describeKey(keyID: String) async throws -> KMSWire.KeyMetadata {
        let r: KMSWire.KeyMetadataResponse = try await call("DescribeKey", KMSWire.KeyIdRequest(keyId: keyID))
        return r.keyMetadata
    }

    /// `CreateKey` (tests and local setups; production keys come from infrastructure templates).
    public func createKey(description: String? = nil, policy: String? = nil) async throws -> KMSWire.KeyMetadata {
        let r: KMSWire.KeyMetadataResponse = try await call(
            "CreateKey", KMSWire.CreateKeyRequest(description: description, policy: policy))
        return r.keyMetadata
    }

    /// `GetKeyPolicy` (the policy named `default`, the only one KMS has).
    public func keyPolicy(keyID: String) async throws -> String {
        let r: KMSWire.KeyPolicyResponse = try await call("GetKeyPolicy", KMSWire.KeyPolicyRequest(keyId: keyID))
        return r.policy
    }

    /// `PutKeyPolicy`.
    public func putKeyPolicy(keyID: String, policy: String) async throws {
        struct Empty: Decodable {}
        _ = try await call("PutKeyPolicy", KMSWire.KeyPolicyRequest(keyId: keyID, policy: policy), as: Empty.self)
    }
}
