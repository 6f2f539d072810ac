import Crypto
import Foundation
import Testing

@testable import Envelope

@Suite struct StreamingTests {
    static func aesKeyring() throws -> RawAESKeyring {
        try RawAESKeyring(keyNamespace: "ns", keyName: "aes", wrappingKey: SecureBytes(randomCount: 32))
    }

    static func plaintext(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) } }

    @Test(arguments: [AlgorithmSuite.aes256GCMHKDFSHA512Commit, .aes256GCMHKDFSHA512CommitECDSAP384])
    func roundTripsEverySizeAroundFrameBoundaries(suite: AlgorithmSuite) async throws {
        let keyring = try Self.aesKeyring()
        let frame = 64
        for size in [0, 1, frame - 1, frame, frame + 1, 2 * frame, 3 * frame - 1, 1000] {
            let input = Self.plaintext(size)
            let context = try EncryptionContext([("cleanroom:dataset", "d1"), ("a", "b")])
            let message = try await MessageEncryptor.encrypt(
                input, keyring: keyring, encryptionContext: context, suite: suite, frameLength: frame)
            let header = try MessageHeaderParser().parseComplete(message)
            #expect(header.suite == suite)
            #expect(header.frameLength == UInt32(frame))
            let (plaintext, verified) = try await MessageDecryptor.decrypt(message, keyring: keyring)
            #expect(plaintext == input, "size \(size)")
            #expect(verified.plaintextLength == UInt64(size))
            #expect(verified.signatureVerified == suite.isSigned)
            #expect(verified.encryptionContext["cleanroom:dataset"] == "d1")
        }
    }

    @Test func feedingInAnySplitGivesTheSamePlaintext() async throws {
        let keyring = try Self.aesKeyring()
        let input = Self.plaintext(300)
        let message = try await MessageEncryptor.encrypt(
            input, keyring: keyring, suite: .aes256GCMHKDFSHA512CommitECDSAP384, frameLength: 100)
        // Split once at every offset.
        for cut in 0...message.count {
            let (plaintext, _) = try await decryptInChunks(message, keyring: keyring, chunks: [cut])
            #expect(plaintext == input, "split at \(cut)")
        }
        // Byte by byte.
        let (bytewise, _) = try await decryptInChunks(
            message, keyring: keyring, chunks: Array(repeating: 1, count: message.count))
        #expect(bytewise == input)
    }

    @Test func plaintextIsReleasedFrameByFrameAndOnlyAfterEachTag() async throws {
        let keyring = try Self.aesKeyring()
        let input = Self.plaintext(250)
        let message = try await MessageEncryptor.encrypt(input, keyring: keyring, frameLength: 100)
        let headerLength = try MessageHeaderParser().parseComplete(message).length
        let frameSize = 4 + 12 + 100 + 16
        let decryptor = MessageDecryptor(keyring: keyring)
        // Everything but the last byte of frame 1: nothing released yet.
        var released = try await decryptor.update(Array(message[0..<headerLength + frameSize - 1]))
        #expect(released.isEmpty)
        released = try await decryptor.update([message[headerLength + frameSize - 1]])
        #expect(released.bytes == Array(input[0..<100]))
        #expect(decryptor.authenticatedHeader != nil)
    }

    @Test func unverifiedOutputIsNeverReportedVerified() async throws {
        // A signed message: frames authenticate and are released, but without the footer
        // finish() refuses, and a bad footer fails when it arrives.
        let keyring = try Self.aesKeyring()
        let input = Self.plaintext(500)
        var message = try await MessageEncryptor.encrypt(
            input, keyring: keyring, suite: .aes256GCMHKDFSHA512CommitECDSAP384, frameLength: 128)
        let signatureLength = Self.footerSignatureLength(message)
        let withoutFooter = Array(message[0..<message.count - 2 - signatureLength])
        let decryptor = MessageDecryptor(keyring: keyring)
        let released = try await decryptor.update(withoutFooter)
        #expect(released.bytes == input)
        #expect(await errorCode { _ = try decryptor.finish() } == .truncatedMessage)
        message[message.count - 5] ^= 0x01
        #expect(await errorCode { _ = try await MessageDecryptor.decrypt(message, keyring: keyring) } == .signatureInvalid)
    }

    /// The footer is the last 2 + n bytes where the 2 bytes hold n; find n by trying.
    static func footerSignatureLength(_ message: [UInt8]) -> Int {
        for n in 60...110 where message.count > n + 2 {
            let at = message.count - n - 2
            if Int(message[at]) << 8 | Int(message[at + 1]) == n { return n }
        }
        return 0
    }

    @Test func everyTruncationFailsAndNothingIsVerified() async throws {
        let keyring = try Self.aesKeyring()
        for suite in AlgorithmSuite.encryptable {
            let message = try await MessageEncryptor.encrypt(Self.plaintext(200), keyring: keyring, suite: suite, frameLength: 64)
            for cut in 0..<message.count {
                let code = await errorCode {
                    _ = try await decryptInChunks(Array(message[0..<cut]), keyring: keyring, chunks: [cut])
                }
                #expect(code == .truncatedMessage, "\(suite) cut at \(cut)")
            }
        }
    }

    @Test func extendedStreamsFailWithTrailingData() async throws {
        let keyring = try Self.aesKeyring()
        for suite in AlgorithmSuite.encryptable {
            let message = try await MessageEncryptor.encrypt(Self.plaintext(10), keyring: keyring, suite: suite, frameLength: 64)
            #expect(await errorCode { _ = try await MessageDecryptor.decrypt(message + [0], keyring: keyring) } == .trailingData)
            #expect(await errorCode {
                _ = try await decryptInChunks(message + message, keyring: keyring, chunks: [message.count, message.count])
            } == .trailingData)
        }
    }

    @Test func everySingleBitFlipIsRejected() async throws {
        let keyring = try Self.aesKeyring()
        let message = try await MessageEncryptor.encrypt(
            Self.plaintext(100), keyring: keyring, suite: .aes256GCMHKDFSHA512CommitECDSAP384, frameLength: 40)
        for index in 0..<message.count {
            var mutated = message
            mutated[index] ^= 0x10
            let code = await errorCode { _ = try await MessageDecryptor.decrypt(mutated, keyring: keyring) }
            #expect(code != nil, "flip at \(index) was accepted")
        }
    }

    @Test func reorderedFramesFailWithFrameOutOfSequence() async throws {
        let keyring = try Self.aesKeyring()
        let message = try await MessageEncryptor.encrypt(Self.plaintext(300), keyring: keyring, frameLength: 100)
        let headerLength = try MessageHeaderParser().parseComplete(message).length
        let frameSize = 4 + 12 + 100 + 16
        let frame1 = message[headerLength..<headerLength + frameSize]
        let frame2 = message[headerLength + frameSize..<headerLength + 2 * frameSize]
        let swapped = Array(message[0..<headerLength]) + frame2 + frame1 + message[(headerLength + 2 * frameSize)...]
        #expect(await errorCode { _ = try await MessageDecryptor.decrypt(swapped, keyring: keyring) } == .frameOutOfSequence)
    }

    @Test func limitsAreEnforcedOnDecrypt() async throws {
        let keyring = try Self.aesKeyring()
        let message = try await MessageEncryptor.encrypt(Self.plaintext(10), keyring: keyring, frameLength: 4096)
        var limits = MessageLimits.default
        limits.maxFrameLength = 1024
        #expect(await errorCode {
            _ = try await decryptInChunks(message, keyring: keyring, chunks: [message.count], limits: limits)
        } == .frameLengthExceedsLimit)
    }

    @Test func encryptorRejectsReservedContextAndReadOnlySuites() async throws {
        let keyring = try Self.aesKeyring()
        #expect(await errorCode {
            _ = try await MessageEncryptor(keyring: keyring, encryptionContext: try EncryptionContext([("aws-crypto-x", "1")]))
        } == .reservedEncryptionContextKey)
        #expect(await errorCode { _ = try await MessageEncryptor(keyring: keyring, suite: .aes256GCMHKDFSHA256) } == .algorithmSuiteNotAllowed)
        #expect(await errorCode { _ = try await MessageEncryptor(keyring: keyring, frameLength: 0) } == .invalidFrameLength)
    }

    @Test func decryptorIsDeadAfterAnError() async throws {
        let keyring = try Self.aesKeyring()
        let decryptor = MessageDecryptor(keyring: keyring)
        #expect(await errorCode { _ = try await decryptor.update([9, 9, 9]) } == .unsupportedVersion)
        #expect(await errorCode { _ = try await decryptor.update([]) } == .streamFinished)
    }
}
