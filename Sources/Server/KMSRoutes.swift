import Foundation
import HTTPServer
import AWS
import CleanRoom
import LocalServices

/// The local KMS endpoint: `POST /` with `X-Amz-Target: TrentService.*` (AWS KMS JSON 1.1),
/// SigV4-authenticated. `boto3.client("kms", endpoint_url=…)` and the AWS Encryption SDK's
/// KMS keyring talk to it unchanged. Other `POST /` requests are answered as unknown.
public struct KMSRoutes: RouteGroup {
    public let endpoint: LocalKMSEndpoint
    public static let bodyLimit = 1 << 20

    public init(endpoint: LocalKMSEndpoint) { self.endpoint = endpoint }

    public func registerRoutes(on router: Router) {
        let endpoint = self.endpoint
        router.post("/", bodyLimit: Self.bodyLimit) { request in
            let body = try await request.body.collect(upTo: Self.bodyLimit)
            let reply = await endpoint.handle(
                method: request.method.rawValue, path: request.path, query: request.queryItems,
                headers: request.headers.fields, body: body)
            return Response(
                status: HTTPStatus(code: reply.status), headers: HTTPHeaders(reply.headers.map { ($0.name, $0.value) }),
                body: .bytes(reply.body))
        }
    }
}

extension KMSRoutes {
    /// The KMS routes of `cleanroomd`: the operator's SigV4 key pair (from
    /// `operator-credentials.json`) acts as the account root; `additional` directories (the
    /// domain's party keys) are consulted after it.
    public static func make(
        kms: LocalKMS, operatorCredentials: OperatorCredentials, additional: [any AccessKeyDirectory] = []
    ) -> KMSRoutes {
        var records: [AccessKeyRecord] = []
        if let id = operatorCredentials.accessKeyId, let secret = operatorCredentials.secretAccessKey {
            records.append(AccessKeyRecord(accessKeyId: id, secretAccessKey: secret, principal: kms.defaultCaller))
        }
        let directory = CompositeAccessKeyDirectory([StaticAccessKeyDirectory(records)] + additional)
        return KMSRoutes(endpoint: LocalKMSEndpoint(kms: kms, directory: directory))
    }
}

extension OperatorCredentials {
    /// A fresh SigV4 key pair like AWS's: `AKIA` + 16 base32 characters, and a 40-character secret.
    public static func generateAccessKeyPair() throws -> (accessKeyId: String, secretAccessKey: String) {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var id = [UInt8](repeating: 0, count: 16), secret = [UInt8](repeating: 0, count: 30)
        defer { for i in secret.indices { secret[i] = 0 } }
        var rng = SystemRandomNumberGenerator()
        for i in id.indices { id[i] = rng.next() }
        for i in secret.indices { secret[i] = rng.next() }
        let keyId = "AKIA" + String(id.map { alphabet[Int($0 & 31)] })
        return (keyId, Data(secret).base64EncodedString())
    }

    /// The credentials with an access key pair added when they have none (older files).
    public func withAccessKeyPair() throws -> (OperatorCredentials, changed: Bool) {
        guard accessKeyId == nil || secretAccessKey == nil else { return (self, false) }
        var copy = self
        let pair = try Self.generateAccessKeyPair()
        copy.accessKeyId = pair.accessKeyId
        copy.secretAccessKey = pair.secretAccessKey
        return (copy, true)
    }
}

extension KMSRoutes {
    /// The KMS route group when the local KMS runs (`--kms local`): the operator's key pair,
    /// then the SigV4 keys parties received at registration.
    static func groups(_ context: AppContext) -> [any RouteGroup] {
        guard let kms = context.storage?.localKMS else { return [] }
        let parties: [any AccessKeyDirectory] = context.governance.map { [PartyAccessKeys(store: $0.store, kms: kms)] } ?? []
        return [make(kms: kms, operatorCredentials: context.operatorCredentials, additional: parties)]
    }
}

/// Parties' SigV4 access keys from the domain store. A party's principal in key policies is
/// `arn:aws:iam::<account>:user/cleanroom/<partyId>`; revoked keys and inactive parties are unknown.
struct PartyAccessKeys: AccessKeyDirectory {
    let store: CleanRoomStore
    let kms: LocalKMS

    func accessKey(id: String) async throws -> AccessKeyRecord? {
        guard let (partyId, secret) = try store.accessKeySecret(id: id) else { return nil }
        return AccessKeyRecord(
            accessKeyId: id, secretAccessKey: secret,
            principal: KMSCaller(principalArn: DatasetKeyPolicy.localPartyPrincipal(accountId: kms.accountId, partyId: partyId), accountId: kms.accountId))
    }
}
