// libFuzzer entry point for the policy JSON path (issue #6): the strict JSON parser, RFC 8785
// canonicalization and the policy schema validator, compiled together as the CleanRoom module
// (only its pure files). Properties checked on every input the parser accepts:
// canonical form re-parses to an equal value, canonicalization is idempotent, and the schema
// validator terminates and names a field for every violation.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPolicyJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let value = try? JSONParser.parse(bytes, limits: .init(maxBytes: 1 << 16, maxDepth: 32)) else { return 0 }
    let canonical = CanonicalJSON.serialize(value)
    guard let again = try? JSONParser.parse(canonical, limits: .init(maxBytes: 1 << 20, maxDepth: 32)) else {
        fatalError("canonical form does not re-parse: \(String(decoding: canonical, as: UTF8.self))")
    }
    precondition(again == value, "canonical form changes the value")
    precondition(CanonicalJSON.serialize(again) == canonical, "canonicalization is not idempotent")
    for violation in FuzzSchema.validator.validate(value) {
        precondition(!violation.field.isEmpty && !violation.message.isEmpty, "a violation without a field")
    }
    return 0
}

enum FuzzSchema {
    static let validator = try! JSONSchemaValidator(schema: try! JSONParser.parse(EmbeddedPolicyFiles.policySchema))
}
