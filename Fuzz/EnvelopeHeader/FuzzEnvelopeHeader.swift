// libFuzzer target: the keyless Encryption SDK header parser (`make fuzz-envelope-header`).
// Compiled into the Envelope module itself, so it sees internal API.
// Invariants checked: no crash or hang; a parsed header re-serializes to the exact bytes it
// came from, its length never exceeds the input or the limit, and every prefix of a valid
// header is reported incomplete (nil), never as a different header.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEnvelopeHeader(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var limits = MessageLimits.default
    limits.maxHeaderLength = 64 * 1024
    let parser = MessageHeaderParser(limits: limits)
    guard let header = try? parser.parse(bytes) else { return 0 }
    precondition(header.length <= bytes.count && header.length <= limits.maxHeaderLength)
    precondition(header.bytes == Array(bytes[0..<header.length]), "header bytes do not round-trip")
    precondition(!header.encryptedDataKeys.isEmpty && header.encryptedDataKeys.count <= limits.maxEncryptedDataKeys)
    if header.length > 0 {
        let prefix = Array(bytes[0..<header.length - 1])
        precondition((try? parser.parse(prefix)) ?? nil == nil, "a strict prefix parsed as a header")
    }
    if let serialized = try? header.encryptionContext.serialized() {
        let reparsed = try? EncryptionContext.parse(serialized[...])
        precondition(reparsed == header.encryptionContext, "encryption context does not round-trip")
    }
    return 0
}
