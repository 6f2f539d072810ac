import Foundation
import Testing
import TestSupport

@testable import CleanRoom

/// The policy schema, its examples, and the validator's field-naming errors.
@Suite struct PolicySchemaTests {
    static let examples = ["hospitals-union.json", "bank-retailer-inner-join.json"]

    static func example(_ name: String) throws -> JSONValue {
        let url = TestEnvironment.repoRoot.appendingPathComponent("policies/examples/\(name)")
        return try JSONParser.parse(Array(try Data(contentsOf: url)))
    }

    @Test func compiledInFilesAreTheFilesInPolicies() throws {
        let root = TestEnvironment.repoRoot.appendingPathComponent("policies")
        let schema = try String(contentsOf: root.appendingPathComponent("policy.schema.json"), encoding: .utf8)
        let table = try String(contentsOf: root.appendingPathComponent("roles-and-permissions.json"), encoding: .utf8)
        #expect(schema == EmbeddedPolicyFiles.policySchema, "run `make policies-embed`")
        #expect(table == EmbeddedPolicyFiles.rolesAndPermissions, "run `make policies-embed`")
    }

    @Test(arguments: examples)
    func examplesAreValid(name: String) throws {
        let violations = PolicyDocument.schemaValidator.validate(try Self.example(name))
        #expect(violations.isEmpty, "\(violations)")
        #expect(PolicyDocument.crossFieldViolations(try Self.example(name)).isEmpty)
    }

    @Test func schemaAndExamplesPassPythonJSONSchemaDraft202012() throws {
        let root = TestEnvironment.repoRoot.appendingPathComponent("policies").path
        let script = """
            import json, sys, jsonschema
            root = sys.argv[1]
            schema = json.load(open(root + "/policy.schema.json"))
            jsonschema.Draft202012Validator.check_schema(schema)
            v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
            for name in sys.argv[2:]:
                doc = json.load(open(root + "/examples/" + name))
                errors = list(v.iter_errors(doc))
                assert not errors, (name, [e.message for e in errors])
            bad = json.load(open(root + "/examples/" + sys.argv[2]))
            bad["join"] = {"type": "inner"}
            assert list(v.iter_errors(bad)), "an inner join without a key must be invalid"
            print("ok")
            """
        let result = try ProcessRunner.python(script, [root] + Self.examples)
        #expect(result.status == 0, "\(result.stderrText)")
        #expect(result.stdoutText.contains("ok"))
    }

    static func violations(_ edit: (JSONValue) -> JSONValue) throws -> [String] {
        let document = edit(try example("bank-retailer-inner-join.json"))
        let schema = PolicyDocument.schemaValidator.validate(document)
        return (schema.isEmpty ? PolicyDocument.crossFieldViolations(document) : schema).map(\.field)
    }

    static func editing(_ path: [String], _ value: JSONValue?) -> (JSONValue) -> JSONValue {
        func apply(_ json: JSONValue, _ path: ArraySlice<String>) -> JSONValue {
            guard let key = path.first else { return value ?? json }
            if let index = Int(key), case .array(var items) = json {
                items[index] = apply(items[index], path.dropFirst())
                return .array(items)
            }
            guard case .object(var members) = json else { return json }
            if path.count == 1, value == nil {
                members.removeAll { $0.0 == key }
                return .object(members)
            }
            return json.setting(key, to: apply(json[key] ?? .null, path.dropFirst()))
        }
        return { apply($0, path[...]) }
    }

