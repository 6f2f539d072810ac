import Foundation
import TestSupport
import Testing

@testable import Crypto

@Suite struct CertificateParsingTests {
    static func nitroRootPEM() throws -> String {
        String(decoding: try vectorBytes("nitro/aws-nitro-enclaves-root-g1.pem"), as: UTF8.self)
    }

    @Test func awsNitroRootG1FieldsMatchThePublishedValues() throws {
        let root = try Certificate(pemEncoded: Self.nitroRootPEM())
        #expect(Hex.encode(SHA256.hash(root.derRepresentation)) == "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b")
        #expect(root.subject.description == "CN=aws.nitro-enclaves,OU=AWS,O=Amazon,C=US")
        #expect(root.issuer == root.subject)
        #expect(root.subject.commonName == "aws.nitro-enclaves")
        #expect(root.subject.attributes.map(\.type) == ["C", "O", "OU", "CN"])
        #expect(root.serialNumberHex == "f93175681b90afe11d46ccb4e4e7f856")
        #expect(root.notBefore == ISO8601DateFormatter().date(from: "2019-10-28T13:28:05Z"))
        #expect(root.notAfter == ISO8601DateFormatter().date(from: "2049-10-28T14:28:05Z"))
        #expect(root.version == 3)
        #expect(root.signatureAlgorithm == "ecdsa-with-SHA384")
        #expect(root.basicConstraints == .init(isCertificateAuthority: true, pathLengthConstraint: nil, isCritical: true))
        #expect(root.keyUsage == [.digitalSignature, .keyCertSign, .cRLSign])
        #expect(root.subjectKeyIdentifier.map(Hex.encode) == "9025b50dd90547e796c396fa729dcf99a9df4b96")
        guard case .p384(let key) = root.publicKey else {
            Issue.record("the Nitro root key should be P-384")
            return
        }
        #expect(Hex.encode(Array(try key.x963Representation.prefix(8))) == "04fc0254eba608c1")
        #expect(root.isSignedBy(root))
        #expect(root.isSelfIssued)
        // Round trips.
        #expect(try Certificate(derEncoded: root.derRepresentation) == root)
        #expect(try Certificate(pemEncoded: root.pemRepresentation) == root)
        // It verifies as its own chain at its own notBefore + 1 day.
        let chain = try CertificateChainVerifier(roots: [root]).verify(
            leaf: root, intermediates: [], at: root.notBefore.addingTimeInterval(86400))
        #expect(chain.certificates == [root])
    }

    @Test func certificatesWithKeysWeDoNotUseStillParse() throws {
        try withTemporaryDirectory { dir in
            try OpenSSLCLI.run(
                ["req", "-x509", "-newkey", "rsa:1024", "-nodes", "-keyout", "k.pem", "-out", "small.pem", "-subj", "/CN=small", "-days", "1"],
                in: dir)
            try OpenSSLCLI.run(
                ["req", "-x509", "-newkey", "ed25519", "-nodes", "-keyout", "e.pem", "-out", "ed.pem", "-subj", "/CN=ed", "-days", "1"],
                in: dir)
            for name in ["small.pem", "ed.pem"] {
                let cert = try Certificate(pemEncoded: try dir.appendingPathComponent(name).readText())
                guard case .other(let spki) = cert.publicKey else {
                    Issue.record("\(name): expected .other")
                    continue
                }
                #expect(spki == cert.subjectPublicKeyInfo)
                #expect(cert.isSignedBy(cert))
            }
        }
    }

