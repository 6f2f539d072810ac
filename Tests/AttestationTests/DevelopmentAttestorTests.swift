import Crypto
import Foundation
import TestSupport
import Testing

@testable import Attestation

@Suite struct DevelopmentAttestorTests {
    /// A fixed clock: the CA is issued and documents are made and verified at this time.
    static let now = UnixTime(seconds: 1_790_000_000)
    static let date = Date(timeIntervalSince1970: 1_790_000_000)

    /// A fresh data directory with a fake enclave executable in it.
    private func setUp(executable contents: String = "enclave v1") throws -> (dir: URL, exe: String) {
        let dir = try TestEnvironment.temporaryDirectory("devattest")
        let exe = dir.appendingPathComponent("cleanroom-enclave").path
        try Data(contents.utf8).write(to: URL(fileURLWithPath: exe))
        return (dir, exe)
    }

    private func attestor(_ dir: URL, _ exe: String, pcr1: [UInt8]? = nil) throws -> DevelopmentAttestor {
        let ca = try DevelopmentCA.openOrCreate(dataDirectory: dir.path, now: Self.date)
        return DevelopmentAttestor(
            ca: ca,
            measurements: try DevelopmentMeasurements(executableAt: exe, pcr1: pcr1),
            clock: { Self.now }
        )
    }

    @Test func documentsVerifyWithTheDevelopmentRootAndCarryTheBoundValues() throws {
        let (dir, exe) = try setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pcr1 = [UInt8](repeating: 0x11, count: 48)
        let attestor = try attestor(dir, exe, pcr1: pcr1)
        let publicKey = try RSA.PrivateKey(bits: 2048).publicKey.derRepresentation
        let document = try attestor.attestationDocument(publicKey: publicKey, userData: [1, 2, 3], nonce: [9, 9])
        let verified = try AttestationVerifier(trustedRoots: [attestor.trustedRoot], at: Self.now).verify(
            document,
            expectations: AttestationExpectations(
                allowedPCRSets: [attestor.measurements.pcrSet],
                nonce: [9, 9],
                userData: [1, 2, 3],
                publicKey: publicKey
            )
        )
        #expect(verified.isDevelopment)
        #expect(verified.moduleID.hasPrefix("development-enc"))
        #expect(verified.pcrs.count == 16)
        #expect(verified.pcrs[0] == HashFunction.sha384.hash(Array("enclave v1".utf8)))
        #expect(verified.pcrs[1] == pcr1)
        #expect(verified.pcrs[2] == DevelopmentMeasurements.zero)
        #expect(verified.publicKey == publicKey)
        #expect(verified.chain.certificates.count == 3)
        #expect(verified.timestamp == Self.now.milliseconds)
    }

    @Test func documentsHaveTheNitroWireFormat() throws {
        let (dir, exe) = try setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let document = try attestor(dir, exe).attestationDocument(publicKey: nil, userData: nil, nonce: nil)
        #expect(Array(document.prefix(6)) == [0x84, 0x44, 0xa1, 0x01, 0x38, 0x22])
        let decoded = try AttestationDocument(bytes: document)
        guard case .map(let pairs) = try CBORDecoder.decode(decoded.payload) else { Issue.record("no map"); return }
        #expect(pairs.map { $0.key.textValue! } == AttestationDocument.fieldNames)
        #expect(pairs.suffix(3).allSatisfy { $0.value == .null })
        #expect(decoded.cabundle.count == 2)
        #expect(decoded.cose.unprotectedHeader.isEmpty)
        #expect(decoded.cose.signature.count == 96)
    }

