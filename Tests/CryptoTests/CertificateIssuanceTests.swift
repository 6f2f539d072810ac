import Foundation
import Testing

@testable import Crypto

/// A root → intermediate → leaf P-384 chain issued in code, shaped like AWS Nitro's.
struct IssuedChain {
    let rootKey: P384.Signing.PrivateKey
    let intermediateKey: P384.Signing.PrivateKey
    let leafKey: P384.Signing.PrivateKey
    let root: Certificate
    let intermediate: Certificate
    let leaf: Certificate
    static let now = Date(timeIntervalSince1970: 1_767_472_867)  // fixed validation time

    static func make() throws -> IssuedChain {
        let rootKey = try P384.Signing.PrivateKey()
        let intermediateKey = try P384.Signing.PrivateKey()
        let leafKey = try P384.Signing.PrivateKey()
        let root = try Certificate.issue(
            subject: DistinguishedName(["C": "US", "O": "Cleanroom", "OU": "Development", "CN": "cleanroom-dev-root"]),
            subjectPublicKeyInfo: rootKey.publicKey.derRepresentation, serialNumber: [0x01],
            notBefore: now.addingTimeInterval(-86400), notAfter: now.addingTimeInterval(30 * 365 * 86400),
            issuer: .selfSigned(.p384(rootKey)), basicConstraints: .certificateAuthority(pathLength: nil),
            keyUsage: [.digitalSignature, .keyCertSign, .cRLSign])
        let intermediate = try Certificate.issue(
            subject: DistinguishedName(["C": "US", "O": "Cleanroom", "CN": "cleanroom-dev-intermediate"]),
            subjectPublicKeyInfo: intermediateKey.publicKey.derRepresentation, serialNumber: [0x7f, 0xff, 0x01],
            notBefore: now.addingTimeInterval(-3600), notAfter: now.addingTimeInterval(30 * 86400),
            issuer: .certificate(root, key: .p384(rootKey)), basicConstraints: .certificateAuthority(pathLength: 0),
            keyUsage: [.digitalSignature, .keyCertSign, .cRLSign])
        let leaf = try Certificate.issue(
            subject: DistinguishedName(["C": "US", "O": "Cleanroom", "CN": "i-0123456789abcdef0-enc0123456789abcdef"]),
            subjectPublicKeyInfo: leafKey.publicKey.derRepresentation, serialNumber: [0x80] + [UInt8](repeating: 0x11, count: 15),
            notBefore: now.addingTimeInterval(-600), notAfter: now.addingTimeInterval(3 * 3600),
            issuer: .certificate(intermediate, key: .p384(intermediateKey)), basicConstraints: .endEntity,
            keyUsage: [.digitalSignature])
        return IssuedChain(
            rootKey: rootKey, intermediateKey: intermediateKey, leafKey: leafKey, root: root, intermediate: intermediate,
            leaf: leaf)
    }
}

@Suite struct CertificateIssuanceTests {
    static let shared = Result { try IssuedChain.make() }

    @Test func issuedChainHasTheRequestedFieldsAndVerifies() throws {
        let c = try Self.shared.get()
        #expect(c.root.subject.description == "CN=cleanroom-dev-root,OU=Development,O=Cleanroom,C=US")
        #expect(c.root.isSelfIssued && c.root.isSignedBy(c.root))
        #expect(c.root.basicConstraints == .init(isCertificateAuthority: true, pathLengthConstraint: nil, isCritical: true))
        #expect(c.intermediate.basicConstraints?.pathLengthConstraint == 0)
        #expect(c.intermediate.issuer == c.root.subject)
        #expect(c.intermediate.serialNumberHex == "7fff01")
        #expect(c.leaf.serialNumber == [0x80] + [UInt8](repeating: 0x11, count: 15))
        #expect(c.leaf.basicConstraints?.isCertificateAuthority == false)
        #expect(c.leaf.keyUsage == [.digitalSignature])
        #expect(c.leaf.notBefore == IssuedChain.now.addingTimeInterval(-600))
        #expect(c.leaf.notAfter == IssuedChain.now.addingTimeInterval(3 * 3600))
        #expect(c.leaf.signatureAlgorithm == "ecdsa-with-SHA384")
        #expect(c.leaf.subjectKeyIdentifier?.count == 20)
        guard case .p384(let leafPublic) = c.leaf.publicKey else {
            Issue.record("leaf key should be P-384")
            return
        }
        #expect(try leafPublic.derRepresentation == c.leafKey.publicKey.derRepresentation)
        let verified = try CertificateChainVerifier(roots: [c.root]).verify(
            leaf: c.leaf, intermediates: [c.intermediate], at: IssuedChain.now)
        #expect(verified.certificates == [c.leaf, c.intermediate, c.root])
        // Three hours and a bit later the leaf has expired, as Nitro leaves do.
        expectCryptoError(.chainVerificationFailure) {
            try CertificateChainVerifier(roots: [c.root]).verify(
                leaf: c.leaf, intermediates: [c.intermediate], at: IssuedChain.now.addingTimeInterval(3 * 3600 + 1))
        }
    }

