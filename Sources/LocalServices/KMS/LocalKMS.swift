import AWS
import Crypto
import Envelope
import Foundation

/// Who is calling the local KMS: the principal its SigV4 access key belongs to.
public struct KMSCaller: Sendable, Equatable {
    public var principalArn: String
    public var accountId: String
    public init(principalArn: String, accountId: String) {
        self.principalArn = principalArn
        self.accountId = accountId
    }
}

/// The embedded KMS: AWS KMS semantics for symmetric customer keys, without a cloud account.
///
/// - Keys live in `LocalKMSStore` (SQLite + a 0600 root key file); `rotateKey` adds a version,
///   old versions keep decrypting.
/// - A ciphertext blob authenticates the key id, the key version and the encryption context
///   (AES-256-GCM with all three in the AAD): `LocalKMSCiphertext`.
/// - Every operation is checked against the key's policy (`KMSKeyPolicy`), with the Nitro
///   `kms:RecipientAttestation:*` conditions evaluated from a verified attestation document.
/// - `Recipient` is answered as AWS does: the plaintext only as `CiphertextForRecipient`
///   (CMS EnvelopedData, RSAES-OAEP-SHA-256 + AES-256-CBC, to the attested key), never in `Plaintext`.
///
/// The `KeyManagementService` methods act as `defaultCaller` (the operator's account root).
public final class LocalKMS: KeyManagementService {
    public let region: String
    public let accountId: String
    public let defaultCaller: KMSCaller
    let store: LocalKMSStore
    let attestation: (any RecipientAttestationVerifier)?

    public init(
        directory: URL, region: String = "us-east-1", accountId: String = "000000000000",
        attestationVerifier: (any RecipientAttestationVerifier)? = nil
    ) throws {
        self.region = region
        self.accountId = accountId
        self.defaultCaller = KMSCaller(principalArn: "arn:aws:iam::\(accountId):root", accountId: accountId)
        self.store = try LocalKMSStore(directory: directory)
        self.attestation = attestationVerifier
    }

    public func arn(keyId: String) -> String { "arn:aws:kms:\(region):\(accountId):key/\(keyId)" }

    // MARK: Key resolution and authorization

    /// Resolves a key id, key ARN, `alias/…` or alias ARN to a key record.
    func resolve(_ reference: String) throws -> LocalKMSStore.KeyRecord {
        var ref = reference
        let arnPrefix = "arn:aws:kms:\(region):\(accountId):"
        if ref.hasPrefix("arn:") {
            guard ref.hasPrefix(arnPrefix) else { throw KMSError("NotFoundException", "Invalid arn \(reference)") }
            ref = String(ref.dropFirst(arnPrefix.count))
            if ref.hasPrefix("key/") { ref = String(ref.dropFirst(4)) }
        }
        if ref.hasPrefix("alias/") {
            guard let target = try store.aliasTarget(ref) else { throw KMSError("NotFoundException", "Alias \(arnPrefix)\(ref) is not found.") }
            ref = target
        }
        guard let key = try store.key(id: ref) else {
            throw KMSError("NotFoundException", "Key '\(arnPrefix)key/\(ref)' does not exist")
        }
        return key
    }

    func authorize(
        _ key: LocalKMSStore.KeyRecord, action: String, caller: KMSCaller, context: [String: String],
        recipient: VerifiedRecipient? = nil
    ) throws {
        let policy = try KMSKeyPolicy(json: key.policy)
        let request = KMSKeyPolicy.RequestContext(
            principalArn: caller.principalArn, accountId: caller.accountId, action: action, encryptionContext: context,
            recipient: recipient)
        guard policy.allows(request) else {
            throw KMSError(
                "AccessDeniedException",
                "User: \(caller.principalArn) is not authorized to perform: \(action) on resource: \(arn(keyId: key.id)) because no resource-based policy allows the \(action) action")
        }
        guard key.enabled else { throw KMSError("DisabledException", "\(arn(keyId: key.id)) is disabled.") }
    }

