import Foundation
import Testing

@testable import Crypto

@Suite struct AESGCMTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        let name: String
        let key: String, nonce: String, plaintext: String, aad: String, ciphertext: String, tag: String
        var testDescription: String { name }
    }

    // The AES-256 cases (13–16) of McGrew & Viega, "The Galois/Counter Mode of Operation" (the
    // GCM specification's test vectors, also in NIST's GCM validation set).
    static let vectors: [Vector] = [
        Vector(
            name: "GCM test case 13", key: String(repeating: "00", count: 32), nonce: String(repeating: "00", count: 12),
            plaintext: "", aad: "", ciphertext: "", tag: "530f8afbc74536b9a963b4f1c4cb738b"),
        Vector(
            name: "GCM test case 14", key: String(repeating: "00", count: 32), nonce: String(repeating: "00", count: 12),
            plaintext: String(repeating: "00", count: 16), aad: "", ciphertext: "cea7403d4d606b6e074ec5d3baf39d18",
            tag: "d0d1c8a799996bf0265b98b5d48ab919"),
        Vector(
            name: "GCM test case 15", key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            nonce: "cafebabefacedbaddecaf888",
            plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                + "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
            aad: "",
            ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                + "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
            tag: "b094dac5d93471bdec1a502270e3cc6c"),
        Vector(
            name: "GCM test case 16", key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            nonce: "cafebabefacedbaddecaf888",
            plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                + "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                + "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            tag: "76fc6ece0f4e1768cddf8853bb2d551b"),
    ]

    @Test(arguments: vectors)
    func knownAnswers(_ v: Vector) throws {
        let key = SecureBytes(hex(v.key))
        let box = try AESGCM.seal(hex(v.plaintext), key: key, nonce: hex(v.nonce), authenticating: hex(v.aad))
        #expect(Hex.encode(box.ciphertext) == v.ciphertext)
        #expect(Hex.encode(box.tag) == v.tag)
        let opened = try AESGCM.open(hex(v.ciphertext), tag: hex(v.tag), key: key, nonce: hex(v.nonce), authenticating: hex(v.aad))
        #expect(Hex.encode(opened) == v.plaintext)
    }

    @Test(arguments: vectors)
    func streamingMatchesOneShotAtEverySplit(_ v: Vector) throws {
        let key = SecureBytes(hex(v.key))
        let plaintext = hex(v.plaintext)
        for split in 0...plaintext.count {
            let encryptor = try AESGCM.Encryptor(key: key, nonce: hex(v.nonce), authenticating: hex(v.aad))
            let ciphertext = try encryptor.update(Array(plaintext[..<split])) + encryptor.update(Array(plaintext[split...]))
            #expect(Hex.encode(ciphertext) == v.ciphertext)
            #expect(Hex.encode(try encryptor.finalize()) == v.tag)

            let decryptor = try AESGCM.Decryptor(key: key, nonce: hex(v.nonce), authenticating: hex(v.aad))
            let back = try decryptor.update(Array(ciphertext[..<split])) + decryptor.update(Array(ciphertext[split...]))
            try decryptor.finalize(tag: hex(v.tag))
            #expect(back == plaintext)
        }
    }

    @Test func anyTamperingFailsAuthentication() throws {
        let key = try SecureBytes(randomCount: 32)
        let nonce = try SecureRandom.bytes(count: 12)
        let message = utf8("frame of a dataset"), aad = utf8("header auth")
        let box = try AESGCM.seal(message, key: key, nonce: nonce, authenticating: aad)
        var badCiphertext = box.ciphertext
        badCiphertext[0] ^= 1
        var badTag = box.tag
        badTag[15] ^= 0x80
        var badNonce = nonce
        badNonce[11] ^= 1
        expectCryptoError(.authenticationFailure) { try AESGCM.open(badCiphertext, tag: box.tag, key: key, nonce: nonce, authenticating: aad) }
        expectCryptoError(.authenticationFailure) { try AESGCM.open(box.ciphertext, tag: badTag, key: key, nonce: nonce, authenticating: aad) }
        expectCryptoError(.authenticationFailure) { try AESGCM.open(box.ciphertext, tag: box.tag, key: key, nonce: badNonce, authenticating: aad) }
        expectCryptoError(.authenticationFailure) { try AESGCM.open(box.ciphertext, tag: box.tag, key: key, nonce: nonce, authenticating: aad + [0]) }
        expectCryptoError(.authenticationFailure) {
            try AESGCM.open(box.ciphertext, tag: box.tag, key: try SecureBytes(randomCount: 32), nonce: nonce, authenticating: aad)
        }
        expectCryptoError(.authenticationFailure) {
            try AESGCM.open(box.ciphertext, tag: Array(box.tag.prefix(12)), key: key, nonce: nonce, authenticating: aad)
        }
        expectCryptoError(.authenticationFailure) {
            try AESGCM.openSecret(badCiphertext, tag: box.tag, key: key, nonce: nonce, authenticating: aad)
        }
        #expect(try AESGCM.openSecret(box.ciphertext, tag: box.tag, key: key, nonce: nonce, authenticating: aad).copyBytes() == message)
    }

    @Test func badArgumentsAndMisuseAreTypedErrors() throws {
        expectCryptoError(.invalidArgument) { try AESGCM.seal([], key: SecureBytes([1, 2, 3]), nonce: [UInt8](repeating: 0, count: 12)) }
        expectCryptoError(.invalidArgument) { try AESGCM.seal([], key: try SecureBytes(randomCount: 20), nonce: [UInt8](repeating: 0, count: 12)) }
        expectCryptoError(.invalidArgument) { try AESGCM.seal([], key: try SecureBytes(randomCount: 32), nonce: [UInt8](repeating: 0, count: 16)) }
        let encryptor = try AESGCM.Encryptor(key: try SecureBytes(randomCount: 32), nonce: [UInt8](repeating: 0, count: 12))
        _ = try encryptor.finalize()
        expectCryptoError(.invalidState) { try encryptor.update([1]) }
        expectCryptoError(.invalidState) { try encryptor.finalize() }
    }

    @Test func largeStreamInFramesRoundTrips() throws {
        let key = try SecureBytes(randomCount: 32)
        let nonce = try SecureRandom.bytes(count: 12)
        let frame = try SecureRandom.bytes(count: 65536)
        let encryptor = try AESGCM.Encryptor(key: key, nonce: nonce)
        var oneShotInput: [UInt8] = []
        var streamed: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: frame.count)
        for _ in 0..<16 {
            let written = try frame.withUnsafeBytes { input in
                try buffer.withUnsafeMutableBytes { try encryptor.update(input, into: $0) }
            }
            #expect(written == frame.count)
            streamed += buffer
            oneShotInput += frame
        }
        let tag = try encryptor.finalize()
        let box = try AESGCM.seal(oneShotInput, key: key, nonce: nonce)
        #expect(box.ciphertext == streamed)
        #expect(box.tag == tag)
    }
}

