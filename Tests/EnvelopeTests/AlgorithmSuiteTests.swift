import Testing

@testable import Envelope

@Suite struct AlgorithmSuiteTests {
    @Test func tableHasEverySuiteTheIssueLists() {
        let ids = AlgorithmSuite.all.map(\.id)
        #expect(ids == [0x0014, 0x0046, 0x0078, 0x0114, 0x0146, 0x0178, 0x0214, 0x0346, 0x0378, 0x0478, 0x0578])
        #expect(AlgorithmSuite.suite(id: 0x0478)?.isCommitting == true)
        #expect(AlgorithmSuite.suite(id: 0x0578)?.signature == .ecdsaP384SHA384)
        #expect(AlgorithmSuite.suite(id: 0x0214)?.signature == .ecdsaP256SHA256)
        #expect(AlgorithmSuite.suite(id: 0x0046)?.keyLength == 24)
        #expect(AlgorithmSuite.suite(id: 0x0999) == nil)
    }

    @Test func parsesSuiteNames() {
        #expect(AlgorithmSuite.suite(named: "0x0478") == .aes256GCMHKDFSHA512Commit)
        #expect(AlgorithmSuite.suite(named: "0578") == .aes256GCMHKDFSHA512CommitECDSAP384)
        #expect(AlgorithmSuite.suite(named: "0x") == nil)
        #expect(AlgorithmSuite.suite(named: "0x12345") == nil)
        #expect(AlgorithmSuite.suite(named: "zz") == nil)
    }
}

@Suite struct EncryptionContextTests {
    @Test func serializesSortedByUTF8Bytes() throws {
        let context = try EncryptionContext([("über-key", "wärt"), ("purpose", "x"), ("Z", "y")])
        let serialized = try context.serialized()
        let parsed = try EncryptionContext.parse(serialized[...])
        #expect(parsed.pairs.map(\.key) == ["Z", "purpose", "über-key"])
        #expect(parsed == context)
        #expect(try EncryptionContext().serialized().isEmpty)
    }

    @Test func rejectsDuplicateKeysByBytes() {
        #expect(throws: EnvelopeError.self) { try EncryptionContext([("a", "1"), ("a", "2")]) }
        // Canonically equivalent but different bytes: different keys, as in every other SDK.
        #expect(throws: Never.self) { try EncryptionContext([("\u{E9}", "1"), ("e\u{301}", "2")]) }
    }

    @Test func containsChecksValues() throws {
        let context = try EncryptionContext([("a", "1"), ("b", "2")])
        #expect(context.contains(try EncryptionContext([("a", "1")])))
        #expect(!context.contains(try EncryptionContext([("a", "2")])))
        #expect(!context.contains(try EncryptionContext([("c", "1")])))
    }
}