    func verifyRecipient(_ info: KMSWire.RecipientInfo?) throws -> VerifiedRecipient? {
        guard let info else { return nil }
        guard info.keyEncryptionAlgorithm == nil || info.keyEncryptionAlgorithm == "RSAES_OAEP_SHA_256" else {
            throw KMSError("ValidationException", "KeyEncryptionAlgorithm must be RSAES_OAEP_SHA_256")
        }
        guard let attestation else {
            throw KMSError("ValidationException", "this KMS has no attestation verifier configured; Recipient is not accepted")
        }
        do {
            return try attestation.verifyRecipient(Array(info.attestationDocument))
        } catch {
            throw KMSError("ValidationException", "The attestation document in Recipient is not valid: \(error)")
        }
    }

    static func cmsForRecipient(_ plaintext: SecureBytes, _ recipient: VerifiedRecipient) throws -> Data {
        let ski = SHA256.hash(try recipient.publicKey.derRepresentation)
        return Data(try CMS.EnvelopedData.encrypt(plaintext, recipientKey: recipient.publicKey, subjectKeyIdentifier: ski))
    }

    // MARK: Operations (JSON shapes)

    public func createKey(_ r: KMSWire.CreateKeyRequest, caller: KMSCaller) throws -> KMSWire.KeyMetadataResponse {
        if let usage = r.keyUsage, usage != "ENCRYPT_DECRYPT" {
            throw KMSError("ValidationException", "the local KMS supports only ENCRYPT_DECRYPT keys")
        }
        if let spec = r.keySpec, spec != "SYMMETRIC_DEFAULT" {
            throw KMSError("ValidationException", "the local KMS supports only SYMMETRIC_DEFAULT keys")
        }
        let policy = r.policy ?? KMSKeyPolicy.defaultPolicy(accountId: accountId)
        _ = try KMSKeyPolicy(json: policy)
        let key = try store.createKey(id: UUID().uuidString.lowercased(), description: r.description ?? "", policy: policy)
        return KMSWire.KeyMetadataResponse(keyMetadata: metadata(key))
    }

    func metadata(_ key: LocalKMSStore.KeyRecord) -> KMSWire.KeyMetadata {
        KMSWire.KeyMetadata(
            keyId: key.id, arn: arn(keyId: key.id), creationDate: key.created, enabled: key.enabled,
            description: key.description, keyState: key.enabled ? "Enabled" : "Disabled")
    }

    public func describeKey(_ r: KMSWire.KeyIdRequest, caller: KMSCaller) throws -> KMSWire.KeyMetadataResponse {
        let key = try resolve(r.keyId)
        let policy = try KMSKeyPolicy(json: key.policy)
        guard policy.allows(.init(principalArn: caller.principalArn, accountId: caller.accountId, action: "kms:DescribeKey", encryptionContext: [:])) else {
            throw KMSError("AccessDeniedException", "User: \(caller.principalArn) is not authorized to perform: kms:DescribeKey on resource: \(arn(keyId: key.id))")
        }
        return KMSWire.KeyMetadataResponse(keyMetadata: metadata(key))
    }

    public func generateDataKey(_ r: KMSWire.GenerateDataKeyRequest, caller: KMSCaller) throws -> KMSWire.GenerateDataKeyResponse {
        var count = r.numberOfBytes
        switch r.keySpec {
        case nil: break
        case "AES_256": count = count ?? 32
        case "AES_128": count = count ?? 16
        default: throw KMSError("ValidationException", "KeySpec must be AES_256 or AES_128")
        }
        guard let n = count, (1...1024).contains(n) else {
            throw KMSError("ValidationException", "NumberOfBytes must be between 1 and 1024 (or give KeySpec)")
        }
        let key = try resolve(r.keyId)
        let context = r.encryptionContext ?? [:]
        let recipient = try verifyRecipient(r.recipient)
        try authorize(key, action: "kms:GenerateDataKey", caller: caller, context: context, recipient: recipient)
        let dataKey = try SecureBytes(randomCount: n)
        let blob = try seal(dataKey, key: key, context: context)
        if let recipient {
            return .init(ciphertextBlob: blob, plaintext: nil, keyId: arn(keyId: key.id), ciphertextForRecipient: try Self.cmsForRecipient(dataKey, recipient))
        }
        return .init(ciphertextBlob: blob, plaintext: Data(dataKey.copyBytes()), keyId: arn(keyId: key.id))
    }