@Suite struct AESCBCTests {
    // NIST SP 800-38A F.2.5 CBC-AES256.Encrypt (four blocks; PKCS#7 then adds one padding block).
    @Test func sp800_38aKnownAnswerAndPadding() throws {
        let key = SecureBytes(hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"))
        let iv = hex("000102030405060708090a0b0c0d0e0f")
        let plaintext = hex(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52ef"
                + "f69f2445df4f9b17ad2b417be66c3710")
        let ciphertext = try AESCBC.encrypt(SecureBytes(plaintext), key: key, iv: iv)
        #expect(ciphertext.count == 80)
        #expect(
            Hex.encode(Array(ciphertext.prefix(64)))
                == "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"
                + "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b")
        #expect(try AESCBC.decrypt(ciphertext, key: key, iv: iv).copyBytes() == plaintext)
    }

    @Test func roundTripsEveryLengthAroundABlock() throws {
        let key = try SecureBytes(randomCount: 32)
        let iv = try SecureRandom.bytes(count: 16)
        for length in 0...33 {
            let plaintext = try SecureRandom.bytes(count: length)
            let ciphertext = try AESCBC.encrypt(SecureBytes(plaintext), key: key, iv: iv)
            #expect(ciphertext.count == (length / 16 + 1) * 16)
            #expect(try AESCBC.decrypt(ciphertext, key: key, iv: iv).copyBytes() == plaintext)
        }
    }

    @Test func badPaddingLengthAndKeysAreTypedErrors() throws {
        let key = try SecureBytes(randomCount: 32)
        let iv = [UInt8](repeating: 7, count: 16)
        let ciphertext = try AESCBC.encrypt(SecureBytes(utf8("data key material 32 bytes long!")), key: key, iv: iv)
        expectCryptoError(.decryptionFailure) { try AESCBC.decrypt(Array(ciphertext.dropLast()), key: key, iv: iv) }
        expectCryptoError(.decryptionFailure) { try AESCBC.decrypt([], key: key, iv: iv) }
        // A wrong key almost always leaves invalid padding; try a few keys to make it certain
        // that at least one fails with a typed error rather than a crash.
        var failures = 0
        for _ in 0..<8 {
            do { _ = try AESCBC.decrypt(ciphertext, key: try SecureBytes(randomCount: 32), iv: iv) } catch let e as CryptoError {
                #expect(e.code == .decryptionFailure)
                failures += 1
            }
        }
        #expect(failures > 0)
        expectCryptoError(.invalidArgument) { try AESCBC.decrypt(ciphertext, key: SecureBytes([1]), iv: iv) }
        expectCryptoError(.invalidArgument) { try AESCBC.decrypt(ciphertext, key: key, iv: [1, 2]) }
    }

