import Foundation

/// The AWS KMS JSON 1.1 protocol's request and response bodies (`X-Amz-Target:
/// TrentService.<Operation>`, `Content-Type: application/x-amz-json-1.1`), shared by the KMS
/// client and the local KMS endpoint. Blobs are base64 in JSON (`Data`'s Codable form);
/// member names are KMS's, with the first letter lower-cased in Swift (see `KMSWire.encoder`).
public enum KMSWire {
    public static let contentType = "application/x-amz-json-1.1"
    public static let targetPrefix = "TrentService."

    /// Encodes Swift names as KMS's PascalCase member names.
    public static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .custom { path in
            let k = path.last!.stringValue
            return AnyKey(k.prefix(1).uppercased() + k.dropFirst())
        }
        e.outputFormatting = [.sortedKeys]
        return e
    }

    /// Decodes KMS's PascalCase member names into Swift names.
    public static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .custom { path in
            let k = path.last!.stringValue
            return AnyKey(k.prefix(1).lowercased() + k.dropFirst())
        }
        return d
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// `Recipient`: an attestation document whose public key receives the result as CMS.
    public struct RecipientInfo: Codable, Sendable {
        public var attestationDocument: Data
        public var keyEncryptionAlgorithm: String?
        public init(attestationDocument: Data, keyEncryptionAlgorithm: String? = "RSAES_OAEP_SHA_256") {
            self.attestationDocument = attestationDocument
            self.keyEncryptionAlgorithm = keyEncryptionAlgorithm
        }
    }

    public struct GenerateDataKeyRequest: Codable, Sendable {
        public var keyId: String
        public var numberOfBytes: Int?
        public var keySpec: String?
        public var encryptionContext: [String: String]?
        public var recipient: RecipientInfo?
        public var grantTokens: [String]?
        public init(keyId: String, numberOfBytes: Int? = nil, keySpec: String? = nil, encryptionContext: [String: String]? = nil, recipient: RecipientInfo? = nil) {
            self.keyId = keyId
            self.numberOfBytes = numberOfBytes
            self.keySpec = keySpec
            self.encryptionContext = encryptionContext
            self.recipient = recipient
        }
    }

    public struct GenerateDataKeyResponse: Codable, Sendable {
        public var ciphertextBlob: Data
        public var plaintext: Data?
        public var keyId: String
        public var ciphertextForRecipient: Data?
        public init(ciphertextBlob: Data, plaintext: Data?, keyId: String, ciphertextForRecipient: Data? = nil) {
            self.ciphertextBlob = ciphertextBlob
            self.plaintext = plaintext
            self.keyId = keyId
            self.ciphertextForRecipient = ciphertextForRecipient
        }
    }

    public struct EncryptRequest: Codable, Sendable {
        public var keyId: String
        public var plaintext: Data
        public var encryptionContext: [String: String]?
        public var encryptionAlgorithm: String?
        public var grantTokens: [String]?
        public init(keyId: String, plaintext: Data, encryptionContext: [String: String]? = nil) {
            self.keyId = keyId
            self.plaintext = plaintext
            self.encryptionContext = encryptionContext
        }
    }

    public struct EncryptResponse: Codable, Sendable {
        public var ciphertextBlob: Data
        public var keyId: String
        public var encryptionAlgorithm: String?
        public init(ciphertextBlob: Data, keyId: String, encryptionAlgorithm: String? = "SYMMETRIC_DEFAULT") {
            self.ciphertextBlob = ciphertextBlob
            self.keyId = keyId
            self.encryptionAlgorithm = encryptionAlgorithm
        }
    }

    public struct DecryptRequest: Codable, Sendable {
        public var ciphertextBlob: Data
        public var keyId: String?
        public var encryptionContext: [String: String]?
        public var encryptionAlgorithm: String?
        public var recipient: RecipientInfo?
        public var grantTokens: [String]?
        public init(ciphertextBlob: Data, keyId: String? = nil, encryptionContext: [String: String]? = nil, recipient: RecipientInfo? = nil) {
            self.ciphertextBlob = ciphertextBlob
            self.keyId = keyId
            self.encryptionContext = encryptionContext
            self.recipient = recipient
        }
    }

    public struct DecryptResponse: Codable, Sendable {
        public var plaintext: Data?
        public var keyId: String
        public var ciphertextForRecipient: Data?
        public var encryptionAlgorithm: String?
        public init(plaintext: Data?, keyId: String, ciphertextForRecipient: Data? = nil, encryptionAlgorithm: String? = "SYMMETRIC_DEFAULT") {
            self.plaintext = plaintext
            self.keyId = keyId
            self.ciphertextForRecipient = ciphertextForRecipient
            self.encryptionAlgorithm = encryptionAlgorithm
        }
    }

    public struct ReEncryptRequest: Codable, Sendable {
        public var ciphertextBlob: Data
        public var sourceEncryptionContext: [String: String]?
        public var sourceKeyId: String?
        public var destinationKeyId: String
        public var destinationEncryptionContext: [String: String]?
        public var grantTokens: [String]?
        public init(ciphertextBlob: Data, sourceEncryptionContext: [String: String]? = nil, sourceKeyId: String? = nil, destinationKeyId: String, destinationEncryptionContext: [String: String]? = nil) {
            self.ciphertextBlob = ciphertextBlob
            self.sourceEncryptionContext = sourceEncryptionContext
            self.sourceKeyId = sourceKeyId
            self.destinationKeyId = destinationKeyId
            self.destinationEncryptionContext = destinationEncryptionContext
        }
    }

    public struct ReEncryptResponse: Codable, Sendable {
        public var ciphertextBlob: Data
        public var sourceKeyId: String
        public var keyId: String
        public init(ciphertextBlob: Data, sourceKeyId: String, keyId: String) {
            self.ciphertextBlob = ciphertextBlob
            self.sourceKeyId = sourceKeyId
            self.keyId = keyId
        }
    }

    public struct KeyIdRequest: Codable, Sendable {
        public var keyId: String
        public init(keyId: String) { self.keyId = keyId }
    }

    public struct KeyMetadata: Codable, Sendable, Equatable {
        public var keyId: String
        public var arn: String
        public var creationDate: Double?
        public var enabled: Bool
        public var description: String?
        public var keyUsage: String?
        public var keyState: String?
        public var keySpec: String?
        public var origin: String?
        public var keyManager: String?
        public init(keyId: String, arn: String, creationDate: Double?, enabled: Bool, description: String?, keyUsage: String? = "ENCRYPT_DECRYPT", keyState: String?, keySpec: String? = "SYMMETRIC_DEFAULT", origin: String? = "AWS_KMS", keyManager: String? = "CUSTOMER") {
            self.keyId = keyId
            self.arn = arn
            self.creationDate = creationDate
            self.enabled = enabled
            self.description = description
            self.keyUsage = keyUsage
            self.keyState = keyState
            self.keySpec = keySpec
            self.origin = origin
            self.keyManager = keyManager
        }
    }

    public struct KeyMetadataResponse: Codable, Sendable {
        public var keyMetadata: KeyMetadata
        public init(keyMetadata: KeyMetadata) { self.keyMetadata = keyMetadata }
    }

    public struct CreateKeyRequest: Codable, Sendable {
        public var description: String?
        public var keyUsage: String?
        public var keySpec: String?
        public var policy: String?
        public init(description: String? = nil, policy: String? = nil) {
            self.description = description
            self.policy = policy
        }
    }

    public struct KeyPolicyRequest: Codable, Sendable {
        public var keyId: String
        public var policyName: String?
        public var policy: String?
        public init(keyId: String, policy: String? = nil) {
            self.keyId = keyId
            self.policyName = "default"
            self.policy = policy
        }
    }

    public struct KeyPolicyResponse: Codable, Sendable {
        public var policy: String
        public init(policy: String) { self.policy = policy }
    }
}

