import COpenSSL
import Foundation
import Testing

@testable import Crypto

/// One RSA-2048 key shared by the tests that do not care which key they use (generation is slow).
let sharedRSAKey = Result { try RSA.PrivateKey(bits: 2048) }

@Suite struct RSATests {
    @Test(arguments: [2048, 3072, 4096])
    func generatesKeysOfTheAllowedSizes(_ bits: Int) throws {
        let key = try RSA.PrivateKey(bits: bits)
        #expect(key.bits == bits)
        #expect(try key.publicKey.bits == bits)
        let secret = SecureBytes(utf8("a 32-byte data key for a dataset"))
        let ciphertext = try key.publicKey.encrypt(secret, padding: .oaepSHA256)
        #expect(ciphertext.count == bits / 8)
        #expect(try key.decrypt(ciphertext, padding: .oaepSHA256) == secret)
    }

    @Test func racingSearchesGiveOneWorkingKeyAndTheLosersStop() throws {
        var moduli = Set<[UInt8]>()
        for _ in 0..<3 {
            let key = try RSA.PrivateKey(bits: 2048, racing: 2)
            #expect(key.bits == 2048)
            let secret = SecureBytes(utf8("a data key for the raced key"))
            #expect(try key.decrypt(try key.publicKey.encrypt(secret, padding: .oaepSHA256), padding: .oaepSHA256) == secret)
            moduli.insert(try key.publicKey.derRepresentation)
        }
        #expect(moduli.count == 3)
        expectCryptoError(.invalidArgument) { try RSA.PrivateKey(bits: 1024, racing: 2) }
        // A search whose flag is already set gives up at its first prime candidate.
        let stop = RSA.StopFlag()
        stop.set()
        let started = ContinuousClock.now
        #expect(shim_EVP_RSA_gen_stoppable(4096, stop.pointer) == nil)
        #expect(ContinuousClock.now - started < .milliseconds(50))
    }

    @Test func refusesOtherGenerationSizes() {
        expectCryptoError(.invalidArgument) { try RSA.PrivateKey(bits: 1024) }
        expectCryptoError(.invalidArgument) { try RSA.PrivateKey(bits: 2047) }
    }

    @Test func oaepSHA1AndSHA256AreDistinct() throws {
        let key = try sharedRSAKey.get()
        let secret = SecureBytes(try SecureRandom.bytes(count: 32))
        let sha1 = try key.publicKey.encrypt(secret, padding: .oaepSHA1)
        #expect(try key.decrypt(sha1, padding: .oaepSHA1) == secret)
        expectCryptoError(.decryptionFailure) { try key.decrypt(sha1, padding: .oaepSHA256) }
        expectCryptoError(.decryptionFailure) { try key.decrypt(sha1, padding: .pkcs1v15) }
        expectCryptoError(.invalidArgument) { try key.publicKey.encrypt(secret, padding: .pkcs1v15) }
        // 2048-bit OAEP-SHA256 carries at most 256 - 66 = 190 bytes.
        #expect(try key.publicKey.encrypt([UInt8](repeating: 1, count: 190), padding: .oaepSHA256).count == 256)
        expectCryptoError(.invalidArgument) { try key.publicKey.encrypt([UInt8](repeating: 1, count: 191), padding: .oaepSHA256) }
    }

    @Test func keyEncodingsRoundTrip() throws {
        let key = try sharedRSAKey.get()
        let publicKey = try key.publicKey
        let spki = try publicKey.derRepresentation
        #expect(try RSA.PublicKey(derRepresentation: spki).derRepresentation == spki)
        #expect(try RSA.PublicKey(pemRepresentation: publicKey.pemRepresentation).derRepresentation == spki)
        let pkcs1 = try publicKey.pkcs1DERRepresentation
        #expect(try RSA.PublicKey(pkcs1DERRepresentation: pkcs1).derRepresentation == spki)
        #expect(try RSA.PublicKey(pemRepresentation: PEM.encode(label: "RSA PUBLIC KEY", der: pkcs1)).derRepresentation == spki)
        let pkcs8 = try key.derRepresentation
        #expect(try RSA.PrivateKey(derRepresentation: pkcs8).publicKey.derRepresentation == spki)
        let pem = String(decoding: try key.pemRepresentation.copyBytes(), as: UTF8.self)
        #expect(try RSA.PrivateKey(pemRepresentation: pem).publicKey.derRepresentation == spki)
    }

