import Crypto
import Foundation

/// Checks SigV4 header signatures on requests a server receives (the local KMS endpoint).
///
/// It parses `Authorization`, requires `host` and `x-amz-date` among the signed headers,
/// checks the credential scope (date matches `X-Amz-Date`, service, `aws4_request`) and the
/// clock skew (±15 minutes, as AWS), recomputes the signature with the secret that
/// `secretFor` returns and compares in constant time. Error codes are the ones AWS JSON
/// services answer: `MissingAuthenticationTokenException`, `IncompleteSignatureException`,
/// `UnrecognizedClientException`, `InvalidSignatureException`.
public struct SigV4Verifier: Sendable {
    public let service: String
    public let maxSkew: TimeInterval

    public init(service: String, maxSkew: TimeInterval = 15 * 60) {
        self.service = service
        self.maxSkew = maxSkew
    }

    /// Why a request's signature was refused; `code` is AWS's error type.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public let code: String
        public let message: String
        public init(_ code: String, _ message: String) {
            self.code = code
            self.message = message
        }
        public var description: String { "\(code): \(message)" }
    }

    /// The parsed `Authorization` header.
    public struct Authorization: Sendable, Equatable {
        public var accessKeyId: String
        public var date: String
        public var region: String
        public var service: String
        public var signedHeaders: [String]
        public var signature: String
    }

    public static func parseAuthorization(_ value: String) throws -> Authorization {
        guard value.hasPrefix(SigV4.algorithm + " ") else {
            throw Failure("IncompleteSignatureException", "Authorization must use \(SigV4.algorithm)")
        }
        var fields: [String: String] = [:]
        for part in value.dropFirst(SigV4.algorithm.count + 1).split(separator: ",") {
            let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { throw Failure("IncompleteSignatureException", "malformed Authorization field") }
            fields[String(kv[0])] = String(kv[1])
        }
        guard let credential = fields["Credential"], let signed = fields["SignedHeaders"], let sig = fields["Signature"]
        else {
            throw Failure("IncompleteSignatureException", "Authorization needs Credential, SignedHeaders and Signature")
        }
        let scope = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard scope.count == 5, scope[4] == "aws4_request", !scope[0].isEmpty else {
            throw Failure("IncompleteSignatureException", "Credential must be KEY/DATE/REGION/SERVICE/aws4_request")
        }
        guard sig.count == 64, sig.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            throw Failure("IncompleteSignatureException", "Signature must be 64 lower-case hex digits")
        }
        return Authorization(
            accessKeyId: scope[0], date: scope[1], region: scope[2], service: scope[3],
            signedHeaders: signed.split(separator: ";").map(String.init), signature: sig)
    }

    /// Verifies `request` (decoded path and query, headers as received) whose body hashes to
    /// `payloadHash`. Returns the parsed authorization (whose key id the caller maps to a principal).
    public func verify(
        _ request: SigV4Request, payloadHash: String, now: Date,
        secretFor: (String) async throws -> String?
    ) async throws -> Authorization {
        guard let header = request.header("Authorization") else {
            throw Failure("MissingAuthenticationTokenException", "Request is missing Authentication Token")
        }
        let auth = try Self.parseAuthorization(header)
        guard auth.service == service else {
            throw Failure("InvalidSignatureException", "Credential should be scoped to correct service: '\(service)'")
        }
        let signedSet = Set(auth.signedHeaders)
        guard signedSet.contains("host") else {
            throw Failure("InvalidSignatureException", "'Host' must be a signed header")
        }
        guard let amzDate = request.header("X-Amz-Date"), let date = SigV4.parseAmzDate(amzDate) else {
            throw Failure("IncompleteSignatureException", "X-Amz-Date header is missing or malformed")
        }
        guard signedSet.contains("x-amz-date") else {
            throw Failure("InvalidSignatureException", "'X-Amz-Date' must be a signed header")
        }
        guard amzDate.hasPrefix(auth.date) && auth.date.count == 8 else {
            throw Failure("InvalidSignatureException", "Credential should be scoped to a valid date: '\(amzDate.prefix(8))'")
        }
        guard abs(date.timeIntervalSince(now)) <= maxSkew else {
            throw Failure("InvalidSignatureException", "Signature expired: \(amzDate) is not within 15 minutes of the server time")
        }
        for name in auth.signedHeaders where request.header(name) == nil {
            throw Failure("InvalidSignatureException", "signed header \(name) is not in the request")
        }
        guard let secret = try await secretFor(auth.accessKeyId) else {
            throw Failure("UnrecognizedClientException", "The security token included in the request is invalid.")
        }
        var signer = SigV4(
            credentials: AWSCredentials(accessKeyId: auth.accessKeyId, secretAccessKey: secret), region: auth.region,
            service: service)
        signer.isS3 = service == "s3"
        let (creq, _) = signer.canonicalRequest(request, payloadHash: payloadHash, signedHeaders: signedSet)
        let expected = signer.signature(stringToSign: signer.stringToSign(canonicalRequest: creq, amzDate: amzDate), amzDate: amzDate)
        guard ConstantTime.equals(Array(expected.utf8), Array(auth.signature.utf8)) else {
            throw Failure(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
        }
        return auth
    }
}
