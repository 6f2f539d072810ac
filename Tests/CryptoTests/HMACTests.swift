import Testing

@testable import Crypto

@Suite struct HMACTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var testDescription: String { "RFC 4231 key of \(key.count) bytes" }
        let key: [UInt8]
        let data: [UInt8]
        let sha256: String
        let sha384: String
        let sha512: String
    }

    // RFC 4231 test cases 1, 2 and 6.
    static let cases: [Case] = [
        Case(
            key: [UInt8](repeating: 0x0b, count: 20), data: Array("Hi There".utf8),
            sha256: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            sha384: "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6",
            sha512: "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
                + "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"),
        Case(
            key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8),
            sha256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            sha384: "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
            sha512: "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
                + "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
        Case(
            key: [UInt8](repeating: 0xaa, count: 131),
            data: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
            sha256: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            sha384: "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c60c2ef6ab4030fe8296248df163f44952",
            sha512: "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
                + "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"),
    ]

    @Test(arguments: cases)
    func rfc4231KnownAnswers(_ c: Case) throws {
        let key = SecureBytes(c.key)
        #expect(Hex.encode(try HMAC.authenticate(c.data, key: key, hash: .sha256)) == c.sha256)
        #expect(Hex.encode(try HMAC.authenticate(c.data, key: key, hash: .sha384)) == c.sha384)
        #expect(Hex.encode(try HMAC.authenticate(c.data, key: key, hash: .sha512)) == c.sha512)
    }

    @Test func incrementalMacEqualsOneShot() throws {
        let key = SecureBytes(utf8("webhook-secret"))
        let message = (0..<1000).map { UInt8($0 % 251) }
        var mac = try HMAC(key: key, hash: .sha256)
        for chunk in stride(from: 0, to: message.count, by: 97) {
            mac.update(Array(message[chunk..<min(chunk + 97, message.count)]))
        }
        #expect(mac.finalize() == (try HMAC.authenticate(message, key: key, hash: .sha256)))
    }

    @Test func isValidRejectsAnyChangedByte() throws {
        let key = SecureBytes(utf8("k"))
        var tag = try HMAC.authenticate(utf8("m"), key: key, hash: .sha256)
        #expect(try HMAC.isValid(tag, for: utf8("m"), key: key, hash: .sha256))
        tag[31] ^= 1
        #expect(!(try HMAC.isValid(tag, for: utf8("m"), key: key, hash: .sha256)))
        #expect(!(try HMAC.isValid(Array(tag.prefix(16)), for: utf8("m"), key: key, hash: .sha256)))
    }

    @Test func emptyKeyIsAllowed() throws {
        // HMAC-SHA256("", "") from any reference implementation.
        #expect(
            Hex.encode(try HMAC.authenticate([], key: SecureBytes([]), hash: .sha256))
                == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
    }
}

@Suite struct HKDFTests {
    // RFC 5869 test cases 1, 2 and 3 (SHA-256).
    @Test func rfc5869Case1() throws {
        let prk = try HKDF.extract(
            inputKeyMaterial: SecureBytes([UInt8](repeating: 0x0b, count: 22)), salt: hex("000102030405060708090a0b0c"),
            hash: .sha256)
        #expect(Hex.encode(prk.copyBytes()) == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
        let okm = try HKDF.expand(pseudoRandomKey: prk, info: hex("f0f1f2f3f4f5f6f7f8f9"), outputByteCount: 42, hash: .sha256)
        let expected = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        #expect(Hex.encode(okm.copyBytes()) == expected)
        let direct = try HKDF.deriveKey(
            inputKeyMaterial: SecureBytes([UInt8](repeating: 0x0b, count: 22)), salt: hex("000102030405060708090a0b0c"),
            info: hex("f0f1f2f3f4f5f6f7f8f9"), outputByteCount: 42, hash: .sha256)
        #expect(Hex.encode(direct.copyBytes()) == expected)
    }

    @Test func rfc5869Case2LongInputs() throws {
        let okm = try HKDF.deriveKey(
            inputKeyMaterial: SecureBytes((0x00..<0x50).map { UInt8($0) }), salt: (0x60..<0xb0).map { UInt8($0) },
            info: (0xb0...0xff).map { UInt8($0) }, outputByteCount: 82, hash: .sha256)
        #expect(
            Hex.encode(okm.copyBytes())
                == "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
                + "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
                + "cc30c58179ec3e87c14c01d5c1f3434f1d87")
    }

    @Test func rfc5869Case3EmptySaltAndInfo() throws {
        let ikm = SecureBytes([UInt8](repeating: 0x0b, count: 22))
        let prk = try HKDF.extract(inputKeyMaterial: ikm, salt: [], hash: .sha256)
        #expect(Hex.encode(prk.copyBytes()) == "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04")
        let okm = try HKDF.deriveKey(inputKeyMaterial: ikm, salt: [], info: [], outputByteCount: 42, hash: .sha256)
        #expect(
            Hex.encode(okm.copyBytes())
                == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    }

    /// SHA-384/512 have no RFC vectors: check against the RFC 5869 definition built from our HMAC.
    @Test(arguments: [HashFunction.sha384, .sha512])
    func matchesTheRfcDefinitionOverHMAC(_ hash: HashFunction) throws {
        let ikm = SecureBytes(utf8("input keying material"))
        let salt = utf8("salt"), info = utf8("info")
        let length = 3 * hash.byteCount + 5
        let prk = try HMAC.authenticate(ikm.copyBytes(), key: SecureBytes(salt), hash: hash)
        var okm: [UInt8] = [], block: [UInt8] = []
        var counter: UInt8 = 1
        while okm.count < length {
            block = try HMAC.authenticate(block + info + [counter], key: SecureBytes(prk), hash: hash)
            okm += block
            counter += 1
        }
        let ours = try HKDF.deriveKey(inputKeyMaterial: ikm, salt: salt, info: info, outputByteCount: length, hash: hash)
        #expect(ours.copyBytes() == Array(okm.prefix(length)))
        #expect(try HKDF.extract(inputKeyMaterial: ikm, salt: salt, hash: hash).copyBytes() == prk)
    }

    @Test func rejectsImpossibleLengths() {
        let key = SecureBytes([UInt8](repeating: 1, count: 32))
        expectCryptoError(.invalidArgument) {
            try HKDF.deriveKey(inputKeyMaterial: key, salt: [], info: [], outputByteCount: 255 * 32 + 1, hash: .sha256)
        }
        expectCryptoError(.invalidArgument) {
            try HKDF.deriveKey(inputKeyMaterial: key, salt: [], info: [], outputByteCount: 0, hash: .sha256)
        }
        expectCryptoError(.invalidArgument) {
            try HKDF.expand(pseudoRandomKey: SecureBytes([1, 2]), info: [], outputByteCount: 32, hash: .sha256)
        }
    }
}
