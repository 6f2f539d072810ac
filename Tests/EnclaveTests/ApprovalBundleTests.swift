import CleanRoom
import Crypto
import Foundation
import Testing
@testable import Enclave

@Suite struct ApprovalBundleTests {
    let fixture = try! SessionFixture.shared.get()
    let now: Int64 = 1_800_000_000

    func verify(_ policy: [UInt8], _ bundle: [UInt8]) throws(EnclaveError) -> VerifiedApprovalBundle {
        let parsed = try JobPolicy(bytes: policy)
        return try ApprovalBundle(bytes: bundle).verify(
            against: parsed, policyDigest: try! SessionFixture.digest(policy), now: now)
    }

    func code(_ body: () throws -> Void) -> EnclaveError.Code? {
        do {
            try body()
            return nil
        } catch let error as EnclaveError {
            return error.code
        } catch {
            return EnclaveError.Code(rawValue: "unexpected: \(error)")
        }
    }

    @Test func unanimousBundleVerifiesAndAuthorisesBoundDatasets() throws {
        let policy = try fixture.policy()
        let verified = try verify(policy, try fixture.fullBundle(policy))
        let dataset = try JobPolicy(bytes: policy).datasets[0]
        try verified.authorize(
            dataset: dataset,
            encryptionContext: [
                "cleanroom:dataset": "alpha-data", "cleanroom:party": "alpha", "cleanroom:owner-key": try fixture.alpha.fingerprint,
            ])
    }

    @Test func missingApprovalIsRefused() throws {
        let policy = try fixture.policy()
        let bundle = try fixture.bundle(policy) { [try fixture.alpha.approve($0)] }
        #expect(code { _ = try verify(policy, bundle) } == .approvalMissing)
    }

    @Test func expiredApprovalOrWrongDigestIsRefused() throws {
        let policy = try fixture.policy()
        let expired = try fixture.bundle(policy) { [try fixture.alpha.approve($0, expiresAt: now - 1), try fixture.beta.approve($0)] }
        #expect(code { _ = try verify(policy, expired) } == .approvalInvalid)
        let other = try fixture.policy { $0["name"] = "another policy" }
        #expect(code { _ = try verify(policy, try fixture.fullBundle(other)) } == .approvalInvalid)
    }

    /// A genuine approval by the right key, edited after signing: an operator extending its expiry, or
    /// the signature damaged. Only the signature check can catch these.
    @Test func approvalEditedAfterSigningDoesNotVerify() throws {
        let policy = try fixture.policy()
        for edit in [
            { (entry: inout ApprovalBundle.Entry) in entry.expiresAt += 86_400 },
            { (entry: inout ApprovalBundle.Entry) in
                var signature = Array(Data(base64Encoded: entry.signature)!)
                signature[signature.count - 1] ^= 0x01
                entry.signature = Data(signature).base64EncodedString()
            },
        ] {
            let bundle = try fixture.bundle(policy) { digest in
                var beta = try fixture.beta.approve(digest, expiresAt: now + 3600)
                edit(&beta)
                return [try fixture.alpha.approve(digest), beta]
            }
            do {
                _ = try verify(policy, bundle)
                Issue.record("an approval edited after signing verified")
            } catch {
                #expect(error.code == .approvalInvalid)
                #expect(error.message.contains("does not verify"), "\(error.message)")
            }
        }
    }

    @Test func approvalSignedByAKeyThePolicyDoesNotNameIsRefused() throws {
        // An operator who signs beta's approval with its own key: the policy names beta's real key.
        let policy = try fixture.policy()
        let forger = try P256.Signing.PrivateKey()
        let bundle = try fixture.bundle(policy) { [try fixture.alpha.approve($0), try fixture.beta.approve($0, with: forger)] }
        #expect(code { _ = try verify(policy, bundle) } == .approvalInvalid)
    }

    /// A party the policy names without an approval key (a recipient only, say) could be approved
    /// for by anyone: the operator, with its own key (found in a review).
    @Test func aPartyNamedWithoutAnApprovalKeyIsRefused() throws {
        let policy = try fixture.policy { policy in
            var parties = policy["parties"] as! [[String: Any]]
            parties[1]["signingKey"] = nil
            parties[1]["signingKeyFingerprint"] = nil
            policy["parties"] = parties
        }
        let operatorKey = try P256.Signing.PrivateKey()
        let bundle = try fixture.bundle(policy) { [try fixture.alpha.approve($0), try fixture.beta.approve($0, with: operatorKey)] }
        do {
            _ = try verify(policy, bundle)
            Issue.record("an approval by any key counted for a party named without one")
        } catch {
            #expect(error.code == .policyInvalid)
            #expect(error.message.contains("no approval key for party beta"), "\(error.message)")
        }
    }

    @Test func forgedPartyKeyFailsTheOwnerKeyBinding() throws {
        // The operator replaced beta's key in the policy with its own and approved with it: the
        // approvals verify, but beta's dataset was encrypted naming beta's real key.
        let forger = try P256.Signing.PrivateKey()
        let policy = try fixture.policy { policy in
            var parties = policy["parties"] as! [[String: Any]]
            parties[1]["signingKey"] = try! forger.publicKey.pemRepresentation
            parties[1]["signingKeyFingerprint"] = Hex.encode(SHA256.hash(try! forger.publicKey.derRepresentation))
            policy["parties"] = parties
        }
        let bundle = try fixture.bundle(policy) { [try fixture.alpha.approve($0), try fixture.beta.approve($0, with: forger)] }
        let verified = try verify(policy, bundle)
        let betaData = try JobPolicy(bytes: policy).datasets[1]
        #expect(code {
            try verified.authorize(
                dataset: betaData,
                encryptionContext: [
                    "cleanroom:dataset": "beta-data", "cleanroom:party": "beta", "cleanroom:owner-key": try! fixture.beta.fingerprint,
                ])
        } == .bindingMismatch)
    }

    @Test func contextNamingAnotherDatasetOrPartyIsRefused() throws {
        let policy = try fixture.policy()
        let verified = try verify(policy, try fixture.fullBundle(policy))
        let dataset = try JobPolicy(bytes: policy).datasets[0]
        let key = try fixture.alpha.fingerprint
        for context in [
            ["cleanroom:dataset": "beta-data", "cleanroom:party": "alpha", "cleanroom:owner-key": key],
            ["cleanroom:dataset": "alpha-data", "cleanroom:party": "beta", "cleanroom:owner-key": key],
            ["cleanroom:dataset": "alpha-data", "cleanroom:party": "alpha"],
            ["cleanroom:dataset": "alpha-data", "cleanroom:party": "alpha", "cleanroom:owner-key": try fixture.beta.fingerprint],
        ] {
            #expect(code { try verified.authorize(dataset: dataset, encryptionContext: context) } == .bindingMismatch)
        }
    }

    @Test func malformedBundlesAreRefused() {
        let policy = try! fixture.policy()
        #expect(code { _ = try verify(policy, Array("{".utf8)) } == .approvalInvalid)
        #expect(code { _ = try verify(policy, Array(#"{"format":"x","policyDigest":"","approvals":[]}"#.utf8)) } == .approvalInvalid)
        #expect(code { _ = try ApprovalBundle(bytes: Array(repeating: 0x20, count: ApprovalBundle.maxBytes + 1)) } == .approvalInvalid)
    }
}
