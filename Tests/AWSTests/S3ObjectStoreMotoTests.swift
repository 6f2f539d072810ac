import Foundation
import Testing
import TestSupport

@testable import AWS

/// `S3ObjectStore` against a real S3 implementation (moto) that checks SigV4 header signatures.
@Suite(.serialized)
struct S3ObjectStoreMotoTests {
    static func pattern(_ n: Int, seed: UInt32 = 1) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        var x = seed &* 2_654_435_761
        for i in 0..<n {
            x = x &* 1_103_515_245 &+ 12345
            out[i] = UInt8(truncatingIfNeeded: x >> 16)
        }
        return out
    }

    /// A stream of `total` pattern bytes produced on the fly (constant memory).
    static func generated(_ total: Int, chunk: Int = 1 << 16) -> ByteStream {
        let state = LockedBox((0, UInt32(99) &* 2_654_435_761))
        return ByteStream(next: {
            state.withLock { s -> [UInt8]? in
                guard s.0 < total else { return nil }
                let n = min(chunk, total - s.0)
                var out = [UInt8](repeating: 0, count: n)
                for i in 0..<n {
                    s.1 = s.1 &* 1_103_515_245 &+ 12345
                    out[i] = UInt8(truncatingIfNeeded: s.1 >> 16)
                }
                s.0 += n
                return out
            }
        })
    }

    func withMoto(versioned: Bool = true, _ body: (MotoServer, S3ObjectStore) async throws -> Void) async throws {
        let moto = try MotoServer()
        defer { moto.stop() }
        try moto.boto(
            """
            s3 = client("s3")
            s3.create_bucket(Bucket="cleanroom-test")
            if \(versioned ? "True" : "False"):
                s3.put_bucket_versioning(Bucket="cleanroom-test", VersioningConfiguration={"Status": "Enabled"})
            """)
        let store = try S3ObjectStore(bucket: "cleanroom-test", prefix: "pfx/", configuration: moto.configuration())
        try await body(moto, store)
    }

    @Test func a100MiBStreamedMultipartUploadRoundTripsAndRangedGetsServeTheRange() async throws {
        try await withMoto { moto, store in
            let total = 100 << 20
            let info = try await store.put(key: "big/dataset.bin", body: Self.generated(total))
            #expect(info.size == Int64(total))
            #expect(info.etag.hasSuffix("-13"))  // 13 parts of 8 MiB: S3's multipart ETag
            // Never more part buffers alive than the bound, however fast the source.
            #expect(store.uploadMemory.peakBytes <= store.concurrentParts * store.partSize)
            #expect(store.uploadMemory.currentBytes == 0)
            // Whole object back, streamed, digest compared without holding it.
            let expected = PayloadHasher()
            for try await c in Self.generated(total) { expected.update(c) }
            let got = try await store.get(key: "big/dataset.bin")
            let hasher = PayloadHasher()
            var n = 0
            for try await c in got.body {
                hasher.update(c)
                n += c.count
            }
            #expect(n == total)
            #expect(hasher.finalizeHex() == expected.finalizeHex())
            // Ranged get across a part boundary.
            let all = Self.generatedPrefix(total: 9 << 20)
            let range = try await store.get(key: "big/dataset.bin", range: ByteRange(offset: (8 << 20) - 10, length: 30))
            #expect(range.range == ByteRange(offset: (8 << 20) - 10, length: 30))
            #expect(range.info.size == Int64(total))
            #expect(try await range.body.collect(limit: 100) == Array(all[((8 << 20) - 10)..<((8 << 20) + 20)]))
            // boto3 agrees on the size of what we wrote.
            let size = try moto.boto(#"print(client("s3").head_object(Bucket="cleanroom-test", Key="pfx/big/dataset.bin")["ContentLength"])"#)
            #expect(size.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == String(total))
        }
    }

    static func generatedPrefix(total: Int) -> [UInt8] {
        var x = UInt32(99) &* 2_654_435_761
        var out = [UInt8](repeating: 0, count: total)
        for i in 0..<total {
            x = x &* 1_103_515_245 &+ 12345
            out[i] = UInt8(truncatingIfNeeded: x >> 16)
        }
        return out
    }

    @Test func versionIdsSelectOldVersionsAndDeleteRemovesOne() async throws {
        try await withMoto { _, store in
            let v1 = try await store.put(key: "k", body: ByteStream(bytes: Array("first".utf8)))
            let v2 = try await store.put(key: "k", body: ByteStream(bytes: Array("second".utf8)))
            let id1 = try #require(v1.versionId)
            #expect(v2.versionId != nil && v2.versionId != id1)
            #expect(try await store.head(key: "k").versionId == v2.versionId)
            let old = try await store.get(key: "k", versionId: id1, range: nil)
            #expect(try await old.body.collect(limit: 100) == Array("first".utf8))
            #expect(try await store.versions(key: "k").count == 2)
            try await store.delete(key: "k", versionId: v2.versionId)
            let now = try await store.get(key: "k")
            #expect(try await now.body.collect(limit: 100) == Array("first".utf8))
        }
    }

    @Test func emptyAndExactlyOnePartObjectsAreSinglePuts() async throws {
        try await withMoto { _, store in
            let empty = try await store.put(key: "empty", body: ByteStream(bytes: []))
            #expect(empty.size == 0)
            #expect(try await store.head(key: "empty").size == 0)
            let onePart = Self.pattern(store.partSize, seed: 5)
            let exact = try await store.put(key: "one-part", body: ByteStream(bytes: onePart, chunkSize: 1_000_003))
            #expect(exact.size == Int64(store.partSize))
            #expect(exact.sha256 == PayloadHasher.hexDigest(onePart))  // its end learnt by reading ahead
            #expect(empty.sha256 == PayloadHasher.hexDigest([]))
            #expect(!exact.etag.contains("-"))  // not a multipart ETag
            #expect(try await store.get(key: "one-part").body.collect(limit: 16 << 20) == onePart)
            #expect(store.uploadMemory.currentBytes == 0)
        }
    }

    /// The put's digest is of the whole object, single or multipart; a `verifyContent` refusal
    /// stores nothing (the multipart upload is aborted, not completed).
    @Test func contentRefusedByItsDigestIsNotStored() async throws {
        struct Refused: Error {}
        try await withMoto { moto, store in
            let small = Self.pattern(1000, seed: 3)
            let single = try await store.put(key: "small", body: ByteStream(bytes: small))
            #expect(single.sha256 == PayloadHasher.hexDigest(small))
            let total = 2 * store.partSize + 17
            let expected = PayloadHasher.hexDigest(Self.generatedPrefix(total: total))
            let seen = LockedBox<String?>(nil)
            let multi = try await store.put(
                key: "multi", body: Self.generated(total),
                options: ObjectPutOptions(verifyContent: { digest in seen.withLock { $0 = hex(digest) } }))
            #expect(multi.etag.hasSuffix("-3"))
            #expect(multi.sha256 == expected)
            #expect(seen.withLock { $0 } == expected)
            let refuse = ObjectPutOptions(verifyContent: { _ in throw Refused() })
            await #expect(throws: Refused.self) { _ = try await store.put(key: "refused-small", body: ByteStream(bytes: small), options: refuse) }
            await #expect(throws: Refused.self) { _ = try await store.put(key: "refused-multi", body: Self.generated(total), options: refuse) }
            #expect(try await store.list(prefix: "refused").isEmpty)
            let uploads = try moto.boto(
                #"print(len(client("s3").list_multipart_uploads(Bucket="cleanroom-test").get("Uploads", [])))"#)
            #expect(uploads.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        }
    }

    @Test func sseKMSHeadersAreSentAndEchoed() async throws {
        try await withMoto { moto, store in
            let keyId = try moto.boto(#"print(client("kms").create_key()["KeyMetadata"]["KeyId"])"#).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let opts = ObjectPutOptions(
                contentType: "application/octet-stream",
                serverSideEncryption: .kms(keyId: keyId, context: ["cleanroom:dataset": "d1"]))
            let single = try await store.put(key: "sse/small", body: ByteStream(bytes: [1, 2, 3]), options: opts)
            #expect(single.serverSideEncryption == "aws:kms")
            #expect(single.kmsKeyId?.hasSuffix(keyId) == true)
            let head = try await store.head(key: "sse/small")
            #expect(head.serverSideEncryption == "aws:kms")
            let seen = try moto.boto(#"h = client("s3").head_object(Bucket="cleanroom-test", Key="pfx/sse/small"); print(h["ServerSideEncryption"], h["SSEKMSKeyId"])"#)
            #expect(seen.stdout.hasPrefix("aws:kms "))
            #expect(seen.stdout.contains(keyId))
        }
    }

    @Test func listPagesThroughKeysUnderThePrefix() async throws {
        try await withMoto { _, store in
            for i in 0..<5 { _ = try await store.put(key: "list/\(i) file", body: ByteStream(bytes: [UInt8(i)])) }
            _ = try await store.put(key: "other", body: ByteStream(bytes: [9]))
            let listed = try await store.list(prefix: "list/")
            #expect(listed.map(\.key) == (0..<5).map { "list/\($0) file" })
            #expect(listed.allSatisfy { $0.size == 1 })
        }
    }

    @Test func s3ErrorsBecomePreciseObjectStoreErrors() async throws {
        try await withMoto { moto, store in
            await #expect(throws: ObjectStoreError.self) { _ = try await store.get(key: "missing") }
            do {
                _ = try await store.get(key: "missing")
            } catch let e as ObjectStoreError {
                #expect(e.code == .notFound)
                #expect(e.serviceCode == "NoSuchKey")
                #expect(e.status == 404)
            }
            do {
                _ = try await store.head(key: "missing")
                Issue.record("head of a missing key succeeded")
            } catch let e as ObjectStoreError {
                #expect(e.code == .notFound)
            }
            // A wrong secret: moto recomputes the signature and refuses it.
            var bad = moto.credentials
            bad.secretAccessKey = "wrong" + bad.secretAccessKey
            let badStore = try S3ObjectStore(
                bucket: "cleanroom-test",
                configuration: AWSConfiguration(
                    region: "us-east-1", credentials: StaticCredentialsProvider(bad), endpointOverrides: ["": moto.endpoint]))
            do {
                _ = try await badStore.put(key: "x", body: ByteStream(bytes: [1]))
                Issue.record("a bad signature was accepted")
            } catch let e as ObjectStoreError {
                #expect(e.code == .accessDenied)
                #expect(e.serviceCode == "SignatureDoesNotMatch")
            }
        }
    }
}
