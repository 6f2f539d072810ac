// libFuzzer target: the whole attestation verifier on arbitrary bytes (`make fuzz-attestation`),
// seeded with the three real Nitro documents. Compiled into the Attestation module.
// Invariants: no crash or hang; every rejection carries a code; and anything that verifies under
// the AWS root carries exactly the signed payload of one of the real documents (the signature
// cannot be moved onto other content, whatever the framing around it).

import Crypto

private let verifyTimes: [UInt64] = [1_665_651_482, 1_695_049_410, 1_767_472_867]
private let verifiers = verifyTimes.map {
    AttestationVerifier(trustedRoots: [TrustedRoot.awsNitroEnclavesRootG1], at: UnixTime(seconds: $0))
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAttestationVerifier(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let expectations = AttestationExpectations(allowDebug: true, maxAgeMilliseconds: nil)
    // Decoding alone must not crash, and must agree with the verifier about what is malformed.
    let decoded = try? AttestationDocument(bytes: bytes)
    for verifier in verifiers {
        do {
            let verified = try verifier.verify(bytes, expectations: expectations)
            precondition(decoded != nil, "a document verified that does not decode")
            precondition(
                SignedPayloads.known.contains(HashFunction.sha256.hash(verified.document.payload)),
                "a payload that AWS never signed verified"
            )
        } catch {
            precondition(!error.code.rawValue.isEmpty)
        }
    }
    return 0
}

/// SHA-256 of the payloads of the three real documents in ../shared/vectors/nitro.
enum SignedPayloads {
    static let known: Set<[UInt8]> = Set(
        [
            "13064cecdcfb6236c7f52ad23c6ceefcf0f4e942a4317fd71418aca6f2109162",
            "47558568695d45cd05191d347145154434f45e97086ea3837c1a00a592e8aaa4",
            "5cebcaf224b015aec11be6907ae1846659bb07091f9ee218b3e7dc529e767893",
        ].map { Hex.decode($0)! }
    )
}

/// Builds the verifiers (and parses the root) before fuzzing starts, so that one-time global
/// initialisation is not mistaken for a per-input leak by libFuzzer's leak check.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzAttestationVerifierInitialize(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
)
    -> CInt
{
    precondition(verifiers.count == 3 && SignedPayloads.known.count == 3)
    return 0
}
