// libFuzzer target: the enclave channel decoder (`make fuzz-channel`), compiled into the Enclave
// module with the channel sources only. Both the server and the enclave parse what the other side
// sends with it, so each side's input is the other's untrusted output.
// Invariants: no crash, hang or unbounded allocation; feeding the input whole or split at any point
// decodes the same messages and the same error; every decoded message re-encodes to exactly the
// bytes it was decoded from.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChannel(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let whole = decode([bytes])
    if let first = bytes.first, bytes.count > 1 {
        let cut = Int(first) % bytes.count
        let split = decode([Array(bytes[..<cut]), Array(bytes[cut...])])
        precondition(split.messages == whole.messages, "a split input decoded other messages")
        precondition(split.failed == whole.failed, "a split input failed differently")
    }
    var consumed = 0
    for message in whole.messages {
        let encoded = message.encoded()
        precondition(
            consumed + encoded.count <= bytes.count && Array(bytes[consumed..<consumed + encoded.count]) == encoded,
            "a decoded message does not re-encode to its bytes")
        consumed += encoded.count
    }
    return 0
}

private func decode(_ chunks: [[UInt8]]) -> (messages: [ChannelMessage], failed: String?) {
    var decoder = ChannelMessageDecoder(limits: fuzzLimits)
    var messages: [ChannelMessage] = []
    do {
        for chunk in chunks {
            decoder.feed(chunk)
            while let message = try decoder.next() { messages.append(message) }
        }
        try decoder.finish()
        return (messages, nil)
    } catch {
        return (messages, "\(error.code)")
    }
}

/// Small limits so the fuzzer reaches every limit check with short inputs.
private let fuzzLimits: ChannelLimits = {
    var limits = ChannelLimits.default
    limits.chunkSize = 4096
    limits.maxChunkPayload = 4096 + 64
    limits.maxHelloPayload = 16 * 1024
    limits.maxSpecPayload = 64 * 1024
    limits.maxReceiptPayload = 64 * 1024
    return limits
}()
