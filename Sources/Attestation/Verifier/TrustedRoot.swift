/// placeholder until Crypto's X.509 lands
public struct TrustedRoot: Sendable, Hashable {
    public let der: [UInt8]
}