    @Test func hostileInputsGiveTypedErrors() throws {
        let key = try sharedRSAKey.get()
        let ciphertext = try key.publicKey.encrypt(utf8("x"), padding: .oaepSHA256)
        expectCryptoError(.decryptionFailure) { try key.decrypt(Array(ciphertext.dropLast()), padding: .oaepSHA256) }
        expectCryptoError(.decryptionFailure) { try key.decrypt([], padding: .oaepSHA256) }
        var tampered = ciphertext
        tampered[100] ^= 1
        expectCryptoError(.decryptionFailure) { try key.decrypt(tampered, padding: .oaepSHA256) }
        let other = try RSA.PrivateKey(bits: 2048)
        expectCryptoError(.decryptionFailure) { try other.decrypt(ciphertext, padding: .oaepSHA256) }
        let ec = try P256.Signing.PrivateKey()
        expectCryptoError(.wrongKeyType) { try RSA.PublicKey(derRepresentation: ec.publicKey.derRepresentation) }
        expectCryptoError(.wrongKeyType) { try RSA.PrivateKey(derRepresentation: ec.derRepresentation) }
        expectCryptoError(.invalidKey) { try RSA.PublicKey(pkcs1DERRepresentation: [0x30, 0x00]) }
        expectCryptoError(.invalidKey) { try RSA.PublicKey(derRepresentation: Array(key.publicKey.derRepresentation.dropLast(3))) }
        expectCryptoError(.invalidPEM) { try RSA.PrivateKey(pemRepresentation: "-----BEGIN RSA PRIVATE KEY-----\nzz\n") }
    }
}

@Suite struct RSAOpenSSLInteropTests {
    @Test func opensslEncryptsWeDecryptAndViceVersa() throws {
        try withTemporaryDirectory { dir in
            try OpenSSLCLI.run(["genrsa", "-traditional", "-out", "key.pem", "2048"], in: dir)
            let keyPEM = try dir.appendingPathComponent("key.pem").readText()
            #expect(keyPEM.contains("BEGIN RSA PRIVATE KEY"))  // PKCS#1
            let key = try RSA.PrivateKey(pemRepresentation: keyPEM)
            try OpenSSLCLI.run(["rsa", "-in", "key.pem", "-RSAPublicKey_out", "-out", "pub1.pem"], in: dir)
            let pkcs1Public = try RSA.PublicKey(pemRepresentation: try dir.appendingPathComponent("pub1.pem").readText())
            #expect(try pkcs1Public.derRepresentation == key.publicKey.derRepresentation)
            try dir.appendingPathComponent("pub.pem").write(try key.publicKey.pemRepresentation)

            let secret = try SecureRandom.bytes(count: 32)
            try dir.appendingPathComponent("secret").write(secret)
            let modes: [(RSA.Padding, [String])] = [
                (.oaepSHA256, ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256"]),
                (.oaepSHA1, ["-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1", "-pkeyopt", "rsa_mgf1_md:sha1"]),
                (.pkcs1v15, ["-pkeyopt", "rsa_padding_mode:pkcs1"]),
            ]
            for (padding, options) in modes {
                try OpenSSLCLI.run(["pkeyutl", "-encrypt", "-pubin", "-inkey", "pub.pem", "-in", "secret", "-out", "ct"] + options, in: dir)
                let theirs = try dir.appendingPathComponent("ct").readBytes()
                #expect(try key.decrypt(theirs, padding: padding).copyBytes() == secret, "\(padding)")
                guard padding != .pkcs1v15 else { continue }
                try dir.appendingPathComponent("ours").write(try key.publicKey.encrypt(secret, padding: padding))
                try OpenSSLCLI.run(["pkeyutl", "-decrypt", "-inkey", "key.pem", "-in", "ours", "-out", "back"] + options, in: dir)
                #expect(try dir.appendingPathComponent("back").readBytes() == secret, "\(padding)")
            }
        }
    }

    @Test func keysBelow2048BitsAreRefused() throws {
        try withTemporaryDirectory { dir in
            try OpenSSLCLI.run(["genrsa", "-out", "small.pem", "1024"], in: dir)
            expectCryptoError(.invalidKey) { try RSA.PrivateKey(pemRepresentation: try dir.appendingPathComponent("small.pem").readText()) }
        }
    }
}