    @Test func hostileCertificateInputsGiveTypedErrors() throws {
        let der = try Certificate(pemEncoded: Self.nitroRootPEM()).derRepresentation
        for length in [0, 1, 4, 100, der.count - 1] {
            expectCryptoError(.invalidCertificate) { try Certificate(derEncoded: Array(der.prefix(length))) }
        }
        expectCryptoError(.invalidCertificate) { try Certificate(derEncoded: der + [0x00]) }
        var flipped = der
        flipped[1] ^= 0xff  // wrong outer length
        expectCryptoError(.invalidCertificate) { try Certificate(derEncoded: flipped) }
        expectCryptoError(.invalidPEM) { try Certificate(pemEncoded: "garbage") }
        expectCryptoError(.invalidPEM) { try Certificate(pemEncoded: PEM.encode(label: "PRIVATE KEY", der: der)) }
        let rootPEM = try Self.nitroRootPEM()
        expectCryptoError(.invalidPEM) { try Certificate(pemEncoded: rootPEM + rootPEM) }
        expectCryptoError(.invalidPEM) {
            try Certificate(pemEncoded: "-----BEGIN CERTIFICATE-----\nAAAA*AAA\n-----END CERTIFICATE-----\n")
        }
        #expect(try Certificate.parseMultiplePEM(rootPEM + "\n" + rootPEM).count == 2)
    }
}

/// A root → intermediate → leaf P-384 chain made by the `openssl` command line tool.
struct OpenSSLMadeChain {
    let root: Certificate
    let intermediate: Certificate
    let leaf: Certificate
    /// A certificate signed by the leaf's key although the leaf is not a CA.
    let signedByLeaf: Certificate
    let otherRoot: Certificate

    static func make() throws -> OpenSSLMadeChain {
        try withTemporaryDirectory { dir in
            func run(_ args: [String]) throws { try OpenSSLCLI.run(args, in: dir) }
            func newKey(_ name: String) throws {
                try run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", name])
            }
            func selfSigned(_ name: String, _ cn: String) throws {
                try newKey("\(name).key")
                try run([
                    "req", "-x509", "-new", "-key", "\(name).key", "-subj", "/C=US/O=Test/CN=\(cn)", "-days", "3650",
                    "-sha384", "-set_serial", "1", "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "\(name).pem",
                ])
            }
            func issue(_ name: String, _ cn: String, by issuer: String, ext: String, days: String, serial: String) throws {
                try newKey("\(name).key")
                try run(["req", "-new", "-key", "\(name).key", "-subj", "/C=US/O=Test/CN=\(cn)", "-out", "\(name).csr"])
                try dir.appendingPathComponent("\(name).ext").write(ext)
                try run([
                    "x509", "-req", "-in", "\(name).csr", "-CA", "\(issuer).pem", "-CAkey", "\(issuer).key",
                    "-set_serial", serial, "-days", days, "-sha384", "-extfile", "\(name).ext", "-out", "\(name).pem",
                ])
            }
            try selfSigned("root", "Test Root")
            try selfSigned("other", "Other Root")
            try issue(
                "int", "Test Intermediate", by: "root",
                ext: "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n", days: "365",
                serial: "2")
            try issue(
                "leaf", "Test Leaf", by: "int", ext: "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
                days: "1", serial: "3")
            try issue(
                "bad", "Under Leaf", by: "leaf", ext: "keyUsage=critical,digitalSignature\n", days: "1", serial: "4")
            func load(_ name: String) throws -> Certificate {
                try Certificate(pemEncoded: dir.appendingPathComponent("\(name).pem").readText())
            }
            return OpenSSLMadeChain(
                root: try load("root"), intermediate: try load("int"), leaf: try load("leaf"),
                signedByLeaf: try load("bad"), otherRoot: try load("other"))
        }
    }
}

@Suite struct CertificateChainVerifierTests {
    /// Made once per test run and shared by the tests of this suite.
    static let shared = Result { try OpenSSLMadeChain.make() }
    let chain: OpenSSLMadeChain
    init() throws { chain = try Self.shared.get() }

    var insideValidity: Date { chain.leaf.notBefore.addingTimeInterval(3600) }

