import CleanRoom
import Envelope

/// Checks an uploaded dataset as it streams past, without any key (DESIGN §4, issue #6):
/// the header must parse, use suite 0x0478 or 0x0578, be framed, and carry the encryption-context
/// keys `cleanroom:dataset`, `cleanroom:party` and `cleanroom:owner-key` with this dataset's and
/// party's values; then the body must be a well-formed frame sequence ending in a final frame
/// (and, for 0x0578, a footer signature), with nothing after it.
///
/// So "the whole message has arrived" is decided from the message's own structure, not only from
/// the HTTP framing. Memory is bounded by the header limit: frame contents are counted, not kept.
/// Frame tags and the footer signature are *not* verified here (that needs the data key); the
/// enclave authenticates every frame.
struct UploadValidator {
    /// Why an upload was refused: a stable code and a message naming the rule.
    struct Failure: Error, Equatable {
        let code: String
        let message: String
    }

    static let allowedSuites: Set<UInt16> = [0x0478, 0x0578]

    let expectedDatasetId: String
    let expectedPartyId: String
    let expectedOwnerKey: String
    let parser = MessageHeaderParser()

    fileprivate enum State {
        case header
        case frameStart  // sequence number (4), or 0xFFFFFFFF for the final frame
        case regularFrame  // IV + content + tag, skipped
        case finalFrameHeader  // sequence (4) + IV (12) + content length (4)
        case finalFrameBody  // content + tag, skipped
        case footerLength
        case footer
        case done
    }

    private var state = State.header
    private var buffer: [UInt8] = []
    private var skip = 0
    private var expectedSequence: UInt32 = 1
    private(set) var header: MessageHeader?

    init(datasetId: String, partyId: String, ownerKeyFingerprint: String) {
        expectedDatasetId = datasetId
        expectedPartyId = partyId
        expectedOwnerKey = ownerKeyFingerprint
    }

    /// True once the final frame (and footer) has been seen.
    var isComplete: Bool { if case .done = state { return true } else { return false } }

    /// Feeds the next bytes of the upload.
    mutating func consume(_ bytes: [UInt8]) throws {
        var input = bytes[...]
        while !input.isEmpty {
            switch state {
            case .header:
                buffer.append(contentsOf: input)
                input = []
                let parsed: MessageHeader?
                do {
                    parsed = try parser.parse(buffer)
                } catch let error as EnvelopeError {
                    throw Failure(code: "invalid_ciphertext", message: "the upload is not an Encryption SDK message: \(error)")
                }
                guard let header = parsed else { continue }
                try check(header)
                self.header = header
                let rest = Array(buffer[header.length...])
                buffer = []
                state = .frameStart
                input = rest[...]
            case .regularFrame, .finalFrameBody, .footer:
                let n = min(skip, input.count)
                skip -= n
                input = input.dropFirst(n)
                if skip == 0 { try advanceAfterSkip() }
            case .frameStart, .finalFrameHeader, .footerLength:
                let need = fixedLength - buffer.count
                let n = min(need, input.count)
                buffer.append(contentsOf: input.prefix(n))
                input = input.dropFirst(n)
                if buffer.count == fixedLength { try advanceFixed() }
            case .done:
                throw Failure(code: "invalid_ciphertext", message: "data follows the end of the Encryption SDK message")
            }
        }
    }

    /// Called when the body has ended: the message must be complete.
    func finish() throws {
        guard isComplete else {
            throw Failure(
                code: "incomplete_upload",
                message: header == nil
                    ? "the upload ended inside the message header"
                    : "the upload ended before the message's final frame\(header!.suite.isSigned ? " and signature" : "")")
        }
    }

    private var fixedLength: Int {
        switch state {
        case .frameStart, .footerLength: return state.isFooterLength ? 2 : 4
        case .finalFrameHeader: return 4 + 12 + 4
        default: return 0
        }
    }

    private func check(_ header: MessageHeader) throws {
        guard Self.allowedSuites.contains(header.suite.id) else {
            throw Failure(
                code: "unsupported_suite",
                message: "algorithm suite \(header.suite) is not allowed; use 0x0478 or 0x0578 (key-committing, AES-256-GCM)")
        }
        guard header.contentType == .framed, header.frameLength > 0 else {
            throw Failure(code: "unsupported_content_type", message: "the message must be framed")
        }
        let context = header.encryptionContext
        for (key, expected) in [
            ("cleanroom:dataset", expectedDatasetId), ("cleanroom:party", expectedPartyId),
            ("cleanroom:owner-key", expectedOwnerKey),
        ] {
            guard let value = context[key] else {
                throw Failure(code: "missing_encryption_context", message: "the encryption context lacks \(key)")
            }
            guard value == expected else {
                throw Failure(
                    code: "wrong_encryption_context",
                    message: "the encryption context's \(key) is \(value) but must be \(expected)")
            }
        }
    }

    private mutating func advanceFixed() throws {
        guard let header else { return }
        let tagLength = header.suite.tagLength, ivLength = header.suite.ivLength
        switch state {
        case .frameStart:
            let sequence = Self.uint32(buffer, 0)
            buffer = []
            if sequence == 0xFFFF_FFFF {
                state = .finalFrameHeader
            } else {
                guard sequence == expectedSequence else {
                    throw Failure(code: "invalid_ciphertext", message: "frame \(sequence) arrived where frame \(expectedSequence) was expected")
                }
                expectedSequence &+= 1
                skip = ivLength + Int(header.frameLength) + tagLength
                state = .regularFrame
            }
        case .finalFrameHeader:
            let sequence = Self.uint32(buffer, 0)
            let contentLength = Self.uint32(buffer, 16)
            buffer = []
            guard sequence == expectedSequence else {
                throw Failure(code: "invalid_ciphertext", message: "the final frame is numbered \(sequence), expected \(expectedSequence)")
            }
            guard contentLength <= header.frameLength else {
                throw Failure(code: "invalid_ciphertext", message: "the final frame is longer than the frame length")
            }
            skip = Int(contentLength) + tagLength
            state = .finalFrameBody
        case .footerLength:
            let length = Int(buffer[0]) << 8 | Int(buffer[1])
            buffer = []
            guard length > 0, length <= 128 else {
                throw Failure(code: "invalid_ciphertext", message: "the footer signature length \(length) is not plausible")
            }
            skip = length
            state = .footer
        default: break
        }
        if skip == 0, case .finalFrameBody = state { try advanceAfterSkip() }
    }

    private mutating func advanceAfterSkip() throws {
        switch state {
        case .regularFrame: state = .frameStart
        case .finalFrameBody: state = header?.suite.isSigned == true ? .footerLength : .done
        case .footer: state = .done
        default: break
        }
    }

    private static func uint32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
    }
}

extension UploadValidator.State {
    fileprivate var isFooterLength: Bool { if case .footerLength = self { return true } else { return false } }
}
