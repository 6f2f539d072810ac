import Foundation
import TestSupport
import Testing

@testable import Crypto

@Suite struct CMSParsingTests {
    static func kmsSample() throws -> [UInt8] { try vectorBytes("nitro/kms-ciphertext-for-recipient-sample.ber") }

    @Test func awsKMSCiphertextForRecipientSampleParses() throws {
        let sample = try Self.kmsSample()
        #expect(Hex.encode(SHA256.hash(sample)) == "755b9cddf708f37db12124de6b030aa0a9ca64639cfb6126f95045b41e1a431a")
        let cms = try CMS.EnvelopedData(berEncoded: sample)
        #expect(cms.version == 2)
        #expect(cms.recipients.count == 1)
        let recipient = try #require(cms.recipients.first)
        #expect(recipient.version == 2)
        guard case .subjectKeyIdentifier(let ski) = recipient.identifier else {
            Issue.record("expected a subjectKeyIdentifier recipient")
            return
        }
        #expect(ski.count == 32)
        #expect(recipient.padding == .oaepSHA256)
        #expect(recipient.encryptedKey.count == 256)
        #expect(Hex.encode(Array(recipient.encryptedKey.prefix(8))) == "a0614593a030ee33")
        #expect(Hex.encode(cms.initializationVector) == "688c6d5f7f31b0fecedf09f2e7c99ac9")
        #expect(
            Hex.encode(cms.encryptedContent)
                == "70e5caaffd49ad24efe15bf903be9d19895b777d269b57b025f6f67e7ef93f94464515f2ebe034ea0b7621a1ff19292e")
        // Its private key was never published: any key of ours must fail cleanly.
        expectCryptoError(.decryptionFailure) { try cms.decrypt(with: try sharedRSAKey.get()) }
    }

    @Test func everyTruncationOfTheSampleIsATypedError() throws {
        let sample = try Self.kmsSample()
        for length in 0..<sample.count {
            expectCryptoError(.invalidCMS) { try CMS.EnvelopedData(berEncoded: Array(sample.prefix(length))) }
        }
        expectCryptoError(.invalidCMS) { try CMS.EnvelopedData(berEncoded: sample + [0]) }
    }

    @Test func everySingleByteCorruptionIsHandled() throws {
        // Deterministic mutation sweep: each result is a parse or a CryptoError, never a crash.
        let sample = try Self.kmsSample()
        var parsed = 0, rejected = 0
        for index in sample.indices {
            for mask: UInt8 in [0x01, 0x80, 0xff] {
                var mutated = sample
                mutated[index] ^= mask
                do {
                    _ = try CMS.EnvelopedData(berEncoded: mutated)
                    parsed += 1
                } catch is CryptoError {
                    rejected += 1
                } catch {
                    Issue.record("non-CryptoError \(error)")
                }
            }
        }
        #expect(rejected > 0 && parsed > 0)
    }

    @Test func hostileStructuresAreTypedErrors() throws {
        expectCryptoError(.invalidCMS) { try CMS.EnvelopedData(berEncoded: []) }
        expectCryptoError(.invalidCMS) { try CMS.EnvelopedData(berEncoded: utf8("not BER at all")) }
        // Deep nesting of indefinite-length SEQUENCEs hits the depth limit, not the stack.
        expectCryptoError(.invalidCMS) {
            try CMS.EnvelopedData(berEncoded: Array(repeating: [0x30, 0x80], count: 10_000).flatMap { $0 })
        }
        // A length far beyond the input.
        expectCryptoError(.invalidCMS) { try CMS.EnvelopedData(berEncoded: [0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x00]) }
        // A ContentInfo of another type (signedData).
        let signedData = DER.sequence(
            DER.oid([0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]), DER.contextConstructed(0, DER.sequence()))
        expectCryptoError(.invalidCMS) { try CMS.EnvelopedData(berEncoded: signedData) }
        // A primitive element with an indefinite length.
        expectCryptoError(.invalidCMS) { try CMS.EnvelopedData(berEncoded: [0x04, 0x80, 0x00, 0x00]) }
    }
}

@Suite struct CMSRoundTripTests {
    @Test func ourEnvelopeOpensWithTheRightKeyOnly() throws {
        let key = try sharedRSAKey.get()
        let dataKey = try SecureBytes(randomCount: 32)
        let ski = SHA256.hash(try key.publicKey.derRepresentation)
        let der = try CMS.EnvelopedData.encrypt(dataKey, recipientKey: key.publicKey, subjectKeyIdentifier: ski)
        let parsed = try CMS.EnvelopedData(berEncoded: der)
        #expect(parsed.version == 2)
        #expect(parsed.recipients.first?.identifier == .subjectKeyIdentifier(ski))
        #expect(parsed.recipients.first?.padding == .oaepSHA256)
        #expect(parsed.encryptedContent.count == 48)
        #expect(try parsed.decrypt(with: key) == dataKey)
        expectCryptoError(.decryptionFailure) { try parsed.decrypt(with: try RSA.PrivateKey(bits: 2048)) }
        // Same shape as KMS: the same number of nesting levels and field layout as the sample.
        let sample = try CMS.EnvelopedData(berEncoded: CMSParsingTests.kmsSample())
        #expect(sample.recipients[0].version == parsed.recipients[0].version)
    }

