import Foundation
import Testing
import TestSupport

@testable import Envelope

@Suite struct MessageHeaderParserTests {
    let parser = MessageHeaderParser()

    @Test func parsesEveryPythonVectorHeaderWithoutKeys() throws {
        let details = try VectorFiles.details()
        #expect(details.count == 12)
        for (name, detail) in details where detail["expected-failure"] == nil {
            let message = try VectorFiles.data("ciphertexts/\(name)")
            let header = try parser.parseComplete(message)
            #expect(Int(header.version.rawValue) == detail["version"] as? Int, "\(name)")
            #expect("0x" + hex4(header.suite.id) == detail["algorithm-suite"] as? String, "\(name)")
            #expect(header.messageID == VectorFiles.hex(detail["message-id-hex"]), "\(name)")
            #expect(header.length == detail["header-length"] as? Int, "\(name)")
            #expect(header.encryptionContext.dictionary == detail["encryption-context"] as? [String: String], "\(name)")
            let keys = try #require(detail["encrypted-data-keys"] as? [[String: Any]])
            #expect(header.encryptedDataKeys.count == keys.count, "\(name)")
            for (parsed, expected) in zip(header.encryptedDataKeys, keys) {
                #expect(parsed.providerID == expected["provider-id"] as? String)
                #expect(parsed.providerInfo == VectorFiles.hex(expected["provider-info-hex"]))
                #expect(parsed.ciphertext.count == expected["ciphertext-length"] as? Int)
            }
            #expect(header.frameLength == 4096)
            #expect(header.contentType == .framed)
            #expect(header.bytes == Array(message[0..<header.length]))
        }
    }

