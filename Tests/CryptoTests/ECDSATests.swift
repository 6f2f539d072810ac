import Foundation
import Testing

@testable import Crypto

/// Big-endian a − b for equal-length byte strings with a ≥ b (test arithmetic for n − s).
func subtract(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: a.count)
    var borrow = 0
    for i in stride(from: a.count - 1, through: 0, by: -1) {
        var d = Int(a[i]) - Int(b[i]) - borrow
        borrow = d < 0 ? 1 : 0
        if d < 0 { d += 256 }
        out[i] = UInt8(d)
    }
    return out
}

let p256Order = hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
let p384Order = hex(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973")

@Suite struct ECDSAKnownAnswerTests {
    // RFC 6979 A.2.5: P-256, SHA-256, message "sample". Its s is above n/2 (high-S).
    @Test func rfc6979P256SampleVerifiesIncludingHighS() throws {
        let key = try P256.Signing.PublicKey(
            x963Representation: hex(
                "0460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
                    + "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299"))
        let r = hex("efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716")
        let s = hex("f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8")
        let high = try P256.Signing.ECDSASignature(rawRepresentation: r + s)
        #expect(key.isValidSignature(high, for: utf8("sample")))
        #expect(!key.isValidSignature(high, for: utf8("samplf")))
        let low = try P256.Signing.ECDSASignature(rawRepresentation: r + subtract(p256Order, s))
        #expect(Hex.encode(Array(low.rawRepresentation.suffix(32))) == "0834e36ad29a83bf2bc9385e491d6099c8fdf9d1ed67aa7ea5f51f93782857a9")
        #expect(key.isValidSignature(low, for: utf8("sample")))
        // The same signature as DER.
        let der = try P256.Signing.ECDSASignature(derRepresentation: high.derRepresentation)
        #expect(der == high)
        #expect(high.derRepresentation.count == 72)
    }

    // RFC 6979 A.2.6: P-384, SHA-384, message "sample", as a DER signature (high-S as well).
    @Test func rfc6979P384SampleDERVerifies() throws {
        let key = try P384.Signing.PublicKey(
            x963Representation: hex(
                "04ec3a4e415b4e19a4568618029f427fa5da9a8bc4ae92e02e06aae5286b300c64def8f0ea9055866064a254515480bc13"
                    + "8015d9b72d7d57244ea8ef9ac0c621896708a59367f9dfb9f54ca84b3f1c9db1288b231c3ae0d4fe7344fd2533264720"
            ))
        let der = hex(
            "306602310094edbb92a5ecb8aad4736e56c691916b3f88140666ce9fa73d64c4ea95ad133c81a648152e44acf96e36dd1e80fabe46"
                + "02310099ef4aeb15f178cea1fe40db2603138f130e740a19624526203b6351d0a3a94fa329c145786e679e7b82c71a38628ac8")
        let signature = try P384.Signing.ECDSASignature(derRepresentation: der)
        #expect(signature.derRepresentation == der)
        #expect(key.isValidSignature(signature, for: utf8("sample")))
        #expect(!key.isValidSignature(signature, for: utf8("Sample")))
        let s = Array(signature.rawRepresentation.suffix(48))
        let low = try P384.Signing.ECDSASignature(
            rawRepresentation: Array(signature.rawRepresentation.prefix(48)) + subtract(p384Order, s))
        #expect(key.isValidSignature(low, for: utf8("sample")))
    }

    // NIST CAVP FIPS 186-4 SigVer.rsp, [P-256,SHA-256], a case with Result = P; and the same
    // case with r or s changed, which must fail.
    @Test func nistSigVerP256SHA256() throws {
        let message = hex(
            "e1130af6a38ccb412a9c8d13e15dbfc9e69a16385af3c3f1e5da954fd5e7c45fd75e2b8c36699228e92840c0562fbf3772f07e17f1"
                + "add56588dd45f7450e1217ad239922dd9c32695dc71ff2424ca0dec1321aa47064a044b7fe3c2b97d03ce470a592304c5ef21eed"
                + "9f93da56bb232d1eeb0035f9bf0dfafdcc4606272b20a3")
        #expect(Hex.encode(SHA256.hash(message)) == "d1b8ef21eb4182ee270638061063a3f3c16c114e33937f69fb232cc833965a94")
        let key = try P256.Signing.PublicKey(
            x963Representation: [0x04] + hex("e424dc61d4bb3cb7ef4344a7f8957a0c5134e16f7a67c074f82e6e12f49abf3c")
                + hex("970eed7aa2bc48651545949de1dddaf0127e5965ac85d1243d6f60e7dfaee927"))
        let r = hex("bf96b99aa49c705c910be33142017c642ff540c76349b9dab72f981fd9347f4f")
        let s = hex("17c55095819089c2e03b9cd415abdf12444e323075d98f31920b9e0f57ec871c")
        #expect(key.isValidSignature(try .init(rawRepresentation: r + s), for: message))
        var badR = r
        badR[5] ^= 0x40
        #expect(!key.isValidSignature(try .init(rawRepresentation: badR + s), for: message))
        var badS = s
        badS[31] ^= 0x01
        #expect(!key.isValidSignature(try .init(rawRepresentation: r + badS), for: message))
        #expect(key.isValidSignature(try .init(rawRepresentation: r + s), forDigest: SHA256.hash(message)))
        // r = 0 and s = n are out of range and never valid.
        #expect(!key.isValidSignature(try .init(rawRepresentation: [UInt8](repeating: 0, count: 32) + s), for: message))
        #expect(!key.isValidSignature(try .init(rawRepresentation: r + p256Order), for: message))
    }
}

@Suite struct ECDSARoundTripTests {
    @Test func p256SignVerifyAndEncodings() throws {
        let key = try P256.Signing.PrivateKey()
        let message = utf8("cleanroom-approval-v1")
        let signature = try key.signature(for: message)
        let publicKey = try key.publicKey
        #expect(publicKey.isValidSignature(signature, for: message))
        #expect(!publicKey.isValidSignature(signature, for: message + [0]))
        #expect(signature.rawRepresentation.count == 64)
        #expect(try P256.Signing.ECDSASignature(derRepresentation: signature.derRepresentation) == signature)

        // High-S twin of our own signature is accepted too.
        let s = Array(signature.rawRepresentation.suffix(32))
        let twin = try P256.Signing.ECDSASignature(
            rawRepresentation: Array(signature.rawRepresentation.prefix(32)) + subtract(p256Order, s))
        #expect(publicKey.isValidSignature(twin, for: message))

        // Private key: PKCS#8 DER and PEM round trips give a key that makes the same public key.
        let der = try key.derRepresentation
        let fromDER = try P256.Signing.PrivateKey(derRepresentation: der)
        #expect(try fromDER.publicKey.derRepresentation == publicKey.derRepresentation)
        let pem = String(decoding: try key.pemRepresentation.copyBytes(), as: UTF8.self)
        #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        let fromPEM = try P256.Signing.PrivateKey(pemRepresentation: pem)
        #expect(try fromPEM.publicKey.x963Representation == publicKey.x963Representation)

        // Public key: SPKI DER/PEM, uncompressed and compressed points.
        #expect(try P256.Signing.PublicKey(derRepresentation: publicKey.derRepresentation).x963Representation
            == publicKey.x963Representation)
        #expect(try P256.Signing.PublicKey(pemRepresentation: publicKey.pemRepresentation).derRepresentation
            == publicKey.derRepresentation)
        let compressed = try publicKey.compressedRepresentation
        #expect(compressed.count == 33)
        let decompressed = try P256.Signing.PublicKey(compressedRepresentation: compressed)
        #expect(try decompressed.x963Representation == publicKey.x963Representation)
        #expect(decompressed.isValidSignature(signature, for: message))
    }

    @Test func p384CompressedPointRoundTripForBothParities() throws {
        var seen: Set<UInt8> = []
        for _ in 0..<16 where seen.count < 2 {
            let publicKey = try P384.Signing.PrivateKey().publicKey
            let compressed = try publicKey.compressedRepresentation
            #expect(compressed.count == 49)
            seen.insert(compressed[0])
            let back = try P384.Signing.PublicKey(compressedRepresentation: compressed)
            #expect(try back.x963Representation == publicKey.x963Representation)
            #expect(try back.compressedRepresentation == compressed)
            #expect(try P384.Signing.PublicKey(x963Representation: publicKey.x963Representation).derRepresentation
                == publicKey.derRepresentation)
        }
        #expect(seen == [0x02, 0x03])
    }

    @Test func p384SignsDigestsAndOtherHashes() throws {
        let key = try P384.Signing.PrivateKey()
        var hasher = SHA384()
        hasher.update(utf8("header"))
        hasher.update(utf8("body"))
        let signature = try key.signature(forDigest: hasher.finalize())
        #expect(try key.publicKey.isValidSignature(signature, for: utf8("headerbody")))
        let sha256Signed = try key.signature(for: utf8("m"), hash: .sha256)
        #expect(try key.publicKey.isValidSignature(sha256Signed, for: utf8("m"), hash: .sha256))
        #expect(!(try key.publicKey.isValidSignature(sha256Signed, for: utf8("m"))))
    }
}

