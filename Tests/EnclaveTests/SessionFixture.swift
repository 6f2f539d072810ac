import Attestation
import CleanRoom
import Crypto
import Foundation
import TestSupport
@testable import Enclave

/// A party as the tests make it: an approval-signing key and a result key.
struct TestParty {
    let id: String
    let signingKey: P256.Signing.PrivateKey
    let resultKey: RSA.PrivateKey

    init(_ id: String) throws {
        self.id = id
        signingKey = try P256.Signing.PrivateKey()
        resultKey = try RSA.PrivateKey(bits: 2048)
    }

    var signingPEM: String { get throws { try signingKey.publicKey.pemRepresentation } }
    var fingerprint: String { get throws { Hex.encode(SHA256.hash(try signingKey.publicKey.derRepresentation)) } }

    func approve(_ digest: String, expiresAt: Int64 = 4_102_444_800, with key: P256.Signing.PrivateKey? = nil) throws
        -> ApprovalBundle.Entry
    {
        let signer = key ?? signingKey
        let message = ApprovalMessage(policyDigest: digest, partyId: id, expiresAt: expiresAt)
        return ApprovalBundle.Entry(
            partyId: id, expiresAt: expiresAt,
            signature: Data(try signer.signature(for: message.bytes).derRepresentation).base64EncodedString(),
            signingKey: try signer.publicKey.pemRepresentation)
    }
}

/// Two parties, a vertical-join policy with their keys, and a shared development attestor.
struct SessionFixture {
    static let shared: Result<SessionFixture, any Error> = Result { try SessionFixture() }

    let alpha: TestParty
    let beta: TestParty
    let attestor: DevelopmentAttestor
    let dataDirectory: URL

    init() throws {
        alpha = try TestParty("alpha")
        beta = try TestParty("beta")
        dataDirectory = try TestEnvironment.temporaryDirectory("enclave-session")
        attestor = try DevelopmentAttestor.open(dataDirectory: dataDirectory.path, enclaveExecutable: "/bin/sh")
    }

    var measurement: [String: String] {
        let pcrs = attestor.measurements.pcrs
        return ["pcr0": Hex.encode(pcrs[0]!), "pcr1": Hex.encode(pcrs[1]!), "pcr2": Hex.encode(pcrs[2]!)]
    }

    /// A document from the fixture's attestor, as the enclave's own (its PCRs are the policy's).
    func ownAttestation(_ attestor: DevelopmentAttestor? = nil) throws -> AttestationDocument {
        try AttestationDocument(
            bytes: (attestor ?? self.attestor).attestationDocument(publicKey: nil, userData: nil, nonce: nil))
    }

    /// Stand-in ciphertext digests of alpha's and beta's datasets, for tests that stream no data.
    static let placeholderDigests = [[UInt8](repeating: 0xA1, count: 32), [UInt8](repeating: 0xB2, count: 32)]

    /// A policy naming both parties' keys and their datasets' ciphertext digests (`ciphertexts`'
    /// or the placeholders); `mutate` edits the JSON object first.
    func policy(
        expiresAt: String = "2099-01-01T00:00:00Z", ciphertexts: [[UInt8]]? = nil, mutate: (inout [String: Any]) -> Void = { _ in }
    ) throws -> [UInt8] {
        let digests = ciphertexts.map { $0.map { Hex.encode(SHA256.hash($0)) } } ?? Self.placeholderDigests.map(Hex.encode)
        var policy: [String: Any] = [
            "version": 1, "name": "session test",
            "parties": try [alpha, beta].map { party in
                [
                    "id": party.id, "signingKey": try party.signingPEM, "signingKeyFingerprint": try party.fingerprint,
                    "resultKey": try party.resultKey.publicKey.pemRepresentation,
                ]
            },
            "datasets": [
                [
                    "id": "alpha-data", "owner": "alpha", "sha256": digests[0],
                    "columns": [["name": "id", "type": "string"], ["name": "y", "type": "integer"]],
                ],
                [
                    "id": "beta-data", "owner": "beta", "sha256": digests[1],
                    "columns": [["name": "id", "type": "string"], ["name": "x", "type": "float"]],
                ],
            ],
            "join": ["type": "inner", "key": "id"],
            "training": [
                "algorithm": "logistic_regression", "label": "y", "features": ["x"],
                "validation": ["fraction": 0.25, "seed": 7],
            ],
            "enclave": ["measurements": [measurement], "allowDebug": false],
            "outputs": [["recipient": "alpha", "artifacts": ["model", "metrics"]], ["recipient": "beta", "artifacts": ["metrics"]]],
            "constraints": ["expiresAt": expiresAt, "maxRuns": 3],
        ]
        mutate(&policy)
        return Array(try JSONSerialization.data(withJSONObject: policy, options: [.sortedKeys]))
    }

    static func digest(_ policy: [UInt8]) throws -> String { try PolicyDocument(bytes: policy).digest }

    func bundle(_ policy: [UInt8], entries: (String) throws -> [ApprovalBundle.Entry]) throws -> [UInt8] {
        let digest = try Self.digest(policy)
        return try ApprovalBundle(policyDigest: digest, approvals: try entries(digest)).encoded()
    }

    func fullBundle(_ policy: [UInt8]) throws -> [UInt8] {
        try bundle(policy) { digest in [try alpha.approve(digest), try beta.approve(digest)] }
    }

    /// `policy` admitted with both parties' approvals and placeholder manifests, for tests that
    /// need an admission but stream no data.
    func admission(_ policy: [UInt8]) throws -> Admission {
        let manifests = zip(["alpha-data", "beta-data"], ["alpha", "beta"]).enumerated().map { index, dataset in
            DatasetManifest(
                datasetID: dataset.0, partyID: dataset.1, ciphertextSHA256: Self.placeholderDigests[index], byteCount: 1)
        }
        return try Admission.check(
            spec: JobSpecification(policy: policy, approvalBundle: try fullBundle(policy), datasets: manifests),
            attestedPolicyDigest: Hex.decode(try Self.digest(policy))!, attestation: try ownAttestation(), now: 1_800_000_000)
    }

    /// A verifier trusting only the development root, now.
    var verifier: AttestationVerifier {
        AttestationVerifier(trustedRoots: [attestor.trustedRoot], clock: { UnixTime.now() }, cache: nil)
    }
}
