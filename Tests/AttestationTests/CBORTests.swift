import Crypto
import Testing

@testable import Attestation

private func hex(_ s: String) -> [UInt8] { Hex.decode(String(s.filter { $0 != " " }))! }

private func decodeError(_ bytes: [UInt8], limits: CBORDecoder.Limits = .default) -> CBORError.Code? {
    do {
        _ = try CBORDecoder(limits: limits).decode(bytes)
        return nil
    } catch {
        return error.code
    }
}

@Suite struct CBORDecoderTests {
    // RFC 8949 Appendix A: encoded form → value; each of these is also the preferred encoding.
    static let appendixA: [(String, CBOR)] = [
        ("00", .unsigned(0)), ("17", .unsigned(23)), ("1818", .unsigned(24)), ("1903e8", .unsigned(1000)),
        ("1a000f4240", .unsigned(1_000_000)), ("1b000000e8d4a51000", .unsigned(1_000_000_000_000)),
        ("1bffffffffffffffff", .unsigned(.max)), ("3bffffffffffffffff", .negative(.max)),
        ("20", .int(-1)), ("29", .int(-10)), ("3863", .int(-100)), ("3903e7", .int(-1000)),
        ("f90000", .float(0.0)), ("f98000", .float(-0.0)), ("f93c00", .float(1.0)), ("fb3ff199999999999a", .float(1.1)),
        ("f93e00", .float(1.5)), ("f97bff", .float(65504.0)), ("fa47c35000", .float(100000.0)),
        ("fa7f7fffff", .float(3.4028234663852886e+38)), ("fb7e37e43c8800759c", .float(1.0e+300)),
        ("f90001", .float(5.960464477539063e-8)), ("f90400", .float(0.00006103515625)), ("f9c400", .float(-4.0)),
        ("fbc010666666666666", .float(-4.1)), ("f97c00", .float(.infinity)), ("f9fc00", .float(-.infinity)),
        ("f4", .bool(false)), ("f5", .bool(true)), ("f6", .null), ("f7", .undefined), ("f0", .simple(16)),
        ("f8ff", .simple(255)),
        ("c074323031332d30332d32315432303a30343a30305a", .tagged(0, .text("2013-03-21T20:04:00Z"))),
        ("c11a514b67b0", .tagged(1, .unsigned(1_363_896_240))), ("d74401020304", .tagged(23, .bytes([1, 2, 3, 4]))),
        ("40", .bytes([])), ("4401020304", .bytes([1, 2, 3, 4])), ("60", .text("")), ("6161", .text("a")),
        ("6449455446", .text("IETF")), ("62225c", .text("\"\\")), ("62c3bc", .text("\u{00fc}")),
        ("63e6b0b4", .text("\u{6c34}")), ("64f0908591", .text("\u{10151}")), ("80", .array([])),
        ("83010203", .array([.unsigned(1), .unsigned(2), .unsigned(3)])),
        (
            "8301820203820405",
            .array([.unsigned(1), .array([.unsigned(2), .unsigned(3)]), .array([.unsigned(4), .unsigned(5)])])
        ),
        ("a0", .map([])), ("a201020304", .map([(.unsigned(1), .unsigned(2)), (.unsigned(3), .unsigned(4))])),
        (
            "a26161016162820203",
            .map([(.text("a"), .unsigned(1)), (.text("b"), .array([.unsigned(2), .unsigned(3)]))])
        ),
    ]

    @Test func decodesEveryAppendixAExampleAndReencodesItIdentically() throws {
        for (encoded, value) in Self.appendixA {
            let bytes = hex(encoded)
            let decoded = try CBORDecoder.decode(bytes)
            #expect(decoded == value, "\(encoded)")
            #expect(CBOREncoder.encode(value) == bytes, "\(encoded)")
            #expect(try CBORDecoder.decode(bytes, limits: .deterministic) == value, "\(encoded) is deterministic")
        }
    }

