import Foundation
import Testing
import TestSupport

@testable import AWS

/// The worked examples of the Amazon S3 API Reference (`sigv4/s3-doc-examples.json`):
/// header signing, presigned URLs and `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` chunk signatures.
struct SigV4S3ExampleTests {
    struct Examples: Decodable {
        struct Credentials: Decodable {
            let accessKeyId: String
            let secretAccessKey: String
            enum CodingKeys: String, CodingKey {
                case accessKeyId = "access-key-id"
                case secretAccessKey = "secret-access-key"
            }
        }
        struct Chunk: Decodable {
            let chunkData: String
            let stringToSign: String
            let signature: String
            let wirePrefix: String
            enum CodingKeys: String, CodingKey {
                case chunkData = "chunk-data", stringToSign = "string-to-sign", signature, wirePrefix = "wire-prefix"
            }
        }
        struct Case: Decodable {
            let name: String
            let method: String?
            let canonicalURI: String?
            let headers: [String: String]?
            let payload: String?
            let canonicalRequest: String?
            let stringToSign: String?
            let signature: String?
            let authorization: String?
            let chunks: [Chunk]?
            enum CodingKeys: String, CodingKey {
                case name, method, headers, payload, signature, authorization, chunks
                case canonicalURI = "canonical-uri", canonicalRequest = "canonical-request"
                case stringToSign = "string-to-sign"
            }
        }
        let credentials: Credentials
        let xAmzDate: String
        let cases: [Case]
        enum CodingKeys: String, CodingKey {
            case credentials, cases
            case xAmzDate = "x-amz-date"
        }
    }

    static let examples: Examples = {
        let data = try! Data(contentsOf: TestEnvironment.vector("sigv4/s3-doc-examples.json"))
        return try! JSONDecoder().decode(Examples.self, from: data)
    }()

    static var signer: SigV4 {
        SigV4(
            credentials: AWSCredentials(
                accessKeyId: examples.credentials.accessKeyId, secretAccessKey: examples.credentials.secretAccessKey),
            region: "us-east-1", service: "s3")
    }

    static func example(_ name: String) -> Examples.Case { examples.cases.first { $0.name == name }! }

    static func request(_ c: Examples.Case, path: String, query: [SigV4Request.QueryItem]) -> SigV4Request {
        SigV4Request(
            method: c.method!, path: path, query: query,
            headers: c.headers!.map { .init($0.key, $0.value) }.sorted { $0.name < $1.name })
    }

    @Test(arguments: [
        ("get-object-range", "/test.txt", [SigV4Request.QueryItem]()),
        ("put-object", "/test$file.text", []),
        ("get-bucket-lifecycle", "/", [.init("lifecycle", "")]),
        ("list-objects", "/", [.init("max-keys", "2"), .init("prefix", "J")]),
        ("chunked-put-seed", "/examplebucket/chunkObject.txt", []),
    ])
    func headerSignedExamplesMatchTheS3Reference(_ name: String, _ path: String, _ query: [SigV4Request.QueryItem])
        throws
    {
        let c = Self.example(name)
        var req = Self.request(c, path: path, query: query)
        let payloadHash = req.header("x-amz-content-sha256")!
        let (creq, signed) = Self.signer.canonicalRequest(req, payloadHash: payloadHash)
        #expect(creq == c.canonicalRequest)
        let sts = Self.signer.stringToSign(canonicalRequest: creq, amzDate: Self.examples.xAmzDate)
        #expect(sts == c.stringToSign)
        #expect(Self.signer.signature(stringToSign: sts, amzDate: Self.examples.xAmzDate) == c.signature)
        _ = signed
        // Full signing path: the signer sets the same headers itself and yields the same Authorization.
        let seed = Self.signer.sign(&req, payloadHash: payloadHash, date: SigV4.parseAmzDate(Self.examples.xAmzDate)!)
        #expect(seed == c.signature)
        #expect(req.header("Authorization") == c.authorization)
    }

    @Test func putObjectPayloadHashIsTheSHA256OfTheBody() {
        let c = Self.example("put-object")
        #expect(AWSHash.sha256Hex(Array(c.payload!.utf8)) == c.headers!["x-amz-content-sha256"])
    }

    @Test func presignedGetMatchesTheS3Reference() throws {
        let c = Self.example("presigned-get-object")
        let req = SigV4Request(method: "GET", path: "/test.txt", headers: [.init("Host", "examplebucket.s3.amazonaws.com")])
        let presigned = Self.signer.presign(req, expires: 86400, date: SigV4.parseAmzDate(Self.examples.xAmzDate)!)
        #expect(presigned.query.last == .init("X-Amz-Signature", c.signature!))
        var withoutSig = presigned
        withoutSig.query.removeLast()
        #expect(Self.signer.canonicalRequest(withoutSig, payloadHash: SigV4.unsignedPayload).text == c.canonicalRequest)
        #expect(presigned.encodedTarget.hasPrefix("/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524"))
    }

    @Test func chunkSignaturesChainFromTheSeedAsInTheS3Reference() throws {
        let seed = Self.example("chunked-put-seed")
        let chunks = Self.example("chunked-put-chunks").chunks!
        var signer = SigV4ChunkSigner(signer: Self.signer, amzDate: Self.examples.xAmzDate, seedSignature: seed.signature!)
        var wire: [UInt8] = []
        for (i, size) in [65536, 1024, 0].enumerated() {
            let data = [UInt8](repeating: UInt8(ascii: "a"), count: size)
            let sts = Self.signer.chunkStringToSign(
                previousSignature: signer.previousSignature, chunkHash: AWSHash.sha256Hex(data),
                amzDate: Self.examples.xAmzDate)
            #expect(sts == chunks[i].stringToSign)
            let framed = signer.frame(data)
            #expect(signer.previousSignature == chunks[i].signature)
            let prefix = chunks[i].wirePrefix.replacingOccurrences(of: "\\r\\n", with: "\r\n")
            #expect(Array(framed.prefix(prefix.utf8.count)) == Array(prefix.utf8))
            wire += framed
        }
        #expect(wire.count == 66824)
        #expect(SigV4.awsChunkedLength(decodedLength: 66560, chunkSize: 65536) == 66824)
    }

    @Test func s3PathsAreNeitherNormalisedNorDoubleEncoded() {
        let s3 = Self.signer
        #expect(s3.canonicalURI("/a/../b//c d") == "/a/../b//c%20d")
        var generic = s3
        generic.isS3 = false
        #expect(generic.canonicalURI("/a/../b//c d") == "/b/c%20d")
    }
}
