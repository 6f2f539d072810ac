import CleanRoom
import LocalServices

/// The SigV4 access keys parties receive at registration, looked up in the governance store for
/// the local KMS endpoint. A party acts as the IAM user `cleanroom/<party id>` of the local
/// KMS's account; suspended parties and revoked keys are unknown.
public struct PartyAccessKeyDirectory: AccessKeyDirectory {
    public let store: CleanRoomStore
    public let accountId: String

    public init(store: CleanRoomStore, accountId: String) {
        self.store = store
        self.accountId = accountId
    }

    public func accessKey(id: String) async throws -> AccessKeyRecord? {
        let store = self.store
        guard let (partyId, secret) = try await GovernanceRoutes.blocking({ try store.accessKeySecret(id: id) }) else {
            return nil
        }
        return AccessKeyRecord(
            accessKeyId: id, secretAccessKey: secret,
            principal: KMSCaller(principalArn: "arn:aws:iam::\(accountId):user/cleanroom/\(partyId)", accountId: accountId))
    }
}

extension Governance {
    /// The parties' access keys, for `KMSRoutes.local(…, additional:)`.
    public func accessKeys(accountId: String) -> any AccessKeyDirectory {
        PartyAccessKeyDirectory(store: store, accountId: accountId)
    }
}