    @Test func decodesIndefiniteLengthItemsFromAppendixA() throws {
        #expect(try CBORDecoder.decode(hex("5f42010243030405ff")) == .bytes([1, 2, 3, 4, 5]))
        #expect(try CBORDecoder.decode(hex("7f657374726561646d696e67ff")) == .text("streaming"))
        #expect(try CBORDecoder.decode(hex("9fff")) == .array([]))
        #expect(
            try CBORDecoder.decode(hex("9f018202039f0405ffff"))
                == .array([.unsigned(1), .array([.unsigned(2), .unsigned(3)]), .array([.unsigned(4), .unsigned(5)])])
        )
        #expect(
            try CBORDecoder.decode(hex("bf61610161629f0203ffff"))
                == .map([(.text("a"), .unsigned(1)), (.text("b"), .array([.unsigned(2), .unsigned(3)]))])
        )
        #expect(
            try CBORDecoder.decode(hex("826161bf61626163ff"))
                == .array([.text("a"), .map([(.text("b"), .text("c"))])])
        )
        // NaN decodes from every width.
        for nan in ["f97e00", "fa7fc00000", "fb7ff8000000000000"] {
            guard case .float(let d) = try CBORDecoder.decode(hex(nan)) else { Issue.record("not a float"); continue }
            #expect(d.isNaN)
        }
    }

    @Test func rejectsMalformedInputWithPreciseCodes() {
        let cases: [(String, CBORError.Code)] = [
            ("", .truncated), ("18", .truncated), ("19 01", .truncated), ("1b 00 00 00 00 00 00 00", .truncated),
            ("44 01 02 03", .truncated), ("83 01 02", .truncated), ("a2 01 02 03", .truncated),
            ("5f 41 01", .truncated), ("9f 01", .truncated), ("bf 01 02", .truncated), ("c0", .truncated),
            ("f9 00", .truncated), ("f8", .truncated), ("01 00", .trailingBytes), ("a0 a0", .trailingBytes),
            ("1c", .reservedAdditionalInfo), ("3d", .reservedAdditionalInfo), ("5e", .reservedAdditionalInfo),
            ("fc", .reservedAdditionalInfo), ("1f", .invalidIndefiniteLength), ("3f", .invalidIndefiniteLength),
            ("df 01", .invalidIndefiniteLength), ("ff", .unexpectedBreak), ("82 01 ff", .unexpectedBreak),
            ("a2 01 02 ff 00", .unexpectedBreak), ("5f 61 61 ff", .invalidStringChunk),
            ("5f 5f 41 01 ff ff", .invalidStringChunk),
            ("7f 41 61 ff", .invalidStringChunk), ("7f 01 ff", .invalidStringChunk), ("62 c3 28", .invalidUTF8),
            ("61 ff", .invalidUTF8), ("7f 61 c3 61 bc ff", .invalidUTF8), ("f8 1f", .invalidSimpleValue),
            ("f8 00", .invalidSimpleValue), ("bf 01 ff", .oddMapLength), ("a2 01 02 01 03", .duplicateMapKey),
            ("a2 61 61 01 7f 61 61 ff 02", .duplicateMapKey), ("5b ff ff ff ff ff ff ff ff", .lengthTooLarge),
            ("9b 00 00 00 00 00 00 00 05 01", .truncated),
        ]
        for (input, code) in cases {
            #expect(decodeError(hex(input)) == code, "\(input)")
        }
    }

    @Test func enforcesDepthItemAndSizeLimits() {
        let limits = CBORDecoder.Limits(maxInputBytes: 64, maxDepth: 3, maxItems: 10)
        #expect(decodeError(hex("818180"), limits: limits) == nil)
        #expect(decodeError(hex("81818180"), limits: limits) == .depthLimitExceeded)
        #expect(decodeError(hex("c1c1c1c101"), limits: limits) == .depthLimitExceeded)
        #expect(decodeError(hex("a1 01 a1 01 a1 01 a1 01 02"), limits: limits) == .depthLimitExceeded)
        #expect(decodeError(hex("89 010203040506070809"), limits: limits) == nil)
        #expect(decodeError(hex("8a 0102030405060708090a"), limits: limits) == .itemLimitExceeded)
        #expect(
            decodeError(hex("5f 41 01 41 01 41 01 41 01 41 01 41 01 41 01 41 01 41 01 41 01 ff"), limits: limits)
                == .itemLimitExceeded
        )
        #expect(decodeError([UInt8](repeating: 0x80, count: 65), limits: limits) == .inputTooLarge)
        // A hostile nesting of a million arrays stops at the depth limit instead of the stack.
        #expect(decodeError([UInt8](repeating: 0x81, count: 1_000_000) + [0x80]) == .depthLimitExceeded)
        // A declared length far beyond the input fails before allocating.
        #expect(decodeError(hex("9a 7f ff ff ff")) == .lengthTooLarge)
        #expect(decodeError(hex("ba 00 01 00 00 01 02")) == .truncated)
        #expect(decodeError(hex("9a 00 01 00 00 01 02")) == .truncated)
        #expect(decodeError(hex("5a 00 01 00 00 01 02")) == .truncated)
    }

    @Test func deterministicModeRejectsWhatCoreDeterministicEncodingForbids() {
        let cases: [(String, CBORError.Code)] = [
            ("18 17", .nonMinimalEncoding), ("19 00 ff", .nonMinimalEncoding), ("1a 00 00 ff ff", .nonMinimalEncoding),
            ("1b 00 00 00 00 ff ff ff ff", .nonMinimalEncoding), ("38 00", .nonMinimalEncoding),
            ("58 01 00", .nonMinimalEncoding), ("98 00", .nonMinimalEncoding), ("fa 3f 80 00 00", .nonMinimalEncoding),
            ("fb 3f f0 00 00 00 00 00 00", .nonMinimalEncoding), ("5f ff", .indefiniteLengthNotAllowed),
            ("9f ff", .indefiniteLengthNotAllowed), ("bf ff", .indefiniteLengthNotAllowed),
            ("a2 02 00 01 00", .unsortedMapKeys), ("a2 61 61 00 01 00", .unsortedMapKeys),
            ("a2 18 18 00 17 00", .unsortedMapKeys),
            // Found by fuzz-cbor: a half-precision NaN with a payload is not the canonical NaN.
            ("f9 ff ff", .nonMinimalEncoding), ("f9 7e 01", .nonMinimalEncoding),
        ]
        for (input, code) in cases {
            #expect(decodeError(hex(input), limits: .deterministic) == code, "\(input)")
            if code != .unsortedMapKeys { #expect(decodeError(hex(input)) == nil, "\(input) is fine when not strict") }
        }
    }

    @Test func everyPrefixOfAValidItemIsTruncatedAndNeverCrashes() throws {
        let bytes = hex("bf 63 6b 65 79 9f 01 38 63 5f 42 01 02 ff c1 fb 3f f1 99 99 99 99 99 9a ff 61 62 a1 00 f6 ff")
        _ = try CBORDecoder.decode(bytes)
        for cut in 0..<bytes.count {
            #expect(decodeError(Array(bytes[..<cut])) == .truncated, "prefix \(cut)")
        }
    }
}