    @Test func certificateRecipientsRoundTrip() throws {
        let chain = try CertificateIssuanceTests.shared.get()
        let key = try sharedRSAKey.get()
        let cert = try Certificate.issue(
            subject: DistinguishedName(["CN": "recipient"]), subjectPublicKeyInfo: key.publicKey.derRepresentation,
            serialNumber: [0x42], notBefore: IssuedChain.now, notAfter: IssuedChain.now.addingTimeInterval(60),
            issuer: .certificate(chain.intermediate, key: .p384(chain.intermediateKey)), basicConstraints: .endEntity,
            keyUsage: [.keyEncipherment])
        let content = SecureBytes(utf8("a few bytes of content"))
        let der = try CMS.EnvelopedData.encrypt(content, recipientCertificate: cert)
        let parsed = try CMS.EnvelopedData(berEncoded: der)
        #expect(parsed.version == 0)
        guard case .issuerAndSerialNumber(_, let serial) = parsed.recipients.first?.identifier else {
            Issue.record("expected issuerAndSerialNumber")
            return
        }
        #expect(serial == [0x42])
        #expect(try parsed.decrypt(with: key) == content)
        expectCryptoError(.wrongKeyType) { try CMS.EnvelopedData.encrypt(content, recipientCertificate: chain.leaf) }
    }
}

@Suite struct CMSOpenSSLInteropTests {
    /// An RSA key and self-signed certificate made by the openssl CLI in `dir`.
    private func makeRecipient(in dir: URL) throws -> (RSA.PrivateKey, Certificate) {
        try OpenSSLCLI.run(
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-subj", "/CN=enclave",
             "-days", "2"], in: dir)
        return (
            try RSA.PrivateKey(pemRepresentation: try dir.appendingPathComponent("key.pem").readText()),
            try Certificate(pemEncoded: try dir.appendingPathComponent("cert.pem").readText())
        )
    }

    private let oaepOptions = ["-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256", "-keyopt", "rsa_mgf1_md:sha256"]

    @Test func opensslEncryptsWeDecrypt() throws {
        try withTemporaryDirectory { dir in
            let (key, _) = try makeRecipient(in: dir)
            let content = try SecureRandom.bytes(count: 32)
            try dir.appendingPathComponent("plain").write(content)
            // Issuer-and-serial recipient, DER; and subject-key-identifier recipient, streamed BER
            // with indefinite lengths (the KMS shape).
            let variants: [[String]] = [["-outform", "DER"], ["-keyid", "-stream", "-outform", "DER"]]
            for extra in variants {
                try OpenSSLCLI.run(
                    ["cms", "-encrypt", "-binary", "-aes-256-cbc", "-in", "plain", "-out", "env", "-recip", "cert.pem"]
                        + oaepOptions + extra, in: dir)
                let bytes = try dir.appendingPathComponent("env").readBytes()
                let parsed = try CMS.EnvelopedData(berEncoded: bytes)
                #expect(parsed.recipients.first?.padding == .oaepSHA256)
                if extra.contains("-keyid") {
                    guard case .subjectKeyIdentifier = parsed.recipients.first?.identifier else {
                        Issue.record("openssl -keyid should name the recipient by subject key identifier")
                        continue
                    }
                    #expect(bytes.contains(0x80))  // indefinite lengths present
                }
                #expect(try parsed.decrypt(with: key).copyBytes() == content, "\(extra)")
            }
        }
    }

    @Test func weEncryptOpensslDecrypts() throws {
        try withTemporaryDirectory { dir in
            let (key, cert) = try makeRecipient(in: dir)
            let content = try SecureRandom.bytes(count: 100)
            // Subject key identifier recipient (as KMS does): openssl tries the key on every recipient.
            let ski = try #require(cert.subjectKeyIdentifier)
            let bySKI = try CMS.EnvelopedData.encrypt(SecureBytes(content), recipientKey: key.publicKey, subjectKeyIdentifier: ski)
            try dir.appendingPathComponent("ski.der").write(bySKI)
            try OpenSSLCLI.run(["cms", "-decrypt", "-inform", "DER", "-in", "ski.der", "-inkey", "key.pem", "-out", "out1"], in: dir)
            #expect(try dir.appendingPathComponent("out1").readBytes() == content)
            try OpenSSLCLI.run(
                ["cms", "-decrypt", "-inform", "DER", "-in", "ski.der", "-inkey", "key.pem", "-recip", "cert.pem", "-out", "out2"],
                in: dir)
            #expect(try dir.appendingPathComponent("out2").readBytes() == content)
            // Issuer-and-serial recipient, matched by openssl against the certificate.
            let byCert = try CMS.EnvelopedData.encrypt(SecureBytes(content), recipientCertificate: cert)
            try dir.appendingPathComponent("cert.der").write(byCert)
            try OpenSSLCLI.run(
                ["cms", "-decrypt", "-inform", "DER", "-in", "cert.der", "-inkey", "key.pem", "-recip", "cert.pem", "-out", "out3"],
                in: dir)
            #expect(try dir.appendingPathComponent("out3").readBytes() == content)
            // openssl's own view of our structure.
            let printed = try OpenSSLCLI.run(["cms", "-cmsout", "-print", "-inform", "DER", "-in", "ski.der"], in: dir).stdoutText
            #expect(printed.contains("rsaesOaep"))
            #expect(printed.contains("sha256"))
            #expect(printed.contains("aes-256-cbc"))
        }
    }
}