/// An error answered by KMS (or the local KMS), with KMS's error type as `code`
/// (`NotFoundException`, `InvalidCiphertextException`, `AccessDeniedException`, …).
public struct KMSError: Error, CustomStringConvertible, Sendable, Equatable {
    public let code: String
    public let message: String
    public let status: Int

    public init(_ code: String, _ message: String, status: Int = 400) {
        self.code = code
        self.message = message
        self.status = status
    }

    public var description: String { "KMS \(code): \(message)" }

    /// KMS's JSON error body: `{"__type": "...", "message": "..."}`.
    public var jsonBody: [UInt8] {
        let obj: [String: String] = ["__type": code, "message": message]
        return Array((try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data())
    }

    /// Reads KMS's error body (`__type` may carry a `namespace#` prefix; `message` or `Message`).
    public static func parse(status: Int, body: [UInt8]) -> KMSError {
        let obj = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        if obj == nil, let xml = S3XMLElement.parse(body) {
            // Some front ends (and moto's auth layer) answer in AWS's XML error shape.
            func find(_ e: S3XMLElement) -> S3XMLElement? {
                if e.name == "Error" { return e }
                for c in e.children { if let f = find(c) { return f } }
                return nil
            }
            let error = find(xml) ?? xml
            if let code = error["Code"] {
                return KMSError(code, error["Message"] ?? "KMS answered HTTP \(status)", status: status)
            }
        }
        var type = (obj?["__type"] as? String) ?? "HTTP\(status)"
        if let hash = type.lastIndex(of: "#") { type = String(type[type.index(after: hash)...]) }
        let fallback = "KMS answered HTTP \(status): " + String(decoding: body.prefix(200), as: UTF8.self)
        let message = (obj?["message"] as? String) ?? (obj?["Message"] as? String) ?? fallback
        return KMSError(type, message, status: status)
    }
}