@Suite struct ECDSAHostileInputTests {
    @Test func truncatedAndGarbageKeysGiveTypedErrors() throws {
        let publicKey = try P256.Signing.PrivateKey().publicKey
        let der = try publicKey.derRepresentation
        for length in [0, 1, 10, der.count - 1] {
            expectCryptoError(.invalidKey) { try P256.Signing.PublicKey(derRepresentation: Array(der.prefix(length))) }
        }
        expectCryptoError(.invalidKey) { try P256.Signing.PublicKey(derRepresentation: der + [0]) }
        expectCryptoError(.invalidPEM) { try P256.Signing.PublicKey(pemRepresentation: "not a pem at all") }
        expectCryptoError(.invalidPEM) {
            try P256.Signing.PublicKey(pemRepresentation: "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n")
        }
        expectCryptoError(.invalidPEM) {
            try P256.Signing.PublicKey(pemRepresentation: PEM.encode(label: "CERTIFICATE", der: der))
        }
        expectCryptoError(.invalidKey) { try P256.Signing.PrivateKey(derRepresentation: [0x30, 0x03, 0x02, 0x01]) }
        expectCryptoError(.invalidPEM) { try P384.Signing.PrivateKey(pemRepresentation: "") }
    }

    @Test func wrongCurveOrKeyTypeIsRejected() throws {
        let p256 = try P256.Signing.PrivateKey()
        expectCryptoError(.wrongKeyType) { try P384.Signing.PublicKey(derRepresentation: p256.publicKey.derRepresentation) }
        expectCryptoError(.wrongKeyType) { try P384.Signing.PrivateKey(derRepresentation: p256.derRepresentation) }
        let rsa = try RSA.PrivateKey(bits: 2048)
        expectCryptoError(.wrongKeyType) { try P256.Signing.PublicKey(derRepresentation: rsa.publicKey.derRepresentation) }
        expectCryptoError(.wrongKeyType) { try P256.Signing.PrivateKey(derRepresentation: rsa.derRepresentation) }
    }

