/// A collaboration policy (DESIGN §4) validated against `policies/policy.schema.json`, with its
/// digest: SHA-256 over the RFC 8785 canonical form, lowercase hex.
public struct PolicyDocument: Sendable {
    /// The whole document.
    public let json: JSONValue
    /// The RFC 8785 canonical bytes.
    public let canonical: [UInt8]
    /// SHA-256 of `canonical`, lowercase hex.
    public let digest: String

    /// The validator for the compiled-in schema.
    public static let schemaValidator: JSONSchemaValidator = {
        do {
            return try JSONSchemaValidator(schema: try JSONParser.parse(EmbeddedPolicyFiles.policySchema))
        } catch {
            fatalError("the embedded policy schema is invalid: \(error)")
        }
    }()

    /// Largest policy document accepted.
    public static let maxBytes = 256 * 1024

    /// Validates `json` against the schema and the cross-field rules; each failure names its field.
    public init(json: JSONValue) throws {
        var violations = Self.schemaValidator.validate(json)
        if violations.isEmpty { violations = Self.crossFieldViolations(json) }
        guard violations.isEmpty else {
            let first = violations[0]
            throw DomainError(
                .invalidInput, "invalid_policy", "the policy is not valid: \(first.field) \(first.message)",
                details: violations)
        }
        self.json = json
        canonical = CanonicalJSON.serialize(json)
        digest = CryptoSupport.sha256Hex(canonical)
    }

    /// Parses and validates policy JSON text.
    public init(bytes: [UInt8]) throws {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes, limits: .init(maxBytes: Self.maxBytes, maxDepth: 32))
        } catch let error as JSONParser.Error {
            throw DomainError.invalid("invalid_json", error.description)
        }
        try self.init(json: value)
    }

    /// The policy digest of arbitrary JSON (no validation): what a client computes before approving.
    public static func digest(of json: JSONValue) -> String {
        CryptoSupport.sha256Hex(CanonicalJSON.serialize(json))
    }

    public var name: String { json["name"]?.stringValue ?? "" }
    public var partyIds: [String] { (json["parties"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue } }
    public var datasetIds: [String] { (json["datasets"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue } }
    public var expiresAt: Int64? { json["constraints"]?["expiresAt"]?.stringValue.flatMap(RFC3339.parse) }
    public var maxRuns: Int { Int(json["constraints"]?["maxRuns"]?.numberValue ?? 0) }

    /// The rules a JSON Schema cannot say: references between sections must resolve.
    static func crossFieldViolations(_ json: JSONValue) -> [JSONSchemaValidator.Violation] {
        var out: [JSONSchemaValidator.Violation] = []
        let parties = (json["parties"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
        for (i, id) in parties.enumerated() where parties[..<i].contains(id) {
            out.append(.init(field: "parties[\(i)].id", message: "names party \(id) twice"))
        }
        let datasets = json["datasets"]?.arrayValue ?? []
        var datasetIds: [String] = []
        var allColumns = Set<String>()
        for (i, dataset) in datasets.enumerated() {
            let id = dataset["id"]?.stringValue ?? ""
            if datasetIds.contains(id) { out.append(.init(field: "datasets[\(i)].id", message: "names dataset \(id) twice")) }
            datasetIds.append(id)
            if let owner = dataset["owner"]?.stringValue, !parties.contains(owner) {
                out.append(.init(field: "datasets[\(i)].owner", message: "names \(owner), which is not in parties"))
            }
            let columns = (dataset["columns"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
            for (j, column) in columns.enumerated() where columns[..<j].contains(column) {
                out.append(.init(field: "datasets[\(i)].columns[\(j)].name", message: "declares \(column) twice"))
            }
            allColumns.formUnion(columns)
        }
        if json["join"]?["type"]?.stringValue == "inner", let key = json["join"]?["key"]?.stringValue {
            for (i, dataset) in datasets.enumerated() {
                let columns = (dataset["columns"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
                if !columns.contains(key) {
                    out.append(.init(field: "datasets[\(i)].columns", message: "lacks the join key column \(key)"))
                }
            }
        }
        if let label = json["training"]?["label"]?.stringValue, !allColumns.contains(label) {
            out.append(.init(field: "training.label", message: "names \(label), which no dataset declares"))
        }
        for (i, feature) in (json["training"]?["features"]?.arrayValue ?? []).enumerated() {
            if let name = feature.stringValue, !allColumns.contains(name) {
                out.append(.init(field: "training.features[\(i)]", message: "names \(name), which no dataset declares"))
            }
        }
        for (i, output) in (json["outputs"]?.arrayValue ?? []).enumerated() {
            if let recipient = output["recipient"]?.stringValue, !parties.contains(recipient) {
                out.append(.init(field: "outputs[\(i)].recipient", message: "names \(recipient), which is not in parties"))
            }
        }
        return out
    }
}
