import Crypto

/// One rule an attestation document must meet, in the style of swift-certificates' `VerifierPolicy`:
/// a small value that looks at the (still unverified) document and answers "meets" or "fails, because".
///
/// ``AttestationVerifier`` runs its policies in order and stops at the first failure, so cheap
/// structural rules run before the signature and chain, and the caller's expectations last.
/// A new rule is a new small type plus one line in the verifier's list.
public protocol AttestationPolicy: Sendable {
    /// Evaluates the rule for `document` at `context.verificationTime`.
    func evaluate(_ document: AttestationDocument, context: AttestationPolicyContext) -> AttestationPolicyResult
}

/// The outcome of one ``AttestationPolicy``.
public enum AttestationPolicyResult: Sendable, Equatable {
    /// The document meets the rule.
    case meetsPolicy
    /// The document fails the rule, with the precise error.
    case failsToMeetPolicy(AttestationError)
}

/// What policies may consult besides the document: the injected time, and the chain once built.
public struct AttestationPolicyContext: Sendable {
    /// The time at which certificates and freshness are judged (injected, never read from a clock here).
    public let verificationTime: UnixTime
    /// The parsed leaf certificate, once the verifier has parsed it (policies parse it themselves otherwise).
    public internal(set) var leafCertificate: Certificate?
    /// The parsed cabundle, in document order (root first).
    public internal(set) var cabundleCertificates: [Certificate]?

    public init(verificationTime: UnixTime) {
        self.verificationTime = verificationTime
    }
}

/// Seconds and milliseconds since the Unix epoch, so that tests and the CLI can inject an exact time.
public struct UnixTime: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var milliseconds: UInt64

    public init(milliseconds: UInt64) { self.milliseconds = milliseconds }
    public init(seconds: UInt64) { self.milliseconds = seconds * 1000 }

    /// Whole seconds since the epoch (truncated).
    public var seconds: UInt64 { milliseconds / 1000 }

    /// The current wall-clock time.
    public static func now() -> UnixTime {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UnixTime(milliseconds: UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec / 1_000_000))
    }

    public static func < (lhs: UnixTime, rhs: UnixTime) -> Bool { lhs.milliseconds < rhs.milliseconds }
    public var description: String { "\(milliseconds / 1000).\(String(milliseconds % 1000 + 1000).dropFirst())s" }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
