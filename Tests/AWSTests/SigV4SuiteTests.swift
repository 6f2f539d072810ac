import Foundation
import Testing
import TestSupport

@testable import AWS

/// AWS's SigV4 test suite (`../shared/vectors/sigv4/aws-sig-v4-test-suite`): every case's
/// canonical request, string to sign, Authorization and signed request are re-derived from `.req`.
struct SigV4SuiteTests {
    static let root = TestEnvironment.vector("sigv4/aws-sig-v4-test-suite")
    /// The published suite's two inconsistent cases: canonical-request checks only (see README).
    static let creqOnly: Set<String> = ["post-x-www-form-urlencoded", "post-x-www-form-urlencoded-parameters"]
    static let token =
        "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

    static let cases: [String] = {
        var out: [String] = []
        let fm = FileManager.default
        guard let e = fm.enumerator(atPath: root.path) else { return [] }
        for case let p as String in e where p.hasSuffix(".req") {
            out.append((p as NSString).deletingLastPathComponent)
        }
        return out.sorted()
    }()

    static func read(_ dir: String, _ ext: String) throws -> String {
        let name = (dir as NSString).lastPathComponent
        return try String(contentsOf: root.appendingPathComponent("\(dir)/\(name).\(ext)"), encoding: .utf8)
    }

    /// Parses a `.req` file: request line (the target may contain spaces), headers with
    /// folded continuation lines kept as repeated values, then the body.
    static func parseRequest(_ text: String) -> (SigV4Request, body: String) {
        let parts = text.components(separatedBy: "\n\n")
        let head = parts[0], body = parts.dropFirst().joined(separator: "\n\n")
        var lines = head.components(separatedBy: "\n")
        let requestLine = lines.removeFirst()
        let method = String(requestLine.prefix { $0 != " " })
        var target = String(requestLine.dropFirst(method.count + 1))
        target = String(target.dropLast(" HTTP/1.1".count))
        let pathPart = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var query: [SigV4Request.QueryItem] = []
        if pathPart.count > 1 {
            for pair in pathPart[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                query.append(.init(SigV4.percentDecode(String(kv[0]))!, kv.count > 1 ? SigV4.percentDecode(String(kv[1]))! : ""))
            }
        }
        var headers: [SigV4Request.Header] = []
        for line in lines {
            if line.first == " " || line.first == "\t" {
                headers.append(.init(headers.last!.name, line))
            } else {
                let idx = line.firstIndex(of: ":")!
                headers.append(.init(String(line[..<idx]), String(line[line.index(after: idx)...])))
            }
        }
        return (SigV4Request(method: method, path: String(pathPart[0]), query: query, headers: headers), body)
    }

    static var signer: SigV4 {
        SigV4(
            credentials: AWSCredentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            region: "us-east-1", service: "service")
    }

    @Test func suiteIsPresentWithAllCases() {
        #expect(Self.cases.count == 31)
    }

    @Test(arguments: cases)
    func canonicalRequestStringToSignAndAuthorizationMatch(_ dir: String) throws {
        let (request, body) = Self.parseRequest(try Self.read(dir, "req"))
        let signer = Self.signer
        let payloadHash = AWSHash.sha256Hex(Array(body.utf8))
        let (creq, signed) = signer.canonicalRequest(request, payloadHash: payloadHash)
        #expect(creq == (try Self.read(dir, "creq")))
        let name = (dir as NSString).lastPathComponent
        guard !Self.creqOnly.contains(name) else { return }
        let amzDate = request.header("X-Amz-Date")!
        let sts = signer.stringToSign(canonicalRequest: creq, amzDate: amzDate)
        #expect(sts == (try Self.read(dir, "sts")))
        let sig = signer.signature(stringToSign: sts, amzDate: amzDate)
        #expect(signer.authorization(signedHeaders: signed, signature: sig, amzDate: amzDate) == (try Self.read(dir, "authz")))
    }

    @Test(arguments: cases.filter { !creqOnly.contains(($0 as NSString).lastPathComponent) })
    func signingTheRequestProducesTheSignedRequest(_ dir: String) throws {
        var (request, body) = Self.parseRequest(try Self.read(dir, "req"))
        let (expected, _) = Self.parseRequest(try Self.read(dir, "sreq"))
        var signer = Self.signer
        let name = (dir as NSString).lastPathComponent
        if name.hasPrefix("post-sts-header") {
            request.headers.removeAll { $0.name.lowercased() == "x-amz-security-token" }
            signer.credentials.sessionToken = Self.token
            signer.signsSessionToken = name == "post-sts-header-before"
        }
        let date = SigV4.parseAmzDate(request.header("X-Amz-Date")!)!
        signer.sign(&request, payloadHash: AWSHash.sha256Hex(Array(body.utf8)), date: date)
        #expect(request.header("Authorization") == expected.header("Authorization")?.trimmingCharacters(in: .whitespaces))
        #expect(request.header("X-Amz-Security-Token") == expected.header("X-Amz-Security-Token"))
    }
}
