import Attestation
import Crypto
import Foundation
import TestSupport
import Testing
@testable import Server

/// A minimal valid policy with the given measurement sets.
func policyJSON(measurements: [[String: String]], allowDebug: Bool) -> [UInt8] {
    let policy: [String: Any] = [
        "version": 1, "name": "gate test",
        "parties": [["id": "alpha"]],
        "datasets": [["id": "a", "owner": "alpha", "columns": [["name": "x", "type": "float"]]]],
        "join": ["type": "union"],
        "training": ["algorithm": "logistic_regression", "label": "x", "features": ["x"],
                     "validation": ["fraction": 0.2, "seed": 1]],
        "enclave": ["measurements": measurements, "allowDebug": allowDebug],
        "outputs": [["recipient": "alpha", "artifacts": ["metrics"]]],
        "constraints": ["expiresAt": "2099-01-01T00:00:00Z", "maxRuns": 1],
    ]
    return Array(try! JSONSerialization.data(withJSONObject: policy, options: [.sortedKeys]))
}

/// AWS's real debug-mode document from ../shared/vectors/nitro and its expected values.
struct DebugDocument {
    let bytes: [UInt8]
    let nonce: [UInt8]
    let userData: [UInt8]
    let pcrs: [String: String]
    let time: UInt64

    init() throws {
        let expected = try JSONSerialization.jsonObject(
            with: Data(contentsOf: TestEnvironment.vector("nitro/expected.json"))) as! [String: Any]
        let entry = (expected["documents"] as! [[String: Any]]).first { ($0["file"] as! String).contains("debug") }!
        bytes = Array(try Data(contentsOf: TestEnvironment.vector("nitro/\(entry["file"] as! String)")))
        nonce = Hex.decode(entry["nonce_hex"] as! String)!
        userData = Hex.decode(entry["user_data_hex"] as! String)!
        pcrs = entry["pcrs"] as! [String: String]
        time = UInt64(entry["verify_at_epoch_seconds"] as! Int)
    }

    var measurement: [String: String] { ["pcr0": pcrs["0"]!, "pcr1": pcrs["1"]!, "pcr2": pcrs["2"]!] }
}

@Suite struct VerifyingAttestationGateTests {
    func gate(_ document: DebugDocument) throws -> VerifyingAttestationGate {
        let pem = try String(contentsOf: TestEnvironment.vector("nitro/aws-nitro-enclaves-root-g1.pem"), encoding: .utf8)
        let root = try TrustedRoot(pem: pem)
        return VerifyingAttestationGate(
            verifier: AttestationVerifier(trustedRoots: [root], at: UnixTime(seconds: document.time)))
    }

    func refusal(_ body: () throws(JobFailure) -> AttestedEnclave) -> JobFailure? {
        do {
            _ = try body()
            return nil
        } catch {
            return error
        }
    }

    @Test func debugEnclaveIsRefusedUnlessThePolicyAllowsDebug() throws {
        let doc = try DebugDocument()
        let gate = try gate(doc)
        let strict = policyJSON(measurements: [doc.measurement], allowDebug: false)
        #expect(refusal { () throws(JobFailure) in
            try gate.verify(document: doc.bytes, nonce: doc.nonce, expectedUserData: doc.userData, policy: strict)
        }?.code == "attestation.debug_mode_refused")
    }

    @Test func everyCheckPassesUpToTheMissingPublicKey() throws {
        // This real document carries no public_key, so it can never get keys; every earlier check
        // (signature, chain, debug allowed, PCRs, freshness, nonce, user data) passes first.
        let doc = try DebugDocument()
        let gate = try gate(doc)
        let lenient = policyJSON(measurements: [doc.measurement], allowDebug: true)
        let failure = refusal { () throws(JobFailure) in
            try gate.verify(document: doc.bytes, nonce: doc.nonce, expectedUserData: doc.userData, policy: lenient)
        }
        #expect(failure?.code == "attestation.public_key_mismatch")
    }

    @Test func foreignNonceUserDataOrMeasurementIsRefused() throws {
        let doc = try DebugDocument()
        let gate = try gate(doc)
        let lenient = policyJSON(measurements: [doc.measurement], allowDebug: true)
        #expect(refusal { () throws(JobFailure) in
            try gate.verify(document: doc.bytes, nonce: Array(repeating: 1, count: 32), expectedUserData: doc.userData, policy: lenient)
        }?.code == "attestation.nonce_mismatch")
        #expect(refusal { () throws(JobFailure) in
            try gate.verify(document: doc.bytes, nonce: doc.nonce, expectedUserData: Array(repeating: 2, count: 48), policy: lenient)
        }?.code == "attestation.user_data_mismatch")
        var other = doc.measurement
        other["pcr0"] = String(repeating: "ab", count: 48)
        let elsewhere = policyJSON(measurements: [other], allowDebug: true)
        #expect(refusal { () throws(JobFailure) in
            try gate.verify(document: doc.bytes, nonce: doc.nonce, expectedUserData: doc.userData, policy: elsewhere)
        }?.code == "attestation.pcr_mismatch")
    }

    @Test func tamperedDocumentIsRefused() throws {
        let doc = try DebugDocument()
        let gate = try gate(doc)
        var bytes = doc.bytes
        bytes[bytes.count - 10] ^= 0x01  // inside the signature
        let lenient = policyJSON(measurements: [doc.measurement], allowDebug: true)
        let failure = refusal { () throws(JobFailure) in
            try gate.verify(document: bytes, nonce: doc.nonce, expectedUserData: doc.userData, policy: lenient)
        }
        #expect(failure != nil)
        #expect(failure?.code.hasPrefix("cose.") == true || failure?.code.hasPrefix("attestation.") == true)
    }
}