    @Test func pointsOffTheCurveOrMalformedAreRejected() throws {
        var point = try P256.Signing.PrivateKey().publicKey.x963Representation
        point[64] ^= 1  // y no longer matches x
        expectCryptoError(.invalidKey) { try P256.Signing.PublicKey(x963Representation: point) }
        expectCryptoError(.invalidKey) { try P256.Signing.PublicKey(x963Representation: Array(point.prefix(64))) }
        expectCryptoError(.invalidKey) { try P256.Signing.PublicKey(compressedRepresentation: [0x04] + [UInt8](repeating: 1, count: 32)) }
        // x = p - 1 style garbage: all 0xff is not a field element.
        expectCryptoError(.invalidKey) {
            try P256.Signing.PublicKey(compressedRepresentation: [0x02] + [UInt8](repeating: 0xff, count: 32))
        }
        expectCryptoError(.invalidKey) { try P384.Signing.PublicKey(compressedRepresentation: [0x02] + [UInt8](repeating: 0, count: 32)) }
    }

    @Test func malformedSignaturesGiveTypedErrors() throws {
        let signature = try P256.Signing.PrivateKey().signature(for: utf8("x"))
        let der = signature.derRepresentation
        expectCryptoError(.invalidSignature) { try P256.Signing.ECDSASignature(derRepresentation: Array(der.dropLast())) }
        expectCryptoError(.invalidSignature) { try P256.Signing.ECDSASignature(derRepresentation: der + [0]) }
        expectCryptoError(.invalidSignature) { try P256.Signing.ECDSASignature(derRepresentation: []) }
        expectCryptoError(.invalidSignature) { try P256.Signing.ECDSASignature(rawRepresentation: [UInt8](repeating: 1, count: 63)) }
        // Non-canonical DER: an INTEGER with a redundant leading zero.
        let padded: [UInt8] = [0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01]
        expectCryptoError(.invalidSignature) { try P256.Signing.ECDSASignature(derRepresentation: padded) }
        // A P-384-sized r does not fit a P-256 signature.
        let p384 = try P384.Signing.PrivateKey().signature(for: utf8("x")).derRepresentation
        expectCryptoError(.invalidSignature) { try P256.Signing.ECDSASignature(derRepresentation: p384) }
    }
}