    @Test func opensslMadeChainVerifiesAtAGivenTime() throws {
        let verified = try CertificateChainVerifier(roots: [chain.root]).verify(
            leaf: chain.leaf, intermediates: [chain.intermediate], at: insideValidity)
        #expect(verified.certificates == [chain.leaf, chain.intermediate, chain.root])
        #expect(verified.leaf == chain.leaf)
        #expect(verified.root == chain.root)
        #expect(chain.leaf.subject.description == "CN=Test Leaf,O=Test,C=US")
        #expect(chain.leaf.issuer == chain.intermediate.subject)
        #expect(chain.leaf.serialNumber == [3])
        #expect(chain.intermediate.basicConstraints?.pathLengthConstraint == 0)
        #expect(chain.leaf.basicConstraints?.isCertificateAuthority == false)
        #expect(chain.leaf.keyUsage == [.digitalSignature])
        // Several roots, the right one among them.
        _ = try CertificateChainVerifier(roots: [chain.otherRoot, chain.root]).verify(
            leaf: chain.leaf, intermediates: [chain.intermediate], at: insideValidity)
    }

    private func expectFailure(
        _ verifier: CertificateChainVerifier, leaf: Certificate, intermediates: [Certificate], at time: Date,
        reason: String, _ typed: ChainFailure.Reason?, depth: Int? = 0, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        do {
            _ = try verifier.verify(leaf: leaf, intermediates: intermediates, at: time)
            Issue.record("chain verified but should fail with \(reason)", sourceLocation: sourceLocation)
        } catch let error as CryptoError {
            #expect(error.code == .chainVerificationFailure, sourceLocation: sourceLocation)
            #expect(error.message.contains(reason), "\(error)", sourceLocation: sourceLocation)
            #expect(error.chainFailure?.reason == typed, "\(error)", sourceLocation: sourceLocation)
            if typed != nil, let depth { #expect(error.chainFailure?.depth == depth, sourceLocation: sourceLocation) }
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func expiredLeafIsRejected() {
        expectFailure(
            CertificateChainVerifier(roots: [chain.root]), leaf: chain.leaf, intermediates: [chain.intermediate],
            at: chain.leaf.notAfter.addingTimeInterval(60), reason: "certificate has expired", .expired)
    }

    @Test func timeBeforeNotBeforeIsRejected() {
        expectFailure(
            CertificateChainVerifier(roots: [chain.root]), leaf: chain.leaf, intermediates: [chain.intermediate],
            at: chain.leaf.notBefore.addingTimeInterval(-60), reason: "certificate is not yet valid", .notYetValid, depth: nil)
    }

    @Test func wrongRootIsRejected() throws {
        expectFailure(
            CertificateChainVerifier(roots: [chain.otherRoot]), leaf: chain.leaf, intermediates: [chain.intermediate],
            at: insideValidity, reason: "unable to get local issuer certificate", .untrusted, depth: 1)
        let nitroRoot = try Certificate(pemEncoded: CertificateParsingTests.nitroRootPEM())
        expectFailure(
            CertificateChainVerifier(roots: [nitroRoot]), leaf: chain.leaf,
            intermediates: [chain.intermediate], at: insideValidity, reason: "unable to get local issuer certificate", .untrusted, depth: 1)
    }

    @Test func missingIntermediateIsRejected() {
        expectFailure(
            CertificateChainVerifier(roots: [chain.root]), leaf: chain.leaf, intermediates: [], at: insideValidity,
            reason: "unable to get local issuer certificate", .untrusted, depth: 0)
    }

    @Test func anIntermediateIsNeverATrustAnchor() {
        // Partial chains are off: trusting only the intermediate does not make the leaf valid.
        expectFailure(
            CertificateChainVerifier(roots: [chain.intermediate]), leaf: chain.leaf, intermediates: [],
            at: insideValidity, reason: "unable to get issuer certificate", .untrusted, depth: 1)
    }

    @Test func aNonCAIssuerIsRejected() {
        expectFailure(
            CertificateChainVerifier(roots: [chain.root]), leaf: chain.signedByLeaf,
            intermediates: [chain.leaf, chain.intermediate], at: insideValidity, reason: "invalid CA certificate", .issuerNotAuthorized, depth: 1)
    }

    @Test func noRootsIsAnError() {
        expectFailure(
            CertificateChainVerifier(roots: []), leaf: chain.leaf, intermediates: [chain.intermediate],
            at: insideValidity, reason: "no trusted roots", nil)
    }
}