    @Test func opensslVerifiesAndPrintsOurChain() throws {
        let c = try Self.shared.get()
        try withTemporaryDirectory { dir in
            try dir.appendingPathComponent("root.pem").write(c.root.pemRepresentation)
            try dir.appendingPathComponent("int.pem").write(c.intermediate.pemRepresentation)
            try dir.appendingPathComponent("leaf.der").write(c.leaf.derRepresentation)
            try OpenSSLCLI.run(["x509", "-inform", "DER", "-in", "leaf.der", "-out", "leaf.pem"], in: dir)
            let result = try OpenSSLCLI.run(
                ["verify", "-CAfile", "root.pem", "-untrusted", "int.pem", "-attime", "\(Int(IssuedChain.now.timeIntervalSince1970))", "leaf.pem"],
                in: dir)
            #expect(result.stdoutText.contains("leaf.pem: OK"))
            let text = try OpenSSLCLI.run(["x509", "-in", "int.pem", "-noout", "-text"], in: dir).stdoutText
            #expect(text.contains("CA:TRUE, pathlen:0"))
            #expect(text.contains("Certificate Sign, CRL Sign"))
            #expect(text.contains("X509v3 Authority Key Identifier"))
        }
    }

    @Test func pathLengthAndCAFlagsAreEnforced() throws {
        let c = try Self.shared.get()
        // The intermediate has pathlen 0, so a CA under it may not issue a valid leaf.
        let subCAKey = try P256.Signing.PrivateKey()
        let subCA = try Certificate.issue(
            subject: DistinguishedName(["CN": "sub CA"]), subjectPublicKeyInfo: subCAKey.publicKey.derRepresentation,
            serialNumber: [9], notBefore: IssuedChain.now.addingTimeInterval(-60), notAfter: IssuedChain.now.addingTimeInterval(3600),
            issuer: .certificate(c.intermediate, key: .p384(c.intermediateKey)),
            basicConstraints: .certificateAuthority(pathLength: nil), keyUsage: [.keyCertSign], signatureHash: .sha256)
        #expect(subCA.signatureAlgorithm == "ecdsa-with-SHA256")
        let deepLeaf = try Certificate.issue(
            subject: DistinguishedName(["CN": "too deep"]), subjectPublicKeyInfo: try P256.Signing.PrivateKey().publicKey.derRepresentation,
            serialNumber: [10], notBefore: IssuedChain.now.addingTimeInterval(-60), notAfter: IssuedChain.now.addingTimeInterval(3600),
            issuer: .certificate(subCA, key: .p256(subCAKey)), basicConstraints: .endEntity, keyUsage: [.digitalSignature])
        do {
            _ = try CertificateChainVerifier(roots: [c.root]).verify(
                leaf: deepLeaf, intermediates: [subCA, c.intermediate], at: IssuedChain.now)
            Issue.record("a chain that breaks pathlen verified")
        } catch let error as CryptoError {
            #expect(error.code == .chainVerificationFailure)
            #expect(error.message.contains("path length constraint exceeded"), "\(error)")
            #expect(error.chainFailure?.reason == .pathLengthExceeded)
        }
    }

    @Test func rsaSubjectKeysAndSHA256SignaturesWork() throws {
        let c = try Self.shared.get()
        let rsa = try sharedRSAKey.get()
        let cert = try Certificate.issue(
            subject: DistinguishedName(["CN": "enclave kms key"]), subjectPublicKeyInfo: rsa.publicKey.derRepresentation,
            serialNumber: [1, 2, 3], notBefore: IssuedChain.now, notAfter: IssuedChain.now.addingTimeInterval(60),
            issuer: .certificate(c.intermediate, key: .p384(c.intermediateKey)), basicConstraints: .absent,
            keyUsage: [.keyEncipherment], signatureHash: .sha256)
        guard case .rsa(let key) = cert.publicKey else {
            Issue.record("expected an RSA subject key")
            return
        }
        #expect(try key.derRepresentation == rsa.publicKey.derRepresentation)
        #expect(cert.basicConstraints == nil)
        #expect(cert.keyUsage == [.keyEncipherment])
        _ = try CertificateChainVerifier(roots: [c.root]).verify(leaf: cert, intermediates: [c.intermediate], at: IssuedChain.now)
    }

    @Test func badIssuanceRequestsAreTypedErrors() throws {
        let c = try Self.shared.get()
        let spki = try c.leafKey.publicKey.derRepresentation
        let name = DistinguishedName(["CN": "x"])
        let t = IssuedChain.now
        expectCryptoError(.invalidArgument) {
            try Certificate.issue(
                subject: name, subjectPublicKeyInfo: spki, serialNumber: [1], notBefore: t, notAfter: t,
                issuer: .selfSigned(.p384(c.leafKey)), basicConstraints: .endEntity, keyUsage: nil)
        }
        expectCryptoError(.invalidArgument) {
            try Certificate.issue(
                subject: name, subjectPublicKeyInfo: spki, serialNumber: [0, 0], notBefore: t, notAfter: t + 1,
                issuer: .selfSigned(.p384(c.leafKey)), basicConstraints: .endEntity, keyUsage: nil)
        }
        expectCryptoError(.invalidArgument) {  // issuer key does not belong to the issuer certificate
            try Certificate.issue(
                subject: name, subjectPublicKeyInfo: spki, serialNumber: [1], notBefore: t, notAfter: t + 1,
                issuer: .certificate(c.root, key: .p384(c.intermediateKey)), basicConstraints: .endEntity, keyUsage: nil)
        }
        expectCryptoError(.invalidArgument) {  // self-signed with someone else's key
            try Certificate.issue(
                subject: name, subjectPublicKeyInfo: spki, serialNumber: [1], notBefore: t, notAfter: t + 1,
                issuer: .selfSigned(.p384(c.rootKey)), basicConstraints: .endEntity, keyUsage: nil)
        }
        expectCryptoError(.invalidKey) {
            try Certificate.issue(
                subject: name, subjectPublicKeyInfo: [0x30, 0x01], serialNumber: [1], notBefore: t, notAfter: t + 1,
                issuer: .selfSigned(.p384(c.rootKey)), basicConstraints: .endEntity, keyUsage: nil)
        }
    }
}
