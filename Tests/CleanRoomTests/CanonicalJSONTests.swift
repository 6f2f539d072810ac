import Foundation
import Testing

@testable import CleanRoom

/// RFC 8785 (JCS): the examples of the RFC itself, and the parser's strictness (I-JSON).
@Suite struct CanonicalJSONTests {
    /// RFC 8785 Appendix B: IEEE-754 bit patterns and their ECMAScript serialization.
    static let numberVectors: [(UInt64, String)] = [
        (0x0000_0000_0000_0000, "0"),
        (0x8000_0000_0000_0000, "0"),
        (0x0000_0000_0000_0001, "5e-324"),
        (0x8000_0000_0000_0001, "-5e-324"),
        (0x7FEF_FFFF_FFFF_FFFF, "1.7976931348623157e+308"),
        (0xFFEF_FFFF_FFFF_FFFF, "-1.7976931348623157e+308"),
        (0x4340_0000_0000_0000, "9007199254740992"),
        (0xC340_0000_0000_0000, "-9007199254740992"),
        (0x4430_0000_0000_0000, "295147905179352830000"),
        (0x44B5_2D02_C7E1_4AF5, "9.999999999999997e+22"),
        (0x44B5_2D02_C7E1_4AF6, "1e+23"),
        (0x44B5_2D02_C7E1_4AF7, "1.0000000000000001e+23"),
        (0x444B_1AE4_D6E2_EF4E, "999999999999999700000"),
        (0x444B_1AE4_D6E2_EF4F, "999999999999999900000"),
        (0x444B_1AE4_D6E2_EF50, "1e+21"),
        (0x3EB0_C6F7_A0B5_ED8C, "9.999999999999997e-7"),
        (0x3EB0_C6F7_A0B5_ED8D, "0.000001"),
        (0x41B3_DE43_5555_5553, "333333333.3333332"),
        (0x41B3_DE43_5555_5554, "333333333.33333325"),
        (0x41B3_DE43_5555_5555, "333333333.3333333"),
        (0x41B3_DE43_5555_5556, "333333333.3333334"),
        (0x41B3_DE43_5555_5557, "333333333.33333343"),
        (0xBECB_F647_612F_3696, "-0.0000033333333333333333"),
        (0x4314_3FF3_C1CB_0959, "1424953923781206.2"),
    ]

    @Test func numbersSerializeAsRFC8785AppendixB() {
        for (bits, expected) in Self.numberVectors {
            #expect(CanonicalJSON.formatNumber(Double(bitPattern: bits)) == expected, "bits \(String(bits, radix: 16))")
        }
    }

    @Test func everyDoubleFormRoundTripsThroughTheParser() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let value = Double(bitPattern: generator.next())
            guard value.isFinite else { continue }
            let text = CanonicalJSON.formatNumber(value)
            let parsed = try JSONParser.parse(text)
            #expect(parsed == .number(value == 0 ? 0 : value), "\(text)")
        }
    }

    @Test func rfc8785Section323SampleCanonicalizes() throws {
        // RFC 8785 §3.2.3 input and its canonical output.
        let input = #"""
            {
              "numbers": [333333333.33333329, 1E30, 4.50,
                          2e-3, 0.000000000000000000000000001],
              "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
              "literals": [null, true, false]
            }
            """#
        let expected =
            #"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        #expect(CanonicalJSON.string(try JSONParser.parse(input)) == expected)
    }

    @Test func membersSortByUTF16CodeUnitsAsRFC8785Section3224() throws {
        let input = #"""
            {
              "\u20ac": "Euro Sign",
              "\r": "Carriage Return",
              "\ufb33": "Hebrew Letter Dalet With Dagesh",
              "1": "One",
              "\ud83d\ude00": "Emoji: Grinning Face",
              "\u0080": "Control",
              "\u00f6": "Latin Small Letter O With Diaeresis"
            }
            """#
        let value = try JSONParser.parse(input)
        let order = CanonicalJSON.string(value).split(separator: ",").map { String($0.split(separator: ":")[0]) }
        #expect(
            order == [
                "{\"\\r\"", "\"1\"", "\"\u{80}\"", "\"ö\"", "\"€\"", "\"😀\"", "\"\u{FB33}\"",
            ])
    }

    @Test func nestedStructuresHaveNoWhitespaceAndSortedKeys() throws {
        let value = try JSONParser.parse(#" { "b" : [ 1 , { "z" : true , "a" : null } ] , "a" : "x" } "#)
        #expect(CanonicalJSON.string(value) == #"{"a":"x","b":[1,{"a":null,"z":true}]}"#)
    }

    @Test func controlCharactersUseLowercaseUnicodeEscapes() {
        let value = JSONValue.string("\u{01}\u{1f}\u{7f}\t\u{08}\u{0c}")
        #expect(CanonicalJSON.string(value) == "\"\\u0001\\u001f\u{7f}\\t\\b\\f\"")
    }

    @Test(arguments: [
        (#"{"a":1,"a":2}"#, "duplicate member name"),
        (#""\ud800""#, "lone high surrogate"),
        (#""\udc00""#, "lone low surrogate"),
        ("01", "unexpected data"),
        ("1.", "a fraction needs digits"),
        ("1e999", "out of the IEEE-754 double range"),
        ("[1,]", "unexpected character"),
        ("{\"a\":1}x", "unexpected data"),
        ("\"a\u{01}\"", "unescaped control character"),
        ("NaN", "unexpected character"),
        ("", "unexpected end of input"),
    ])
    func parserRefusesInputOutsideIJSON(input: String, reason: String) {
        #expect {
            try JSONParser.parse(input)
        } throws: { error in
            (error as? JSONParser.Error)?.reason.contains(reason) == true
        }
    }

    /// A request body may not hold a NUL; a document stored before that rule still parses.
    @Test func nulIsRefusedInRequestsOnly() throws {
        #expect {
            try JSONParser.parse(Array(#"{"digest":"abc\u0000zz"}"#.utf8), limits: .request)
        } throws: { error in
            (error as? JSONParser.Error)?.reason.contains("(NUL) in a string") == true
        }
        #expect(try JSONParser.parse(#"{"description":"nul\u0000here"}"#)["description"]?.stringValue == "nul\u{0}here")
    }

    @Test func parserLimitsDepthAndSize() {
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(deep) }
        #expect(throws: JSONParser.Error.self) {
            try JSONParser.parse(Array("[1]".utf8), limits: .init(maxBytes: 2, maxDepth: 4))
        }
    }

    @Test func invalidUTF8IsRefused() {
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]) }
    }

    @Test func rfc3339RoundTripsAndRejectsNonsense() {
        #expect(RFC3339.parse("2030-01-01T00:00:00Z") == 1_893_456_000)
        #expect(RFC3339.parse("2030-01-01T01:00:00+01:00") == 1_893_456_000)
        #expect(RFC3339.parse("2030-01-01T00:00:00.123Z") == 1_893_456_000)
        #expect(RFC3339.format(1_893_456_000) == "2030-01-01T00:00:00Z")
        #expect(RFC3339.format(951_782_400) == "2000-02-29T00:00:00Z")
        #expect(RFC3339.parse("2030-02-30T00:00:00Z") == nil)
        #expect(RFC3339.parse("2030-01-01 00:00:00Z") == nil)
        #expect(RFC3339.parse("2030-01-01T00:00:00") == nil)
    }
}
