/// The exact bytes a party's reviewer signs to approve a policy (DESIGN §4):
///
///     cleanroom-approval-v1\n<policy digest, 64 lowercase hex>\n<party id>\n<expiry, RFC 3339 UTC>
///
/// The prefix separates these signatures from any other use of the key; the digest binds the
/// exact policy; the party id stops one party's approval counting for another; the expiry bounds replay.
public struct ApprovalMessage: Sendable, Equatable {
    public static let prefix = "cleanroom-approval-v1"

    public let policyDigest: String
    public let partyId: String
    public let expiresAt: Int64

    public init(policyDigest: String, partyId: String, expiresAt: Int64) {
        self.policyDigest = policyDigest
        self.partyId = partyId
        self.expiresAt = expiresAt
    }

    /// The bytes that are signed (ECDSA P-256 with SHA-256).
    public var bytes: [UInt8] {
        Array("\(Self.prefix)\n\(policyDigest)\n\(partyId)\n\(RFC3339.format(expiresAt))".utf8)
    }
}
