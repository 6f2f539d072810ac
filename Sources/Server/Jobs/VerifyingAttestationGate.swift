import Attestation
import Crypto
import Enclave

/// The key-release gate's attestation check (DESIGN §2.4), with the Attestation module's
/// verifier: COSE signature, chain to one of the configured roots at the verifier's clock,
/// freshness, the server's own nonce, `user_data` equal to the job binding, a public key present,
/// PCRs in one of the policy's measurement sets, and debug mode only if the policy allows it.
public struct VerifyingAttestationGate: AttestationGate {
    public let verifier: AttestationVerifier
    /// The oldest document accepted.
    public var maxAgeMilliseconds: UInt64 = 120_000

    public init(verifier: AttestationVerifier) {
        self.verifier = verifier
    }

    /// The measurement sets a policy allows.
    public static func allowedPCRSets(_ policy: JobPolicy) throws(JobFailure) -> [PCRSet] {
        guard let sets = policy.enclave.pcrSets else {
            throw JobFailure(code: "policy.invalid", message: "a measurement set of the policy is not valid hex")
        }
        return sets
    }

    public func verify(
        document: [UInt8], nonce: [UInt8], expectedUserData: [UInt8], policy: [UInt8]
    ) throws(JobFailure) -> AttestedEnclave {
        let parsed: JobPolicy
        do {
            parsed = try JobPolicy(bytes: policy)
        } catch {
            throw JobFailure(code: error.code.rawValue, message: error.message)
        }
        let expectations = AttestationExpectations(
            allowedPCRSets: try Self.allowedPCRSets(parsed), allowDebug: parsed.enclave.allowDebug,
            maxAgeMilliseconds: maxAgeMilliseconds, nonce: nonce, userData: expectedUserData, requirePublicKey: true)
        let verified: VerifiedAttestationDocument
        do {
            verified = try verifier.verify(document, expectations: expectations)
        } catch {
            throw JobFailure(code: error.code.rawValue, message: "the enclave's attestation was refused: \(error.message)")
        }
        guard let publicKey = verified.publicKey, (try? RSA.PublicKey(derRepresentation: publicKey)) != nil else {
            throw JobFailure(code: "attestation.public_key", message: "the attested public key is not an RSA key")
        }
        return AttestedEnclave(publicKey: publicKey, pcr0: verified.pcrs[0] ?? [], development: verified.isDevelopment)
    }
}