    @Test func interoperatesWithOpensslEnc() throws {
        try withTemporaryDirectory { dir in
            let keyBytes = try SecureRandom.bytes(count: 32), iv = try SecureRandom.bytes(count: 16)
            let plaintext = try SecureRandom.bytes(count: 1000)
            try dir.appendingPathComponent("plain").write(plaintext)
            let args = ["-K", Hex.encode(keyBytes), "-iv", Hex.encode(iv)]
            try OpenSSLCLI.run(["enc", "-aes-256-cbc", "-in", "plain", "-out", "theirs"] + args, in: dir)
            let theirs = try dir.appendingPathComponent("theirs").readBytes()
            #expect(try AESCBC.decrypt(theirs, key: SecureBytes(keyBytes), iv: iv).copyBytes() == plaintext)
            let ours = try AESCBC.encrypt(SecureBytes(plaintext), key: SecureBytes(keyBytes), iv: iv)
            #expect(ours == theirs)
            try dir.appendingPathComponent("ours").write(ours)
            try OpenSSLCLI.run(["enc", "-d", "-aes-256-cbc", "-in", "ours", "-out", "back"] + args, in: dir)
            #expect(try dir.appendingPathComponent("back").readBytes() == plaintext)
        }
    }
}

@Suite struct AESGCMFrameCipherTests {
    @Test(arguments: AESGCMTests.vectors)
    func knownAnswersThroughAReusedKey(_ v: AESGCMTests.Vector) throws {
        let cipher = try AESGCM.FrameCipher(key: SecureBytes(hex(v.key)))
        for _ in 0..<3 {  // the same context gives the same answer each time
            let box = try cipher.seal(hex(v.plaintext), nonce: hex(v.nonce), authenticating: hex(v.aad))
            #expect(Hex.encode(box.ciphertext) == v.ciphertext)
            #expect(Hex.encode(box.tag) == v.tag)
            #expect(Hex.encode(try cipher.open(hex(v.ciphertext), tag: hex(v.tag), nonce: hex(v.nonce), authenticating: hex(v.aad))) == v.plaintext)
        }
    }

    @Test func manyFramesMatchTheOneShotAPIAndFailuresDoNotPoisonTheContext() throws {
        let key = try SecureBytes(randomCount: 32)
        let cipher = try AESGCM.FrameCipher(key: key)
        for frame in 0..<20 {
            let nonce = [UInt8](repeating: 0, count: 8) + withUnsafeBytes(of: UInt32(frame).bigEndian, Array.init)
            let plaintext = try SecureRandom.bytes(count: frame * 37)
            let aad = utf8("frame \(frame)")
            let box = try cipher.seal(plaintext, nonce: nonce, authenticating: aad)
            #expect(box == (try AESGCM.seal(plaintext, key: key, nonce: nonce, authenticating: aad)))
            var badTag = box.tag
            badTag[0] ^= 1
            expectCryptoError(.authenticationFailure) { try cipher.open(box.ciphertext, tag: badTag, nonce: nonce, authenticating: aad) }
            #expect(try cipher.open(box.ciphertext, tag: box.tag, nonce: nonce, authenticating: aad) == plaintext)
        }
    }

    @Test func failedOpenZeroesTheOutputBuffer() throws {
        let cipher = try AESGCM.FrameCipher(key: try SecureBytes(randomCount: 32))
        let nonce = [UInt8](repeating: 1, count: 12)
        let box = try cipher.seal(utf8("secret rows of a dataset"), nonce: nonce)
        var output = [UInt8](repeating: 0xaa, count: box.ciphertext.count)
        let result: Result<Void, Error> = Result {
            try box.ciphertext.withUnsafeBytes { c in
                try [UInt8]().withUnsafeBytes { a in
                    try output.withUnsafeMutableBytes { try cipher.open(c, tag: [UInt8](repeating: 0, count: 16), nonce: nonce, authenticating: a, into: $0) }
                }
            }
        }
        #expect(throws: CryptoError.self) { try result.get() }
        #expect(output.allSatisfy { $0 == 0 })
    }
}