    @Test func parsesEveryAWSCompatibilityVectorHeader() throws {
        let vectors = try VectorFiles.compatibilityVectors()
        #expect(vectors.count == 46)
        for (index, vector) in vectors.enumerated() {
            let message = try #require(VectorFiles.base64(vector["ciphertext"]))
            let expectedHeader = try #require(VectorFiles.base64(vector["header"]))
            let header = try parser.parseComplete(message)
            #expect(header.bytes == expectedHeader, "case \(index + 1)")
            #expect(header.messageID == VectorFiles.base64(vector["message-id"]), "case \(index + 1)")
            if vector["status"] as? Bool == true {
                #expect(header.commitment == VectorFiles.base64(vector["commitment"]), "case \(index + 1)")
            }
            let context = (vector["encryption-context"] as? [String: String]) ?? [:]
            for (key, value) in context { #expect(header.encryptionContext[key] == value, "case \(index + 1)") }
        }
    }

    @Test func acceptsUnsortedEncryptionContextKeys() throws {
        // Cases 15/17/19/21 of AWS's vectors were written with unsorted keys.
        let vectors = try VectorFiles.compatibilityVectors()
        var unsorted = 0
        for vector in vectors {
            let header = try parser.parseComplete(try #require(VectorFiles.base64(vector["ciphertext"])))
            if header.encryptionContext.pairs != header.encryptionContext.sortedPairs { unsorted += 1 }
        }
        #expect(unsorted >= 4)
    }

    @Test func returnsNilForEveryStrictPrefixAndTheSameHeaderWhenComplete() throws {
        let message = try VectorFiles.data("ciphertexts/v2-0578-rsa-10000")
        let full = try parser.parseComplete(message)
        for cut in 0..<full.length {
            #expect(try parser.parse(Array(message[0..<cut])) == nil, "prefix \(cut)")
        }
        #expect(try parser.parse(Array(message[0..<full.length])) == full)
        let v1 = try VectorFiles.data("ciphertexts/v1-0378-rsa-10000")
        let v1Header = try parser.parseComplete(v1)
        for cut in 0..<v1Header.length { #expect(try parser.parse(Array(v1[0..<cut])) == nil) }
        #expect(v1Header.version == .v1)
        #expect(v1Header.suite == .aes256GCMHKDFSHA384ECDSAP384)
    }

    @Test func parseCompleteReportsTruncation() throws {
        let message = try VectorFiles.data("ciphertexts/v2-0478-aes-10000")
        #expect(throws: EnvelopeError(.truncatedHeader, "the input ends inside the message header (100 bytes)")) {
            try parser.parseComplete(Array(message[0..<100]))
        }
    }

    // MARK: hostile headers, built field by field

    /// A format-2 header body with the given pieces, followed by a (meaningless) tag.
    static func v2Header(
        version: UInt8 = 2, suite: UInt16 = 0x0478, aad: [UInt8]? = nil, keyCount: UInt16? = nil,
        keys: [[UInt8]] = [edk()], contentType: UInt8 = 2, frameLength: UInt32 = 4096
    ) -> [UInt8] {
        var out: [UInt8] = [version]
        out.appendUInt16(suite)
        out += [UInt8](repeating: 7, count: 32)
        let aadBytes = aad ?? []
        out.appendUInt16(UInt16(aadBytes.count))
        out += aadBytes
        out.appendUInt16(keyCount ?? UInt16(keys.count))
        for key in keys { out += key }
        out.append(contentType)
        out.appendUInt32(frameLength)
        out += [UInt8](repeating: 9, count: 32)
        out += [UInt8](repeating: 1, count: 16)
        return out
    }

    static func edk(id: [UInt8] = Array("p".utf8), info: [UInt8] = Array("k".utf8), ciphertext: [UInt8] = [1, 2]) -> [UInt8] {
        var out: [UInt8] = []
        out.appendUInt16(UInt16(id.count))
        out += id
        out.appendUInt16(UInt16(info.count))
        out += info
        out.appendUInt16(UInt16(ciphertext.count))
        out += ciphertext
        return out
    }

    static func aad(_ pairs: [(String, String)], count: UInt16? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.appendUInt16(count ?? UInt16(pairs.count))
        for (key, value) in pairs {
            out.appendUInt16(UInt16(key.utf8.count))
            out += Array(key.utf8)
            out.appendUInt16(UInt16(value.utf8.count))
            out += Array(value.utf8)
        }
        return out
    }

    func code(_ bytes: [UInt8], limits: MessageLimits = .default) -> EnvelopeError.Code? {
        do {
            _ = try MessageHeaderParser(limits: limits).parse(bytes)
            return nil
        } catch let error as EnvelopeError {
            return error.code
        } catch {
            return EnvelopeError.Code("unexpected \(error)")
        }
    }

    @Test func wellFormedSyntheticHeaderParses() throws {
        let bytes = Self.v2Header(aad: Self.aad([("b", "2"), ("a", "1")]))
        let header = try #require(try parser.parse(bytes + [0xAA]))
        #expect(header.length == bytes.count)
        #expect(header.encryptionContext["a"] == "1")
        #expect(header.encryptionContext.pairs.map(\.key) == ["b", "a"])
    }

    @Test func rejectsHostileHeadersWithPreciseCodes() {
        #expect(code([3]) == .unsupportedVersion)
        #expect(code([1, 0x81]) == .unsupportedMessageType)
        #expect(code(Self.v2Header(suite: 0x9999)) == .unsupportedAlgorithmSuite)
        #expect(code(Self.v2Header(suite: 0x0178)) == .algorithmSuiteNotAllowed)
        #expect(code([1, 0x80, 0x04, 0x78]) == .algorithmSuiteNotAllowed)
        #expect(code(Self.v2Header(aad: Self.aad([("a", "1"), ("a", "2")]))) == .duplicateEncryptionContextKey)
        #expect(code(Self.v2Header(aad: Self.aad([], count: 0))) == .malformedEncryptionContext)
        #expect(code(Self.v2Header(aad: Self.aad([("a", "1")], count: 2))) == .malformedEncryptionContext)
        #expect(code(Self.v2Header(aad: Self.aad([("a", "1")]) + [0])) == .malformedEncryptionContext)
        var badUTF8 = Self.aad([("ab", "1")])
        badUTF8[4] = 0xFF
        #expect(code(Self.v2Header(aad: badUTF8)) == .invalidUTF8)
        #expect(code(Self.v2Header(keys: [])) == .noEncryptedDataKeys)
        #expect(code(Self.v2Header(keys: Array(repeating: Self.edk(), count: 65))) == .tooManyEncryptedDataKeys)
        #expect(code(Self.v2Header(keyCount: 65535, keys: [])) == .tooManyEncryptedDataKeys)
        #expect(code(Self.v2Header(keys: [Self.edk(id: [0xC3])])) == .invalidUTF8)
        #expect(code(Self.v2Header(contentType: 3)) == .invalidContentType)
        #expect(code(Self.v2Header(frameLength: 0)) == .invalidFrameLength)
        #expect(code(Self.v2Header(contentType: 1, frameLength: 4096)) == .invalidFrameLength)
        #expect(code(Self.v2Header(frameLength: 4 * 1024 * 1024 + 1)) == .frameLengthExceedsLimit)
        var small = MessageLimits.default
        small.maxHeaderLength = 100
        let big = Self.v2Header(keys: [Self.edk(ciphertext: [UInt8](repeating: 0, count: 200))])
        #expect(code(big, limits: small) == .headerTooLarge)
        // An incomplete header that already exceeds the limit fails instead of asking for more.
        #expect(code(Array(big[0..<150]), limits: small) == .headerTooLarge)
    }

    @Test func rejectsBadFormatOneFields() throws {
        var v1 = try VectorFiles.data("ciphertexts/v1-0178-aes-10000")
        let header = try parser.parseComplete(v1)
        // Reserved(4) IVLength(1) FrameLength(4) end the format-1 header body.
        let reserved = header.body.count - 9
        v1[reserved] = 1
        #expect(code(v1) == .invalidReservedBytes)
        v1[reserved] = 0
        v1[header.body.count - 5] = 16
        #expect(code(v1) == .invalidIVLength)
    }

    @Test func randomMutationsNeverCrash() throws {
        let message = try VectorFiles.data("ciphertexts/v2-0578-rsa-10000")
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var mutated = Array(message[0..<800])
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                mutated[Int.random(in: 0..<mutated.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            _ = try? parser.parse(mutated)
        }
    }
}