    @Test func documentsFailWithTheAWSRootAndAWSDocumentsFailWithTheDevelopmentRoot() throws {
        let (dir, exe) = try setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let attestor = try attestor(dir, exe)
        let document = try attestor.attestationDocument(publicKey: nil, userData: nil, nonce: nil)
        #expect(throws: AttestationError.self) {
            _ = try AttestationVerifier(trustedRoots: [TrustedRoot.awsNitroEnclavesRootG1], at: Self.now).verify(
                document
            )
        }
        do {
            _ = try AttestationVerifier(trustedRoots: [TrustedRoot.awsNitroEnclavesRootG1], at: Self.now).verify(
                document
            )
        } catch {
            #expect(error.code == .untrustedChain)
        }
        let real = NitroVector.production
        do {
            _ = try AttestationVerifier(trustedRoots: [attestor.trustedRoot], at: real.verifyAt)
                .verify(real.bytes, expectations: AttestationExpectations(maxAgeMilliseconds: nil))
            Issue.record("an AWS document verified under the development root")
        } catch {
            #expect(error.code == .untrustedChain)
        }
    }

    @Test func aChangedExecutableChangesPCR0AndIsRefusedByAPolicyPinnedToTheOld() throws {
        let (dir, exe) = try setUp(executable: "enclave v1")
        defer { try? FileManager.default.removeItem(at: dir) }
        let before = try attestor(dir, exe)
        try Data("enclave v1 with a backdoor".utf8).write(to: URL(fileURLWithPath: exe))
        let after = try attestor(dir, exe)
        #expect(before.measurements.pcr0 != after.measurements.pcr0)
        let document = try after.attestationDocument(publicKey: nil, userData: nil, nonce: nil)
        let verifier = AttestationVerifier(trustedRoots: [after.trustedRoot], at: Self.now)
        do {
            _ = try verifier.verify(
                document,
                expectations: AttestationExpectations(allowedPCRSets: [before.measurements.pcrSet])
            )
            Issue.record("a changed enclave passed the old measurements")
        } catch {
            #expect(error.code == .pcrMismatch)
        }
        #expect(
            try verifier.verify(
                document,
                expectations: AttestationExpectations(allowedPCRSets: [after.measurements.pcrSet])
            )
            .pcrs[0] == after.measurements.pcr0
        )
    }

    @Test func theCAIsCreatedOnceAndKeptAcrossOpens() throws {
        let (dir, exe) = try setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try DevelopmentCA.openOrCreate(dataDirectory: dir.path)
        let second = try DevelopmentCA.openOrCreate(dataDirectory: dir.path)
        #expect(first.root == second.root && first.intermediate == second.intermediate && first.leaf == second.leaf)
        #expect(DevelopmentCA.isDevelopmentName(first.root.subject))
        let keyMode =
            try FileManager.default.attributesOfItem(atPath: first.directory + "/leaf.key")[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
        // A lost leaf is re-issued under the same root; documents still verify.
        try FileManager.default.removeItem(atPath: first.directory + "/leaf.pem")
        let third = try DevelopmentCA.openOrCreate(dataDirectory: dir.path)
        #expect(third.root == first.root && third.leaf != first.leaf)
        let attestor = DevelopmentAttestor(
            ca: third,
            measurements: try DevelopmentMeasurements(executableAt: exe),
            clock: { UnixTime.now() }
        )
        _ = try AttestationVerifier(trustedRoots: [first.trustedRoot]).verify(
            try attestor.attestationDocument(publicKey: nil, userData: nil, nonce: [1])
        )
        // The root loaded from its PEM file is recognised as a development root.
        let pem = try String(contentsOfFile: first.rootCertificatePath, encoding: .utf8)
        #expect(try TrustedRoot(pem: pem).isDevelopment)
    }

    @Test func concurrentFirstStartsAgreeOnOneCA() throws {
        let (dir, _) = try setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let roots = LockedArray()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            if let ca = try? DevelopmentCA.openOrCreate(dataDirectory: dir.path) {
                roots.append(ca.root.derRepresentation)
            }
        }
        #expect(roots.values.count == 4)
        #expect(Set(roots.values).count == 1)
    }

    @Test func aTamperedCAIsRejected() throws {
        let (dir, _) = try setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ca = try DevelopmentCA.openOrCreate(dataDirectory: dir.path)
        // Swap the intermediate for one of another CA.
        let (otherDir, _) = try setUp()
        defer { try? FileManager.default.removeItem(at: otherDir) }
        let other = try DevelopmentCA.openOrCreate(dataDirectory: otherDir.path)
        try other.intermediate.pemRepresentation.write(
            toFile: ca.directory + "/intermediate.pem",
            atomically: true,
            encoding: .utf8
        )
        do {
            _ = try DevelopmentCA.openOrCreate(dataDirectory: dir.path)
            Issue.record("a foreign intermediate was accepted")
        } catch {
            #expect(error.code == .developmentCAInvalid)
        }
        try "not a certificate".write(toFile: ca.directory + "/root.pem", atomically: true, encoding: .utf8)
        do {
            _ = try DevelopmentCA.openOrCreate(dataDirectory: dir.path)
            Issue.record("a garbled root was accepted")
        } catch {
            #expect(error.code == .developmentCAInvalid)
        }
    }

    @Test func aLeafOfAnotherCAClaimingThisCAsBundleIsRejected() throws {
        let (dir, exe) = try setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (otherDir, _) = try setUp()
        defer { try? FileManager.default.removeItem(at: otherDir) }
        let trusted = try attestor(dir, exe)
        let forger = try attestor(otherDir, exe)
        // The forger signs with its own leaf but presents the trusted CA's bundle.
        let payload = AttestationDocument.payloadItem(
            moduleID: trusted.moduleID,
            digest: "SHA384",
            timestamp: Self.now.milliseconds,
            pcrs: trusted.measurements.pcrs,
            certificate: forger.ca.leaf.derRepresentation,
            cabundle: [trusted.ca.root.derRepresentation, trusted.ca.intermediate.derRepresentation],
            publicKey: nil,
            userData: nil,
            nonce: nil
        )
        let forged = try COSESign1.sign(payload: CBOREncoder.encode(payload), with: .p384(forger.ca.leafKey)).encoded()
        do {
            _ = try AttestationVerifier(trustedRoots: [trusted.trustedRoot], at: Self.now).verify(forged)
            Issue.record("a forged document verified")
        } catch {
            #expect(error.code == .untrustedChain)
        }
        // Signed by the trusted leaf, but the signature made over other bytes: signature check.
        let wrongKey = try COSESign1.sign(payload: CBOREncoder.encode(payload), with: .p384(P384.Signing.PrivateKey()))
        do {
            _ = try AttestationVerifier(trustedRoots: [trusted.trustedRoot], at: Self.now).verify(wrongKey.encoded())
            Issue.record("a document signed by a stray key verified")
        } catch {
            #expect(error.code == .signatureInvalid)
        }
    }

    @Test func oversizedRequestsAreRefused() throws {
        let (dir, exe) = try setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let attestor = try attestor(dir, exe)
        #expect(throws: AttestationError.self) {
            _ = try attestor.attestationDocument(
                publicKey: nil,
                userData: [UInt8](repeating: 0, count: 1025),
                nonce: nil
            )
        }
        #expect(throws: AttestationError.self) {
            _ = try attestor.attestationDocument(publicKey: [], userData: nil, nonce: nil)
        }
        #expect(throws: AttestationError.self) { _ = try DevelopmentMeasurements(executableAt: dir.path + "/missing") }
    }
}

private final class LockedArray: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [[UInt8]] = []
    func append(_ value: [UInt8]) { lock.withLock { storage.append(value) } }
    var values: [[UInt8]] { lock.withLock { storage } }
}