@Suite struct CBOREncoderTests {
    @Test func deterministicEncodingSortsMapKeysByTheirEncodedBytes() throws {
        let map: CBOR = .map([
            (.text("aa"), .unsigned(1)), (.unsigned(100), .unsigned(2)), (.text("b"), .unsigned(3)),
            (.int(-1), .unsigned(4)), (.unsigned(10), .unsigned(5)),
        ])
        let encoded = CBOREncoder.encode(map, deterministic: true)
        #expect(encoded == hex("a5 0a 05 18 64 02 20 04 61 62 03 62 61 61 01"))
        _ = try CBORDecoder.decode(encoded, limits: .deterministic)
        #expect(CBOREncoder.encode(map) != encoded, "without sorting the given order is kept")
    }

    @Test func roundTripsNestedItemsThroughDecoder() throws {
        let value: CBOR = .tagged(
            18,
            .array([
                .bytes([0xa1, 0x01, 0x38, 0x22]), .map([]), .bytes(Array(repeating: 7, count: 300)),
                .array([.text(String(repeating: "x", count: 70_000)), .int(-70_000), .unsigned(UInt64(UInt32.max) + 1)]
                ),
            ])
        )
        #expect(try CBORDecoder.decode(CBOREncoder.encode(value)) == value)
    }

    @Test func floatsUseTheShortestExactWidth() {
        #expect(CBOREncoder.encode(.float(0.5)) == hex("f93800"))
        #expect(CBOREncoder.encode(.float(100000.0)) == hex("fa47c35000"))
        #expect(CBOREncoder.encode(.float(0.1)) == hex("fb3fb999999999999a"))
        #expect(CBOREncoder.encode(.float(.nan)) == hex("f97e00"))
    }
}
