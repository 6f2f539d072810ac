/// The development certificate authority (placeholder until issuance lands).
public struct DevelopmentCA: Sendable {}