    public func encrypt(_ r: KMSWire.EncryptRequest, caller: KMSCaller) throws -> KMSWire.EncryptResponse {
        guard (1...4096).contains(r.plaintext.count) else {
            throw KMSError("ValidationException", "Plaintext must be 1 to 4096 bytes")
        }
        let key = try resolve(r.keyId)
        let context = r.encryptionContext ?? [:]
        try authorize(key, action: "kms:Encrypt", caller: caller, context: context)
        let blob = try seal(SecureBytes(Array(r.plaintext)), key: key, context: context)
        return .init(ciphertextBlob: blob, keyId: arn(keyId: key.id))
    }

    public func decrypt(_ r: KMSWire.DecryptRequest, caller: KMSCaller) throws -> KMSWire.DecryptResponse {
        let context = r.encryptionContext ?? [:]
        let (key, plaintext) = try open(Array(r.ciphertextBlob), expectedKey: r.keyId, context: context, action: "kms:Decrypt", caller: caller, recipientInfo: r.recipient)
        if let recipient = plaintext.recipient {
            return .init(plaintext: nil, keyId: arn(keyId: key.id), ciphertextForRecipient: try Self.cmsForRecipient(plaintext.bytes, recipient))
        }
        return .init(plaintext: Data(plaintext.bytes.copyBytes()), keyId: arn(keyId: key.id))
    }

    public func reEncrypt(_ r: KMSWire.ReEncryptRequest, caller: KMSCaller) throws -> KMSWire.ReEncryptResponse {
        let (source, plaintext) = try open(
            Array(r.ciphertextBlob), expectedKey: r.sourceKeyId, context: r.sourceEncryptionContext ?? [:],
            action: "kms:ReEncryptFrom", caller: caller, recipientInfo: nil)
        let destination = try resolve(r.destinationKeyId)
        let destContext = r.destinationEncryptionContext ?? [:]
        try authorize(destination, action: "kms:ReEncryptTo", caller: caller, context: destContext)
        let blob = try seal(plaintext.bytes, key: destination, context: destContext)
        return .init(ciphertextBlob: blob, sourceKeyId: arn(keyId: source.id), keyId: arn(keyId: destination.id))
    }

    /// Adds a new key version; new ciphertexts use it, old ones still decrypt (`RotateKeyOnDemand`).
    public func rotateKey(_ r: KMSWire.KeyIdRequest, caller: KMSCaller) throws -> Int {
        let key = try resolve(r.keyId)
        try authorize(key, action: "kms:RotateKeyOnDemand", caller: caller, context: [:])
        return try store.rotate(id: key.id)
    }

    public func putKeyPolicy(_ r: KMSWire.KeyPolicyRequest, caller: KMSCaller) throws {
        let key = try resolve(r.keyId)
        try authorize(key, action: "kms:PutKeyPolicy", caller: caller, context: [:])
        guard let policy = r.policy else { throw KMSError("ValidationException", "Policy is required") }
        _ = try KMSKeyPolicy(json: policy)
        try store.setPolicy(id: key.id, policy: policy)
    }

    public func getKeyPolicy(_ r: KMSWire.KeyPolicyRequest, caller: KMSCaller) throws -> KMSWire.KeyPolicyResponse {
        let key = try resolve(r.keyId)
        try authorize(key, action: "kms:GetKeyPolicy", caller: caller, context: [:])
        return .init(policy: key.policy)
    }

    public func createAlias(name: String, targetKeyId: String, caller: KMSCaller) throws {
        guard name.hasPrefix("alias/"), !name.hasPrefix("alias/aws/"), name.count > 6 else {
            throw KMSError("ValidationException", "AliasName must start with alias/ (and not alias/aws/)")
        }
        let key = try resolve(targetKeyId)
        try authorize(key, action: "kms:CreateAlias", caller: caller, context: [:])
        try store.createAlias(name, keyId: key.id)
    }