    @Test func eachViolationNamesTheFailingField() throws {
        #expect(try Self.violations(Self.editing(["name"], nil)) == ["name"])
        #expect(try Self.violations(Self.editing(["datasets", "1", "owner"], .string("Bad Owner"))) == ["datasets[1].owner"])
        #expect(try Self.violations(Self.editing(["training", "validation", "fraction"], .number(1.5)))
            == ["training.validation.fraction"])
        #expect(try Self.violations(Self.editing(["enclave", "measurements", "0", "pcr0"], .string("abc")))
            == ["enclave.measurements[0].pcr0"])
        #expect(try Self.violations(Self.editing(["constraints", "expiresAt"], .string("tomorrow")))
            == ["constraints.expiresAt"])
        #expect(try Self.violations(Self.editing(["constraints", "surprise"], .bool(true))) == ["constraints.surprise"])
        #expect(try Self.violations(Self.editing(["join", "key"], nil)) == ["join.key"])
        #expect(try Self.violations(Self.editing(["outputs", "1", "artifacts", "0"], .string("rows")))
            == ["outputs[1].artifacts[0]"])
        #expect(try Self.violations(Self.editing(["training", "hyperparameters", "Bad-Name"], .number(1)))
            == ["training.hyperparameters.Bad-Name"])
        // Cross-field rules.
        #expect(try Self.violations(Self.editing(["outputs", "1", "recipient"], .string("someone-else")))
            == ["outputs[1].recipient"])
        #expect(try Self.violations(Self.editing(["training", "label"], .string("missing_col"))) == ["training.label"])
        #expect(try Self.violations(Self.editing(["join", "key"], .string("income"))) == ["datasets[1].columns"])
    }

    /// uniqueItems names each repeat, whatever the items' kind, in one pass (it compared each item
    /// with all before it); an array over maxItems is refused as such, its items not judged one by
    /// one (a 36,000-feature proposal took seconds, in the database's write lock, in a review).
    @Test func repeatedItemsAreNamedAtTheirPlace() throws {
        let schema = try JSONParser.parse(
            Array(#"{"type": "array", "maxItems": 4096, "uniqueItems": true, "items": {"type": "string", "pattern": "^f"}}"#.utf8))
        let validator = try JSONSchemaValidator(schema: schema)
        let items: JSONValue = .array([.string("fa"), .string("fb"), .string("fa"), .string("x"), .string("fb")])
        #expect(validator.validate(items).map(\.description) == [
            "$[2]: must not repeat an item", "$[4]: must not repeat an item", "$[3]: must match the pattern ^f",
        ])
        let many = JSONValue.array((0..<40_000).map { _ in .string("x") })
        let verdict = validator.validate(many)
        #expect(verdict.map(\.description) == ["$: must have at most 4096 items"], "\(verdict.prefix(3))")
    }

    @Test func policyDocumentErrorCarriesCodeAndFields() throws {
        let bad = Self.editing(["version"], .number(2))(try Self.example("hospitals-union.json"))
        #expect {
            try PolicyDocument(json: bad)
        } throws: { error in
            guard let error = error as? DomainError else { return false }
            return error.code == "invalid_policy" && error.details.map(\.field) == ["version"]
                && error.message.contains("version")
        }
    }

    @Test func digestIsSHA256OfTheCanonicalFormAndIgnoresLayout() throws {
        let document = try PolicyDocument(json: try Self.example("hospitals-union.json"))
        let url = TestEnvironment.repoRoot.appendingPathComponent("policies/examples/hospitals-union.json")
        let reformatted = try JSONSerialization.data(
            withJSONObject: try JSONSerialization.jsonObject(with: try Data(contentsOf: url)), options: [.prettyPrinted])
        let again = try PolicyDocument(bytes: Array(reformatted))
        #expect(document.digest == again.digest)
        #expect(document.digest.count == 64)
        #expect(CanonicalJSON.string(document.json).contains("\"tol\":0.000001"))
        let changed = try PolicyDocument(json: Self.editing(["constraints", "maxRuns"], .number(4))(document.json))
        #expect(changed.digest != document.digest)
    }

    @Test func validatorRefusesSchemasWithUnsupportedKeywords() throws {
        #expect(throws: JSONSchemaValidator.SchemaError.self) {
            try JSONSchemaValidator(schema: try JSONParser.parse(#"{"type":"object","dependentRequired":{}}"#))
        }
        #expect(throws: JSONSchemaValidator.SchemaError.self) {
            try JSONSchemaValidator(schema: try JSONParser.parse(#"{"$ref":"https://example.com/x"}"#))
        }
    }

    @Test func permissionTableCoversEveryScopeAndHasNoDuplicates() {
        let table = PermissionTable.standard
        #expect(table.routes.count >= 20)
        #expect(Set(table.routes.map(\.operation)).count == table.routes.count)
        #expect(Set(table.routes.map { "\($0.method) \($0.path)" }).count == table.routes.count)
        for route in table.routes where route.scope != .enrollment && route.scope != .public {
            #expect(!route.roles.isEmpty, "\(route.operation) has no roles")
        }
        #expect(table.allows([.owner], operation: "uploadDataset"))
        #expect(!table.allows([.partner], operation: "uploadDataset"))
        #expect(!table.allows([.partyAdmin, .owner, .reviewer, .partner], operation: "createEnrollmentToken"))
    }
}
