import Crypto

/// A set of PCR values an enclave image may have: every listed index must match exactly; indices
/// not listed are not constrained. A policy's `enclave.measurements` entries become these.
public struct PCRSet: Sendable, Hashable, CustomStringConvertible {
    /// PCR index → expected 48-byte value.
    public var values: [Int: [UInt8]]

    public init(_ values: [Int: [UInt8]]) { self.values = values }

    /// From hex strings, e.g. `[0: "f4d4…", 1: "bcdf…"]`; nil if a value is not hex.
    public init?(hex: [Int: String]) {
        var values: [Int: [UInt8]] = [:]
        for (index, text) in hex {
            guard let bytes = Hex.decode(text) else { return nil }
            values[index] = bytes
        }
        self.values = values
    }

    /// True if every listed PCR equals the document's value at that index.
    public func matches(_ pcrs: [Int: [UInt8]]) -> Bool {
        values.allSatisfy { index, expected in pcrs[index].map { ConstantTime.equals($0, expected) } ?? false }
    }

    public var description: String {
        values.keys.sorted().map { "PCR\($0)=\(Hex.encode(values[$0]!).prefix(16))…" }.joined(separator: ",")
    }
}

/// PCRs must match at least one allowed set (an empty list of sets allows none).
public struct PCRPolicy: AttestationPolicy {
    public let allowedSets: [PCRSet]

    public init(allowedSets: [PCRSet]) { self.allowedSets = allowedSets }

    public func evaluate(_ document: AttestationDocument, context: AttestationPolicyContext) -> AttestationPolicyResult
    {
        if allowedSets.contains(where: { $0.matches(document.pcrs) }) { return .meetsPolicy }
        let pcr0 = document.pcrs[0].map { Hex.encode($0) } ?? "absent"
        return .failsToMeetPolicy(
            AttestationError(
                .pcrMismatch,
                "the PCRs (PCR0 \(pcr0)) match none of the \(allowedSets.count) allowed measurement sets"
            )
        )
    }
}

/// Refuses debug-mode enclaves (PCR0 all zeros) unless `allowDebug`: in debug mode the console is
/// readable from the parent, so nothing inside is confidential.
public struct DebugModePolicy: AttestationPolicy {
    public let allowDebug: Bool

    public init(allowDebug: Bool) { self.allowDebug = allowDebug }

    public func evaluate(_ document: AttestationDocument, context: AttestationPolicyContext) -> AttestationPolicyResult
    {
        if document.isDebugMode && !allowDebug {
            return .failsToMeetPolicy(
                AttestationError(
                    .debugModeRefused,
                    "PCR0 is all zeros (debug-mode enclave) and debug is not allowed"
                )
            )
        }
        return .meetsPolicy
    }
}

/// The document's timestamp must lie in `[now - maxAge, now + maxFutureSkew]`.
public struct FreshnessPolicy: AttestationPolicy {
    /// Oldest accepted document, in milliseconds before the verification time.
    public let maxAgeMilliseconds: UInt64
    /// How far in the future (clock skew between NSM and us) a timestamp may be.
    public let maxFutureSkewMilliseconds: UInt64

    public init(maxAgeMilliseconds: UInt64, maxFutureSkewMilliseconds: UInt64 = 60_000) {
        self.maxAgeMilliseconds = maxAgeMilliseconds
        self.maxFutureSkewMilliseconds = maxFutureSkewMilliseconds
    }

    public func evaluate(_ document: AttestationDocument, context: AttestationPolicyContext) -> AttestationPolicyResult
    {
        let now = context.verificationTime.milliseconds
        let ts = document.timestamp
        if ts > now, ts - now > maxFutureSkewMilliseconds {
            return .failsToMeetPolicy(
                AttestationError(
                    .documentFromFuture,
                    "timestamp \(UnixTime(milliseconds: ts)) is \(ts - now) ms after the verification time \(UnixTime(milliseconds: now))"
                )
            )
        }
        if now > ts, now - ts > maxAgeMilliseconds {
            return .failsToMeetPolicy(
                AttestationError(
                    .documentTooOld,
                    "timestamp \(UnixTime(milliseconds: ts)) is \(now - ts) ms old, the window is \(maxAgeMilliseconds) ms"
                )
            )
        }
        return .meetsPolicy
    }
}

/// A byte field (nonce, user data, public key) must be present and equal to an expected value.
public struct FieldPolicy: AttestationPolicy {
    /// Which field to compare.
    public enum Field: String, Sendable {
        case nonce, userData = "user_data", publicKey = "public_key"
    }

    public let field: Field
    public let expected: [UInt8]

    public init(_ field: Field, equals expected: [UInt8]) {
        self.field = field
        self.expected = expected
    }

    public func evaluate(_ document: AttestationDocument, context: AttestationPolicyContext) -> AttestationPolicyResult
    {
        let actual: [UInt8]?
        let code: AttestationError.Code
        switch field {
        case .nonce: (actual, code) = (document.nonce, .nonceMismatch)
        case .userData: (actual, code) = (document.userData, .userDataMismatch)
        case .publicKey: (actual, code) = (document.publicKey, .publicKeyMismatch)
        }
        guard let actual else {
            return .failsToMeetPolicy(AttestationError(code, "\(field.rawValue) is null but a value is expected"))
        }
        guard ConstantTime.equals(actual, expected) else {
            return .failsToMeetPolicy(AttestationError(code, "\(field.rawValue) differs from the expected value"))
        }
        return .meetsPolicy
    }
}

/// A public key must be present (a key release encrypts to it); any key is accepted.
public struct PublicKeyPresentPolicy: AttestationPolicy {
    public init() {}

    public func evaluate(_ document: AttestationDocument, context: AttestationPolicyContext) -> AttestationPolicyResult
    {
        document.publicKey == nil
            ? .failsToMeetPolicy(AttestationError(.publicKeyMismatch, "public_key is null but one is required"))
            : .meetsPolicy
    }
}
