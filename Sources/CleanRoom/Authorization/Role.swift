/// A principal's role. `admin` is the operator's (a principal of no party); the others are
/// held by principals of a party. See `policies/roles-and-permissions.json`.
public enum Role: String, Sendable, Codable, CaseIterable, Hashable {
    case admin
    case partyAdmin = "party-admin"
    case owner
    case reviewer
    case partner

    /// The roles a party's principal may hold.
    public static let partyRoles: [Role] = [.partyAdmin, .owner, .reviewer, .partner]
}
