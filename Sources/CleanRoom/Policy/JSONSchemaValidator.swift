/// A JSON Schema (draft 2020-12) validator for the keywords our policy schema uses.
///
/// It is deliberately small: a schema that uses a keyword it does not implement is refused
/// when the validator is built (`unsupportedKeyword`), so the schema can never silently
/// mean more than is checked. Each violation names the failing field as a path such as
/// `datasets[1].owner`.
public struct JSONSchemaValidator: Sendable {
    /// One reason a document does not meet the schema.
    public struct Violation: Sendable, Equatable, CustomStringConvertible {
        /// The failing field: `$` for the root, else a path like `training.hyperparameters.depth`.
        public let field: String
        public let message: String
        public var description: String { "\(field): \(message)" }
    }

    /// The schema itself is not one this validator can enforce.
    public struct SchemaError: Swift.Error, CustomStringConvertible {
        public let description: String
    }

    static let annotationKeywords: Set<String> = [
        "$schema", "$id", "$comment", "title", "description", "examples", "default", "$defs", "deprecated",
    ]
    static let assertionKeywords: Set<String> = [
        "type", "properties", "required", "additionalProperties", "items", "enum", "const", "pattern",
        "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems",
        "maxItems", "uniqueItems", "minProperties", "maxProperties", "$ref", "oneOf", "anyOf", "allOf", "not",
        "if", "then", "else", "format", "propertyNames",
    ]

    private let root: JSONValue
    /// The schema's `pattern`s. Each validation compiles them once (compiling one per string
    /// checked cost ~60 µs a string: seconds for a policy of tens of thousands of features).
    private let patterns: [String]

    /// Builds a validator, refusing schemas that use keywords it does not implement.
    public init(schema: JSONValue) throws {
        root = schema
        var patterns: [String] = []
        try Self.checkKeywords(schema, path: "#", patterns: &patterns)
        self.patterns = patterns
    }

    private static func checkKeywords(
        _ schema: JSONValue, path: String, patterns: inout [String]
    ) throws {
        if case .bool = schema { return }
        guard case .object(let members) = schema else { throw SchemaError(description: "\(path) is not a schema") }
        for (key, value) in members {
            if annotationKeywords.contains(key) {
                if key == "$defs", case .object(let defs) = value {
                    for (name, def) in defs { try checkKeywords(def, path: "\(path)/$defs/\(name)", patterns: &patterns) }
                }
                continue
            }
            guard assertionKeywords.contains(key) else {
                throw SchemaError(description: "\(path) uses unsupported keyword \"\(key)\"")
            }
            switch key {
            case "properties":
                for (name, sub) in value.objectValue ?? [] { try checkKeywords(sub, path: "\(path)/properties/\(name)", patterns: &patterns) }
            case "items", "additionalProperties", "not", "if", "then", "else", "propertyNames":
                try checkKeywords(value, path: "\(path)/\(key)", patterns: &patterns)
            case "oneOf", "anyOf", "allOf":
                for (i, sub) in (value.arrayValue ?? []).enumerated() {
                    try checkKeywords(sub, path: "\(path)/\(key)/\(i)", patterns: &patterns)
                }
            case "$ref":
                guard let ref = value.stringValue, ref.hasPrefix("#/$defs/") else {
                    throw SchemaError(description: "\(path): only local \"#/$defs/…\" references are supported")
                }
            case "format":
                guard let format = value.stringValue, ["date-time"].contains(format) else {
                    throw SchemaError(description: "\(path): unsupported format")
                }
            case "pattern":
                guard let pattern = value.stringValue, (try? Regex(pattern)) != nil else {
                    throw SchemaError(description: "\(path): pattern is not a valid regular expression")
                }
                patterns.append(pattern)
            default: break
            }
        }
    }

    /// All violations of `document` (empty when it is valid), in document order.
    public func validate(_ document: JSONValue) -> [Violation] {
        var violations: [Violation] = []
        var compiled: [String: Regex<AnyRegexOutput>] = [:]
        for pattern in patterns { compiled[pattern] = try? Regex(pattern) }
        validate(document, against: root, path: "$", patterns: compiled, into: &violations)
        return violations
    }

    private func resolve(_ ref: String) -> JSONValue {
        let name = String(ref.dropFirst("#/$defs/".count))
        return root["$defs"]?[name] ?? .bool(false)
    }

