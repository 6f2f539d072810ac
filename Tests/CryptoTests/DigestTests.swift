import Testing

@testable import Crypto

@Suite struct DigestTests {
    // FIPS 180-2 appendix examples ("abc" and the two-block message).
    @Test func sha2KnownAnswersForAbc() {
        #expect(Hex.encode(SHA256.hash(utf8("abc"))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            Hex.encode(SHA384.hash(utf8("abc")))
                == "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7")
        #expect(
            Hex.encode(SHA512.hash(utf8("abc")))
                == "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                + "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
        #expect(Hex.encode(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func sha256TwoBlockMessage() {
        let message = utf8("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
        #expect(Hex.encode(SHA256.hash(message)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func incrementalHashEqualsOneShotAtEverySplit() {
        let message = (0..<300).map { UInt8($0 & 0xff) }
        for function in [HashFunction.sha256, .sha384, .sha512] {
            let expected = function.hash(message)
            for split in stride(from: 0, through: message.count, by: 7) {
                var hasher = IncrementalHash(function)
                hasher.update(Array(message[..<split]))
                hasher.update(Array(message[split...]))
                #expect(hasher.finalize() == expected)
            }
        }
    }

    @Test func copyingAHasherForksItsState() {
        var a = SHA384()
        a.update(utf8("prefix"))
        let prefixDigest = a.finalize()
        var b = a
        b.update(utf8("-more"))
        #expect(a.finalize() == prefixDigest)
        #expect(b.finalize() == SHA384.hash(utf8("prefix-more")))
        #expect(a.finalize() == SHA384.hash(utf8("prefix")))
    }

    @Test func millionAsSHA256() {
        var hasher = SHA256()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { hasher.update(chunk) }
        #expect(Hex.encode(hasher.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

@Suite struct RandomAndConstantTimeTests {
    @Test func randomBytesHaveTheRequestedLengthAndDiffer() throws {
        let a = try SecureRandom.bytes(count: 32)
        let b = try SecureRandom.bytes(count: 32)
        #expect(a.count == 32)
        #expect(a != b)
        #expect(try SecureRandom.bytes(count: 0).isEmpty)
        let key = try SecureBytes(randomCount: 32)
        #expect(key.count == 32)
    }

    @Test func constantTimeEqualsComparesContentAndLength() {
        #expect(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2]))
        #expect(ConstantTime.equals([], []))
        #expect(ConstantTime.equals(SecureBytes([9, 9]), [9, 9]))
    }

    @Test func secureBytesNeverPrintContents() {
        let secret = SecureBytes(utf8("hunter2-secret"))
        #expect("\(secret)" == "SecureBytes(14 bytes)")
        #expect(String(reflecting: secret) == "SecureBytes(14 bytes)")
        #expect(secret == SecureBytes(utf8("hunter2-secret")))
        #expect(secret != SecureBytes(utf8("hunter2-secreT")))
        #expect(secret.copyBytes() == utf8("hunter2-secret"))
    }

    @Test func hexRoundTripsAndRejectsGarbage() {
        #expect(Hex.decode("00ffA0") == [0x00, 0xff, 0xa0])
        #expect(Hex.decode("0g") == nil)
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.encode([0xde, 0xad]) == "dead")
    }
}
