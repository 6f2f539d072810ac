import Crypto
import Testing

@testable import Enclave

@Suite struct SealedCheckpointTests {
    let key = try! SecureBytes(randomCount: 32)
    let binding = SealedCheckpoint.Binding(policyDigest: Array(repeating: 0xA1, count: 32), measurement: Array(repeating: 0x5C, count: 48))
    let state: [UInt8] = Array("CRTC trees and weights".utf8) + Array(0..<200)

    @Test func sealedCheckpointOpensWithTheSameKeyPolicyAndMeasurement() throws {
        let sealed = try SealedCheckpoint.seal(state, iteration: 42, dataKey: key, binding: binding)
        #expect(SealedCheckpoint.iteration(of: sealed) == 42)
        #expect(sealed.count == SealedCheckpoint.minimumBytes + state.count)
        #expect(!sealed.containsSubsequence(Array("CRTC".utf8)), "the state is not in the clear")
        let opened = try SealedCheckpoint.open(sealed, dataKey: key, binding: binding)
        #expect(opened.iteration == 42 && opened.plaintext == state)
        // A fresh nonce each time.
        #expect(try SealedCheckpoint.seal(state, iteration: 42, dataKey: key, binding: binding) != sealed)
    }

    @Test func checkpointOfAnotherPolicyImageOrKeyIsRefused() throws {
        let sealed = try SealedCheckpoint.seal(state, iteration: 7, dataKey: key, binding: binding)
        var otherPolicy = binding
        otherPolicy.policyDigest[0] ^= 1
        var otherImage = binding
        otherImage.measurement[47] ^= 1
        for (key, binding) in [(key, otherPolicy), (key, otherImage), (try SecureBytes(randomCount: 32), binding)] {
            #expect(throws: EnclaveError.self) { try SealedCheckpoint.open(sealed, dataKey: key, binding: binding) }
            do {
                _ = try SealedCheckpoint.open(sealed, dataKey: key, binding: binding)
            } catch {
                #expect(error.code == .checkpointInvalid)
                #expect(error.message.contains("another policy, another enclave image or another key"))
            }
        }
    }

    @Test func alteredOrTruncatedCheckpointIsRefused() throws {
        let sealed = try SealedCheckpoint.seal(state, iteration: 7, dataKey: key, binding: binding)
        // Every byte matters: the header (magic, version, iteration) is authenticated too.
        for index in stride(from: 0, to: sealed.count, by: 7) {
            var altered = sealed
            altered[index] ^= 0x01
            #expect(throws: EnclaveError.self) { try SealedCheckpoint.open(altered, dataKey: key, binding: binding) }
        }
        for cut in [0, 4, 9, SealedCheckpoint.minimumBytes - 1, sealed.count - 1] {
            #expect(throws: EnclaveError.self) { try SealedCheckpoint.open(Array(sealed.prefix(cut)), dataKey: key, binding: binding) }
        }
        #expect(SealedCheckpoint.iteration(of: Array(sealed.prefix(10))) == nil)
    }
}

extension Array where Element == UInt8 {
    func containsSubsequence(_ needle: [UInt8]) -> Bool {
        guard needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { Array(self[$0..<$0 + needle.count]) == needle }
    }
}
