import CleanRoom
import Crypto
import Foundation

/// The signed approvals of one policy digest, as the server hands them to the enclave and as
/// partners keep them to verify a receipt offline. Its SHA-256 over the exact bytes is the
/// approval-bundle digest a receipt names.
///
/// Unverified by construction: only `verify(against:policyDigest:now:)` yields a
/// `VerifiedApprovalBundle`, and only that type can authorise opening a dataset.
public struct ApprovalBundle: Codable, Sendable, Equatable {
    public static let formatIdentifier = "cleanroom-approval-bundle-v1"
    /// Largest accepted bundle.
    public static let maxBytes = 1024 * 1024

    /// One party's approval.
    public struct Entry: Codable, Sendable, Equatable {
        public var partyId: String
        /// Expiry, seconds since 1970 (signed as RFC 3339 in the approval message).
        public var expiresAt: Int64
        /// DER ECDSA P-256 signature over `ApprovalMessage`, base64.
        public var signature: String
        /// The signing key (SPKI PEM) the signature is checked with.
        public var signingKey: String

        public init(partyId: String, expiresAt: Int64, signature: String, signingKey: String) {
            self.partyId = partyId
            self.expiresAt = expiresAt
            self.signature = signature
            self.signingKey = signingKey
        }
    }

    public var format: String
    /// The policy digest every approval signs, lowercase hex.
    public var policyDigest: String
    public var approvals: [Entry]

    public init(policyDigest: String, approvals: [Entry]) {
        self.format = Self.formatIdentifier
        self.policyDigest = policyDigest
        self.approvals = approvals
    }

    /// The bytes sent to the enclave (sorted-key JSON).
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }

    /// Parses bundle bytes.
    public init(bytes: [UInt8]) throws(EnclaveError) {
        guard bytes.count <= Self.maxBytes else {
            throw EnclaveError(.approvalInvalid, "the approval bundle is \(bytes.count) bytes; the limit is \(Self.maxBytes)")
        }
        do {
            self = try JSONDecoder().decode(ApprovalBundle.self, from: Data(bytes))
        } catch {
            throw EnclaveError(.approvalInvalid, "the approval bundle is not valid JSON of the expected shape")
        }
        guard format == Self.formatIdentifier else {
            throw EnclaveError(.approvalInvalid, "unknown approval bundle format \(format)")
        }
    }

    /// Checks every approval (DESIGN §2.2, §2.3): the bundle is for `policyDigest`; the policy names
    /// an approval key (PEM or fingerprint) for every party; each signature verifies with its key
    /// over the domain-separated approval message; each key is the one the policy names for that
    /// party; no approval has expired at `now`; and every party of the policy has at least one
    /// valid approval (unanimity). An approval that fails any check is an error, not skipped: the
    /// server is supposed to send only valid ones.
    public func verify(
        against policy: JobPolicy, policyDigest: String, now: Int64
    ) throws(EnclaveError) -> VerifiedApprovalBundle {
        guard self.policyDigest == policyDigest else {
            throw EnclaveError(.approvalInvalid, "the approval bundle is for another policy digest")
        }
        // Without a named key, any key's approval would count as the party's (in a review, the
        // operator approved for a recipient-only party named without keys, and received its model).
        for party in policy.parties where party.signingKey == nil && party.signingKeyFingerprint == nil {
            throw EnclaveError(.policyInvalid, "the policy names no approval key for party \(party.id), so anyone could approve for it")
        }
        var keysByParty: [String: Set<String>] = [:]
        for (index, entry) in approvals.enumerated() {
            let label = "approval \(index + 1) (party \(entry.partyId))"
            guard let party = policy.party(entry.partyId) else {
                throw EnclaveError(.approvalInvalid, "\(label) is from a party the policy does not name")
            }
            let key: SigningPublicKey
            do {
                key = try SigningPublicKey(pem: entry.signingKey)
            } catch {
                throw EnclaveError(.approvalInvalid, "\(label) carries a signing key that is not ECDSA P-256 SPKI PEM")
            }
            if let policyKey = party.signingKey {
                guard let named = try? SigningPublicKey(pem: policyKey), named.der == key.der else {
                    throw EnclaveError(.approvalInvalid, "\(label) is signed by a key other than the policy's for that party")
                }
            }
            if let fingerprint = party.signingKeyFingerprint, fingerprint != key.fingerprint {
                throw EnclaveError(.approvalInvalid, "\(label) is signed by a key whose fingerprint the policy does not name")
            }
            guard entry.expiresAt > now else { throw EnclaveError(.approvalInvalid, "\(label) has expired") }
            guard let signature = Data(base64Encoded: entry.signature) else {
                throw EnclaveError(.approvalInvalid, "\(label) has a signature that is not base64")
            }
            let message = ApprovalMessage(policyDigest: policyDigest, partyId: entry.partyId, expiresAt: entry.expiresAt)
            guard key.isValidSignature(Array(signature), for: message.bytes) else {
                throw EnclaveError(.approvalInvalid, "\(label) has a signature that does not verify")
            }
            keysByParty[entry.partyId, default: []].insert(key.fingerprint)
        }
        let missing = policy.parties.map(\.id).filter { keysByParty[$0] == nil }
        guard missing.isEmpty else {
            throw EnclaveError(.approvalMissing, "no valid approval from: \(missing.joined(separator: ", "))")
        }
        return VerifiedApprovalBundle(policyDigest: policyDigest, approvedKeyFingerprints: keysByParty)
    }
}

/// An approval bundle whose every signature verified and which covers every party of the policy.
public struct VerifiedApprovalBundle: Sendable, Equatable {
    public let policyDigest: String
    /// For each party, the SHA-256 fingerprints of the keys whose approvals verified.
    public let approvedKeyFingerprints: [String: Set<String>]

    /// The encryption-context binding check (DESIGN §2.3): a dataset may be opened only if its
    /// authenticated context names the dataset the policy expects, its owner party, and the
    /// fingerprint of a key that signed a valid approval of this policy for that party.
    public func authorize(dataset: JobPolicy.Dataset, encryptionContext: [String: String]) throws(EnclaveError) {
        guard encryptionContext["cleanroom:dataset"] == dataset.id else {
            throw EnclaveError(.bindingMismatch, "dataset \(dataset.id): its encryption context names another dataset")
        }
        guard encryptionContext["cleanroom:party"] == dataset.owner else {
            throw EnclaveError(.bindingMismatch, "dataset \(dataset.id): its encryption context names another owner party")
        }
        guard let ownerKey = encryptionContext["cleanroom:owner-key"] else {
            throw EnclaveError(.bindingMismatch, "dataset \(dataset.id): its encryption context has no cleanroom:owner-key")
        }
        guard approvedKeyFingerprints[dataset.owner]?.contains(ownerKey.lowercased()) == true else {
            throw EnclaveError(
                .bindingMismatch,
                "dataset \(dataset.id): no approval of this policy is signed by the owner key its encryption context names")
        }
    }
}
