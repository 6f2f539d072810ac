import AWS
import Foundation

/// A KMS key policy (IAM policy JSON) and its evaluation, as AWS does it for the statements
/// the local KMS supports: explicit `Deny` wins, then any matching `Allow`, else denied.
///
/// Supported: `Principal` (`*`, `{"AWS": ARN | [ARN] | "*"}`, account root
/// `arn:aws:iam::ACCOUNT:root` = any principal of that account), `Action` / `NotAction` with
/// `*` wildcards, `Resource` (ignored: a key policy is about its own key), and `Condition`
/// operators `StringEquals`, `StringEqualsIgnoreCase`, `StringNotEquals`,
/// `StringNotEqualsIgnoreCase`, `StringLike`, `Null` over the keys
/// `kms:RecipientAttestation:ImageSha384`, `kms:RecipientAttestation:PCR<n>`,
/// `kms:EncryptionContext:<key>`, `kms:CallerAccount`, `aws:PrincipalArn`. An unknown
/// operator makes its statement not match — failing closed for `Allow`; for `Deny` an
/// unknown operator matches, so a Deny never silently stops applying.
public struct KMSKeyPolicy: Sendable {
    public let document: String
    let statements: [Statement]

    struct Statement {
        var allow: Bool
        var principals: [String]?  // nil: any
        var actions: [String]
        var notActions: [String]
        var conditions: [(op: String, key: String, values: [String])]
    }

    /// Parses a policy document; throws `MalformedPolicyDocumentException`.
    public init(json: String) throws {
        document = json
        guard let obj = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw KMSError("MalformedPolicyDocumentException", "the key policy is not a JSON object")
        }
        let raw: [[String: Any]]
        if let list = obj["Statement"] as? [[String: Any]] {
            raw = list
        } else if let one = obj["Statement"] as? [String: Any] {
            raw = [one]
        } else {
            throw KMSError("MalformedPolicyDocumentException", "the key policy has no Statement")
        }
        statements = try raw.map { s in
            guard let effect = s["Effect"] as? String, effect == "Allow" || effect == "Deny" else {
                throw KMSError("MalformedPolicyDocumentException", "each statement needs Effect Allow or Deny")
            }
            func strings(_ v: Any?) -> [String]? {
                if let s = v as? String { return [s] }
                return v as? [String]
            }
            var principals: [String]? = []
            if let p = s["Principal"] as? String, p == "*" {
                principals = nil
            } else if let p = s["Principal"] as? [String: Any], let aws = strings(p["AWS"]) {
                principals = aws.contains("*") ? nil : aws
            } else if s["Principal"] != nil {
                throw KMSError("MalformedPolicyDocumentException", "unsupported Principal in the key policy")
            }
            let actions = strings(s["Action"]) ?? []
            let notActions = strings(s["NotAction"]) ?? []
            guard !actions.isEmpty || !notActions.isEmpty else {
                throw KMSError("MalformedPolicyDocumentException", "each statement needs Action or NotAction")
            }
            var conditions: [(String, String, [String])] = []
            if let c = s["Condition"] as? [String: Any] {
                for (op, body) in c {
                    guard let map = body as? [String: Any] else {
                        throw KMSError("MalformedPolicyDocumentException", "condition \(op) must map keys to values")
                    }
                    for (key, value) in map {
                        var values = strings(value)
                        if values == nil, let b = value as? Bool { values = [b ? "true" : "false"] }
                        guard let values else {
                            throw KMSError("MalformedPolicyDocumentException", "condition \(op) \(key) needs string values")
                        }
                        conditions.append((op, key, values))
                    }
                }
            }
            return Statement(allow: effect == "Allow", principals: principals, actions: actions, notActions: notActions, conditions: conditions)
        }
    }

    /// AWS's default key policy: the account (root) may do everything with the key.
    public static func defaultPolicy(accountId: String) -> String {
        """
        {"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow",\
        "Principal":{"AWS":"arn:aws:iam::\(accountId):root"},"Action":"kms:*","Resource":"*"}]}
        """
    }

    /// The facts a request brings to condition evaluation.
    public struct RequestContext: Sendable {
        public var principalArn: String
        public var accountId: String
        public var action: String
        public var encryptionContext: [String: String]
        public var recipient: VerifiedRecipient?

        func value(_ key: String) -> String? {
            let lower = key.lowercased()
            if lower == "kms:callersaccount" || lower == "kms:calleraccount" { return accountId }
            if lower == "aws:principalarn" { return principalArn }
            if lower == "kms:recipientattestation:imagesha384" { return recipient?.pcrs[0].map(hexString) }
            if lower.hasPrefix("kms:recipientattestation:pcr"), let n = Int(lower.dropFirst("kms:recipientattestation:pcr".count)) {
                return recipient?.pcrs[n].map(hexString)
            }
            if lower.hasPrefix("kms:encryptioncontext:") {
                // Context keys are case-sensitive in KMS; the condition key prefix is not.
                return encryptionContext[String(key.dropFirst("kms:encryptioncontext:".count))]
            }
            return nil
        }
    }

    /// Whether the policy allows the request.
    public func allows(_ request: RequestContext) -> Bool {
        var allowed = false
        for s in statements where principalMatches(s, request) && actionMatches(s, request.action) {
            let conditionsHold = s.conditions.allSatisfy { evaluate($0, request, forDeny: !s.allow) }
            guard conditionsHold else { continue }
            if !s.allow { return false }
            allowed = true
        }
        return allowed
    }

    private func principalMatches(_ s: Statement, _ r: RequestContext) -> Bool {
        guard let principals = s.principals else { return true }
        return principals.contains { p in
            p == r.principalArn || p == "arn:aws:iam::\(r.accountId):root" || p == r.accountId
        }
    }

    private func actionMatches(_ s: Statement, _ action: String) -> Bool {
        if !s.actions.isEmpty { return s.actions.contains { Self.glob($0, action, ignoreCase: true) } }
        return !s.notActions.contains { Self.glob($0, action, ignoreCase: true) }
    }

    private func evaluate(_ c: (op: String, key: String, values: [String]), _ r: RequestContext, forDeny: Bool) -> Bool {
        let actual = r.value(c.key)
        switch c.op {
        case "StringEquals": return actual.map { a in c.values.contains(a) } ?? false
        case "StringEqualsIgnoreCase": return actual.map { a in c.values.contains { $0.lowercased() == a.lowercased() } } ?? false
        case "StringNotEquals": return actual.map { a in !c.values.contains(a) } ?? true
        case "StringNotEqualsIgnoreCase":
            return actual.map { a in !c.values.contains { $0.lowercased() == a.lowercased() } } ?? true
        case "StringLike": return actual.map { a in c.values.contains { Self.glob($0, a, ignoreCase: false) } } ?? false
        case "Null": return c.values.contains((actual == nil) ? "true" : "false")
        default: return forDeny
        }
    }

    /// `*` and `?` wildcards.
    static func glob(_ pattern: String, _ text: String, ignoreCase: Bool) -> Bool {
        let p = Array(ignoreCase ? pattern.lowercased() : pattern), t = Array(ignoreCase ? text.lowercased() : text)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count && (p[pi] == "?" || p[pi] == t[ti]) {
                pi += 1
                ti += 1
            } else if pi < p.count && p[pi] == "*" {
                star = pi
                mark = ti
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}

func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    var s = ""
    s.reserveCapacity(bytes.count * 2)
    for b in bytes {
        s.append(digits[Int(b >> 4)])
        s.append(digits[Int(b & 0xf)])
    }
    return s
}
