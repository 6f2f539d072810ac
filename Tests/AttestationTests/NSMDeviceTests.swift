import Crypto
import Testing

@testable import Attestation

/// Answers each request with recorded bytes and remembers what was sent.
private final class RecordedTransport: NSMTransport, @unchecked Sendable {
    let response: [UInt8]
    private(set) var sent: [[UInt8]] = []
    init(response: [UInt8]) { self.response = response }
    func exchange(_ request: [UInt8]) throws(AttestationError) -> [UInt8] {
        sent.append(request)
        return response
    }
}

private func hex(_ s: String) -> [UInt8] { Hex.decode(s)! }

/// Request and response bytes as pinned by aws-nitro-enclaves-nsm-api's own tests
/// (`src/api/mod.rs`, "Expected bytes were produced by serde_cbor 0.11.2").
@Suite struct NSMDeviceTests {
    @Test func requestsEncodeToTheDocumentedBytes() {
        #expect(NSMRequest.describePCR(index: 3).encoded() == hex("a16b4465736372696265504352a165696e64657803"))
        #expect(NSMRequest.describeNSM.encoded() == hex("6b44657363726962654e534d"))
        #expect(NSMRequest.getRandom.encoded() == hex("6947657452616e646f6d"))
        #expect(
            NSMRequest.attestation(userData: [9, 9], nonce: nil, publicKey: [7]).encoded()
                == hex("a16b4174746573746174696f6ea369757365725f64617461420909656e6f6e6365f66a7075626c69635f6b65794107")
        )
    }

    @Test func responsesDecodeFromTheDocumentedBytes() throws {
        #expect(
            try NSMResponse(decoding: hex("a16b4465736372696265504352a2646c6f636bf5646461746142aabb"))
                == .describePCR(lock: true, data: [0xaa, 0xbb])
        )
        #expect(
            try NSMResponse(decoding: hex("a16b4174746573746174696f6ea168646f63756d656e7442d284"))
                == .attestation(document: [0xd2, 0x84])
        )
        #expect(
            try NSMResponse(decoding: hex("a16947657452616e646f6da16672616e646f6d43040404"))
                == .getRandom(random: [4, 4, 4])
        )
        #expect(try NSMResponse(decoding: hex("a1654572726f726c496e76616c6964496e646578")) == .error("InvalidIndex"))
        let describe = hex(
            "a16b44657363726962654e534da76d76657273696f6e5f6d616a6f72016d76657273696f6e5f6d696e6f72026d76657273696f6e5f706174636803696d6f64756c655f696465692d616263686d61785f7063727318206b6c6f636b65645f706372738200016664696765737466534841333834"
        )
        let expected = NSMDescription(
            versionMajor: 1,
            versionMinor: 2,
            versionPatch: 3,
            moduleID: "i-abc",
            maxPCRs: 32,
            lockedPCRs: [0, 1],
            digest: "SHA384"
        )
        #expect(try NSMResponse(decoding: describe) == .describeNSM(expected))
        #expect(NSMResponse.describeNSM(expected).encoded() == describe)
    }

    @Test func theDeviceSendsTheRequestAndReturnsTheDocument() throws {
        let document = NitroVector.production.bytes
        let transport = RecordedTransport(response: NSMResponse.attestation(document: document).encoded())
        let device = NSMDevice(transport: transport)
        let got = try device.attestation(userData: [9, 9], nonce: nil, publicKey: [7])
        #expect(got == document)
        #expect(
            transport.sent == [
                hex("a16b4174746573746174696f6ea369757365725f64617461420909656e6f6e6365f66a7075626c69635f6b65794107")
            ]
        )
        // The document it returned decodes as a Nitro document.
        #expect(try AttestationDocument(bytes: got).moduleID == NitroVector.production.expected.module_id)
    }

    @Test func describeRandomAndPCRGoThroughTheTransport() throws {
        let random = NSMDevice(
            transport: RecordedTransport(response: hex("a16947657452616e646f6da16672616e646f6d43040404"))
        )
        #expect(try random.random() == [4, 4, 4])
        let pcr = NSMDevice(
            transport: RecordedTransport(response: hex("a16b4465736372696265504352a2646c6f636bf5646461746142aabb"))
        )
        let (lock, data) = try pcr.describePCR(3)
        #expect(lock && data == [0xaa, 0xbb])
    }

    @Test func errorAndMismatchedResponsesAreErrors() {
        func code(_ response: [UInt8], _ call: (NSMDevice) throws -> Void) -> AttestationError.Code? {
            do {
                try call(NSMDevice(transport: RecordedTransport(response: response)))
                return nil
            } catch {
                return (error as? AttestationError)?.code
            }
        }
        let invalidIndex = hex("a1654572726f726c496e76616c6964496e646578")
        #expect(code(invalidIndex) { _ = try $0.describePCR(99) } == .nsmError)
        #expect(code(NSMResponse.error("InputTooLarge").encoded()) { _ = try $0.random() } == .nsmError)
        // A GetRandom answer to an Attestation request.
        #expect(
            code(hex("a16947657452616e646f6da16672616e646f6d43040404")) {
                _ = try $0.attestation(userData: nil, nonce: nil, publicKey: nil)
            } == .nsmMalformedResponse
        )
        #expect(code([0xff]) { _ = try $0.random() } == .nsmMalformedResponse)
        #expect(
            code(hex("a16b4174746573746174696f6ea0")) {
                _ = try $0.attestation(userData: nil, nonce: nil, publicKey: nil)
            }
                == .nsmMalformedResponse
        )
        #expect(
            code(CBOREncoder.encode(.map([(.text("Error"), .text("NoSuchCode"))]))) { _ = try $0.random() }
                == .nsmMalformedResponse
        )
        #expect(
            code(CBOREncoder.encode(.map([(.text("Unknown"), .null)]))) { _ = try $0.random() } == .nsmMalformedResponse
        )
        // Oversized fields are refused before anything is sent.
        #expect(
            code([]) {
                _ = try $0.attestation(userData: [UInt8](repeating: 0, count: 1025), nonce: nil, publicKey: nil)
            }
                == .nsmInvalidRequest
        )
    }

    @Test func openingTheDeviceOutsideAnEnclaveFailsWithUnavailable() {
        #expect(throws: AttestationError.self) { _ = try NSMDevice.open(path: "/dev/nsm-does-not-exist") }
        do {
            _ = try NSMDevice.open(path: "/dev/nsm-does-not-exist")
        } catch {
            #expect(error.code == .nsmUnavailable)
        }
        // The ioctl number is _IOWR(0x0A, 0, 32).
        #expect(NSMIoctlTransport.ioctlRequest == (3 << 30 | 32 << 16 | 0x0A << 8 | 0))
    }

    @Test func theIoctlTransportReportsErrnoOnANonNSMDevice() throws {
        // /dev/null accepts open() but not the NSM ioctl: the real code path runs and fails cleanly.
        let transport = try NSMIoctlTransport(path: "/dev/null")
        #expect(throws: AttestationError.self) { _ = try transport.exchange(NSMRequest.getRandom.encoded()) }
    }
}