    private static func child(_ path: String, _ key: String) -> String {
        path == "$" ? key : "\(path).\(key)"
    }

    /// The index of the only branch whose `const` properties all match `value`, if exactly one does.
    private func discriminated(_ value: JSONValue, _ branches: [JSONValue]) -> Int? {
        guard case .object = value else { return nil }
        let matching = branches.indices.filter { index in
            let properties = branches[index]["properties"]?.objectValue ?? []
            let constants = properties.compactMap { name, sub in sub["const"].map { (name, $0) } }
            return !constants.isEmpty && constants.allSatisfy { name, constant in value[name] == constant }
        }
        return matching.count == 1 ? matching[0] : nil
    }

    private func validate(
        _ value: JSONValue, against schema: JSONValue, path: String, patterns: [String: Regex<AnyRegexOutput>],
        into out: inout [Violation]
    ) {
        if case .bool(let allowed) = schema {
            if !allowed { out.append(Violation(field: path, message: "is not allowed here")) }
            return
        }
        guard case .object(let keywords) = schema else { return }
        func fail(_ message: String, _ field: String? = nil) {
            out.append(Violation(field: field ?? path, message: message))
        }
        // An array over its maxItems is refused as such; its items are not judged one by one.
        var tooMany = false
        if case .array(let a) = value, let limit = schema["maxItems"]?.numberValue { tooMany = Double(a.count) > limit }
        for (keyword, argument) in keywords {
            if tooMany, keyword == "items" || keyword == "uniqueItems" { continue }
            switch keyword {
            case "$ref":
                validate(value, against: resolve(argument.stringValue ?? ""), path: path, patterns: patterns, into: &out)
            case "type":
                let allowed = argument.arrayValue?.compactMap(\.stringValue) ?? [argument.stringValue ?? ""]
                let matches = allowed.contains { type in
                    type == value.typeName || (type == "integer" && value.isInteger)
                }
                if !matches { fail("must be of type \(allowed.joined(separator: " or ")), not \(value.typeName)") }
            case "enum":
                let options = argument.arrayValue ?? []
                if !options.contains(value) {
                    fail("must be one of \(options.map { CanonicalJSON.string($0) }.joined(separator: ", "))")
                }
            case "const":
                if value != argument { fail("must be \(CanonicalJSON.string(argument))") }
            case "properties":
                guard case .object(let members) = value else { continue }
                for (name, sub) in argument.objectValue ?? [] {
                    if let memberValue = members.first(where: { $0.0 == name })?.1 {
                        validate(memberValue, against: sub, path: Self.child(path, name), patterns: patterns, into: &out)
                    }
                }
            case "required":
                guard case .object(let members) = value else { continue }
                for name in argument.arrayValue?.compactMap(\.stringValue) ?? [] where !members.contains(where: { $0.0 == name }) {
                    fail("is required", Self.child(path, name))
                }
            case "additionalProperties":
                guard case .object(let members) = value else { continue }
                let declared = Set((schema["properties"]?.objectValue ?? []).map(\.0))
                for (name, memberValue) in members where !declared.contains(name) {
                    if case .bool(false) = argument {
                        fail("is not a known field", Self.child(path, name))
                    } else {
                        validate(memberValue, against: argument, path: Self.child(path, name), patterns: patterns, into: &out)
                    }
                }
            case "propertyNames":
                guard case .object(let members) = value else { continue }
                for (name, _) in members {
                    var nameViolations: [Violation] = []
                    validate(.string(name), against: argument, path: Self.child(path, name), patterns: patterns, into: &nameViolations)
                    if !nameViolations.isEmpty { fail("is not an allowed field name", Self.child(path, name)) }
                }
            case "minProperties":
                if case .object(let m) = value, Double(m.count) < (argument.numberValue ?? 0) {
                    fail("must have at least \(Int(argument.numberValue ?? 0)) fields")
                }
            case "maxProperties":
                if case .object(let m) = value, Double(m.count) > (argument.numberValue ?? .infinity) {
                    fail("must have at most \(Int(argument.numberValue ?? 0)) fields")
                }
            case "items":
                guard case .array(let elements) = value else { continue }
                for (i, element) in elements.enumerated() {
                    validate(element, against: argument, path: "\(path)[\(i)]", patterns: patterns, into: &out)
                }
            case "minItems":
                if case .array(let a) = value, Double(a.count) < (argument.numberValue ?? 0) {
                    fail("must have at least \(Int(argument.numberValue ?? 0)) items")
                }
            case "maxItems":
                if case .array(let a) = value, Double(a.count) > (argument.numberValue ?? .infinity) {
                    fail("must have at most \(Int(argument.numberValue ?? 0)) items")
                }
            case "uniqueItems":
                if case .array(let a) = value, argument.boolValue == true {
                    // By canonical text, in one pass: comparing each item with all before it took
                    // seconds for tens of thousands of items (a review held the database's write lock so).
                    var seen = Set<String>()
                    for (i, item) in a.enumerated() where !seen.insert(CanonicalJSON.string(item)).inserted {
                        fail("must not repeat an item", "\(path)[\(i)]")
                    }
                }
            case "minLength":
                if case .string(let s) = value, Double(s.unicodeScalars.count) < (argument.numberValue ?? 0) {
                    fail("must be at least \(Int(argument.numberValue ?? 0)) characters long")
                }
            case "maxLength":
                if case .string(let s) = value, Double(s.unicodeScalars.count) > (argument.numberValue ?? .infinity) {
                    fail("must be at most \(Int(argument.numberValue ?? 0)) characters long")
                }
            case "pattern":
                if case .string(let s) = value, let regex = patterns[argument.stringValue ?? ""],
                    (try? regex.firstMatch(in: s)) == nil
                {
                    fail("must match the pattern \(argument.stringValue ?? "")")
                }
            case "format":
                if case .string(let s) = value, argument.stringValue == "date-time", RFC3339.parse(s) == nil {
                    fail("must be an RFC 3339 date-time such as 2030-01-01T00:00:00Z")
                }
            case "minimum":
                if case .number(let n) = value, let bound = argument.numberValue, n < bound {
                    fail("must be at least \(CanonicalJSON.formatNumber(bound))")
                }
            case "maximum":
                if case .number(let n) = value, let bound = argument.numberValue, n > bound {
                    fail("must be at most \(CanonicalJSON.formatNumber(bound))")
                }
            case "exclusiveMinimum":
                if case .number(let n) = value, let bound = argument.numberValue, n <= bound {
                    fail("must be greater than \(CanonicalJSON.formatNumber(bound))")
                }
            case "exclusiveMaximum":
                if case .number(let n) = value, let bound = argument.numberValue, n >= bound {
                    fail("must be less than \(CanonicalJSON.formatNumber(bound))")
                }
            case "allOf":
                for sub in argument.arrayValue ?? [] { validate(value, against: sub, path: path, patterns: patterns, into: &out) }
            case "anyOf", "oneOf":
                let branches = argument.arrayValue ?? []
                var results: [[Violation]] = []
                for sub in branches {
                    var branchViolations: [Violation] = []
                    validate(value, against: sub, path: path, patterns: patterns, into: &branchViolations)
                    results.append(branchViolations)
                }
                let passing = results.filter(\.isEmpty).count
                if keyword == "anyOf" ? passing == 0 : passing != 1 {
                    if passing > 1 {
                        fail("matches more than one of the allowed forms")
                    } else if let chosen = discriminated(value, branches), !results[chosen].isEmpty {
                        // The branch whose `const` discriminators match the value is the one meant.
                        out.append(contentsOf: results[chosen])
                    } else if let closest = results.min(by: { $0.count < $1.count }), !closest.isEmpty {
                        // Report the branch that came closest: its errors name the precise field.
                        out.append(contentsOf: closest)
                    } else {
                        fail("does not match any allowed form")
                    }
                }
            case "not":
                var sub: [Violation] = []
                validate(value, against: argument, path: path, patterns: patterns, into: &sub)
                if sub.isEmpty { fail("matches a form that is not allowed") }
            case "if":
                var condition: [Violation] = []
                validate(value, against: argument, path: path, patterns: patterns, into: &condition)
                if condition.isEmpty, let then = schema["then"] {
                    validate(value, against: then, path: path, patterns: patterns, into: &out)
                } else if !condition.isEmpty, let otherwise = schema["else"] {
                    validate(value, against: otherwise, path: path, patterns: patterns, into: &out)
                }
            default: break  // annotations, and "then"/"else" which "if" handles
            }
        }
    }
}
