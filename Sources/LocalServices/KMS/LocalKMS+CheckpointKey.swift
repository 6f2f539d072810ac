import AWS
import Foundation

extension LocalKMS {
    /// The default alias of the key that training-checkpoint data keys come from.
    public static let checkpointKeyAlias = "alias/cleanroom-checkpoints"

    /// A key policy for the checkpoint key: the account may administer the key but not use it to
    /// get key material out — no `ReEncrypt*` (which would move a checkpoint key under a key the
    /// operator may decrypt with) and no `CreateGrant` (which would hand the use to someone else);
    /// `GenerateDataKey` and `Decrypt` only with an attested `Recipient` whose image (PCR0,
    /// `kms:RecipientAttestation:ImageSha384`) is one of `enclaveImages` (hex). So only an enclave of
    /// those images ever holds a checkpoint key, as long as the key policy itself is not rewritten:
    /// whoever may call `PutKeyPolicy` (here the account, as `checkpointKey` does to follow enclave
    /// upgrades) is trusted with that. The same document works as an AWS KMS key policy.
    public static func checkpointKeyPolicy(accountId: String, enclaveImages: [String]) -> String {
        let root = "arn:aws:iam::\(accountId):root"
        let images = enclaveImages.map { "\"\($0.lowercased())\"" }.joined(separator: ",")
        return """
            {"Version":"2012-10-17","Statement":[
              {"Sid":"Administer","Effect":"Allow","Principal":{"AWS":"\(root)"},
               "NotAction":["kms:Decrypt","kms:GenerateDataKey*","kms:ReEncrypt*","kms:CreateGrant"],"Resource":"*"},
              {"Sid":"CheckpointKeysOnlyForTheEnclaveImage","Effect":"Allow","Principal":{"AWS":"\(root)"},
               "Action":["kms:Decrypt","kms:GenerateDataKey"],"Resource":"*",
               "Condition":{"StringEqualsIgnoreCase":{"kms:RecipientAttestation:ImageSha384":[\(images)]}}}]}
            """
    }

    /// The checkpoint key under `alias`, created on first use; its policy is (re)set to allow
    /// checkpoint keys only for `enclaveImages`, so after an enclave upgrade the old image's
    /// checkpoints can no longer be opened — by design. Returns the key's ARN.
    public func checkpointKey(alias: String = LocalKMS.checkpointKeyAlias, enclaveImages: [String]) throws -> String {
        guard !enclaveImages.isEmpty else {
            throw KMSError("ValidationException", "the checkpoint key needs at least one enclave image")
        }
        let policy = Self.checkpointKeyPolicy(accountId: accountId, enclaveImages: enclaveImages)
        if let existing = try? describeKey(.init(keyId: alias), caller: defaultCaller) {
            try putKeyPolicy(.init(keyId: existing.keyMetadata.keyId, policy: policy), caller: defaultCaller)
            return existing.keyMetadata.arn
        }
        let created = try createKey(.init(description: "cleanroom training checkpoints", policy: policy), caller: defaultCaller)
        try createAlias(name: alias, targetKeyId: created.keyMetadata.keyId, caller: defaultCaller)
        return created.keyMetadata.arn
    }
}