@Suite struct ECDSAOpenSSLInteropTests {
    @Test func opensslSignsWeVerifyAndWeSignOpensslVerifies() throws {
        try withTemporaryDirectory { dir in
            for (curve, digest) in [("P-256", "-sha256"), ("P-384", "-sha384")] {
                try OpenSSLCLI.run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:\(curve)", "-out", "key.pem"], in: dir)
                try OpenSSLCLI.run(["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"], in: dir)
                let message = utf8("interop message for \(curve)")
                try dir.appendingPathComponent("msg").write(message)
                try OpenSSLCLI.run(["dgst", digest, "-sign", "key.pem", "-out", "sig.der", "msg"], in: dir)
                let openSSLSignature = try dir.appendingPathComponent("sig.der").readBytes()
                let keyPEM = try dir.appendingPathComponent("key.pem").readText()
                let pubPEM = try dir.appendingPathComponent("pub.pem").readText()

                let ourSignatureDER: [UInt8]
                if curve == "P-256" {
                    let publicKey = try P256.Signing.PublicKey(pemRepresentation: pubPEM)
                    #expect(publicKey.isValidSignature(try .init(derRepresentation: openSSLSignature), for: message))
                    let privateKey = try P256.Signing.PrivateKey(pemRepresentation: keyPEM)
                    ourSignatureDER = try privateKey.signature(for: message).derRepresentation
                    try dir.appendingPathComponent("ourpub.pem").write(try privateKey.publicKey.pemRepresentation)
                } else {
                    let publicKey = try P384.Signing.PublicKey(pemRepresentation: pubPEM)
                    #expect(publicKey.isValidSignature(try .init(derRepresentation: openSSLSignature), for: message))
                    let privateKey = try P384.Signing.PrivateKey(pemRepresentation: keyPEM)
                    ourSignatureDER = try privateKey.signature(for: message).derRepresentation
                    try dir.appendingPathComponent("ourpub.pem").write(try privateKey.publicKey.pemRepresentation)
                }
                try dir.appendingPathComponent("oursig.der").write(ourSignatureDER)
                let verified = try OpenSSLCLI.run(
                    ["dgst", digest, "-verify", "ourpub.pem", "-signature", "oursig.der", "msg"], in: dir)
                #expect(verified.stdoutText.contains("Verified OK"))
            }
        }
    }

    @Test func weReadSEC1PrivateKeysAndOpensslReadsOurPKCS8() throws {
        try withTemporaryDirectory { dir in
            try OpenSSLCLI.run(["ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "sec1.pem"], in: dir)
            let sec1 = try dir.appendingPathComponent("sec1.pem").readText()
            #expect(sec1.contains("BEGIN EC PRIVATE KEY"))
            let key = try P384.Signing.PrivateKey(pemRepresentation: sec1)
            try dir.appendingPathComponent("ours.der").write(try key.derRepresentation.copyBytes())
            let text = try OpenSSLCLI.run(["pkey", "-inform", "DER", "-in", "ours.der", "-pubout"], in: dir).stdoutText
            #expect(try P384.Signing.PublicKey(pemRepresentation: text).derRepresentation == key.publicKey.derRepresentation)
        }
    }
}