    // MARK: Sealing

    func seal(_ plaintext: SecureBytes, key: LocalKMSStore.KeyRecord, context: [String: String]) throws -> Data {
        guard let material = try store.material(id: key.id, version: key.currentVersion) else {
            throw KMSError("KMSInternalException", "key material of \(key.id) version \(key.currentVersion) is missing")
        }
        return Data(try LocalKMSCiphertext.seal(plaintext, keyId: key.id, version: key.currentVersion, material: material, context: context))
    }

    struct Opened {
        let bytes: SecureBytes
        let recipient: VerifiedRecipient?
    }

    func open(
        _ blob: [UInt8], expectedKey: String?, context: [String: String], action: String, caller: KMSCaller,
        recipientInfo: KMSWire.RecipientInfo?
    ) throws -> (LocalKMSStore.KeyRecord, Opened) {
        guard let header = LocalKMSCiphertext.parseHeader(blob) else {
            throw KMSError("InvalidCiphertextException", "The ciphertext is not a ciphertext blob of this KMS")
        }
        guard let key = try store.key(id: header.keyId) else {
            throw KMSError("InvalidCiphertextException", "The ciphertext refers to a key that does not exist")
        }
        if let expectedKey {
            let wanted = try resolve(expectedKey)
            guard wanted.id == key.id else {
                throw KMSError("IncorrectKeyException", "The key ID in the request does not identify a CMK that can perform this operation.")
            }
        }
        let recipient = try verifyRecipient(recipientInfo)
        try authorize(key, action: action, caller: caller, context: context, recipient: recipient)
        guard let material = try store.material(id: key.id, version: header.version) else {
            throw KMSError("InvalidCiphertextException", "The ciphertext refers to a key version that does not exist")
        }
        guard let plaintext = try? LocalKMSCiphertext.open(blob, header: header, material: material, context: context) else {
            throw KMSError("InvalidCiphertextException", "The ciphertext does not authenticate with this key and encryption context")
        }
        return (key, Opened(bytes: plaintext, recipient: recipient))
    }
}

extension LocalKMS {
    // MARK: KeyManagementService (in-process callers act as the account root)

    public func generateDataKey(keyID: String, byteCount: Int, encryptionContext: [String: String]) async throws
        -> KMSGeneratedDataKey
    {
        let r = try generateDataKey(
            KMSWire.GenerateDataKeyRequest(keyId: keyID, numberOfBytes: byteCount, encryptionContext: encryptionContext),
            caller: defaultCaller)
        var plain = Array(r.plaintext ?? Data())
        defer { for i in plain.indices { plain[i] = 0 } }
        return KMSGeneratedDataKey(plaintext: SecureBytes(plain), ciphertextBlob: Array(r.ciphertextBlob), keyARN: r.keyId)
    }

    public func encrypt(keyID: String, plaintext: SecureBytes, encryptionContext: [String: String]) async throws -> KMSEncryptedKey {
        let key = try resolve(keyID)
        try authorize(key, action: "kms:Encrypt", caller: defaultCaller, context: encryptionContext)
        let blob = try seal(plaintext, key: key, context: encryptionContext)
        return KMSEncryptedKey(ciphertextBlob: Array(blob), keyARN: arn(keyId: key.id))
    }

    public func decrypt(keyID: String, ciphertextBlob: [UInt8], encryptionContext: [String: String]) async throws -> KMSDecryptedKey {
        let (key, opened) = try open(
            ciphertextBlob, expectedKey: keyID, context: encryptionContext, action: "kms:Decrypt", caller: defaultCaller,
            recipientInfo: nil)
        return KMSDecryptedKey(plaintext: opened.bytes, keyARN: arn(keyId: key.id))
    }

    /// Creates a key as the account root (the operator's setup, tests).
    public func createKey(description: String = "", policy: String? = nil) throws -> KMSWire.KeyMetadata {
        try createKey(KMSWire.CreateKeyRequest(description: description, policy: policy), caller: defaultCaller).keyMetadata
    }
}
