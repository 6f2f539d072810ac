import Foundation
import HTTPServer
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
