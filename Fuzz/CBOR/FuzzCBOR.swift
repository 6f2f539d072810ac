// libFuzzer target: the CBOR decoder (`make fuzz-cbor`). Compiled into the Attestation module.
// Invariants: no crash, hang or unbounded allocation; whatever decodes re-encodes (definite,
// shortest) to bytes that decode to the same item; input accepted in deterministic mode is
// exactly what the deterministic encoder writes; the strict prefix of an accepted input is rejected.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCBOR(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let limits = CBORDecoder.Limits(maxInputBytes: 1 << 16, maxDepth: 16, maxItems: 4096)
    guard let item = try? CBORDecoder(limits: limits).decode(bytes) else { return 0 }
    let reencoded = CBOREncoder.encode(item)
    guard
        let again = try? CBORDecoder(
            limits: CBORDecoder.Limits(maxInputBytes: 1 << 20, maxDepth: 16, maxItems: 1 << 16)
        )
        .decode(reencoded)
    else { preconditionFailure("re-encoded item does not decode") }
    precondition(again == item || containsNaN(item), "item does not round-trip")
    if !bytes.isEmpty {
        precondition(
            (try? CBORDecoder(limits: limits).decode(Array(bytes.dropLast()))) == nil,
            "a strict prefix decoded"
        )
    }
    var strict = limits
    strict.deterministic = true
    if let canonical = try? CBORDecoder(limits: strict).decode(bytes) {
        precondition(
            CBOREncoder.encode(canonical, deterministic: true) == bytes,
            "deterministic input is not canonical"
        )
    }
    return 0
}

private func containsNaN(_ item: CBOR) -> Bool {
    switch item {
    case .float(let d): return d.isNaN
    case .array(let items): return items.contains(where: containsNaN)
    case .map(let pairs): return pairs.contains { containsNaN($0.key) || containsNaN($0.value) }
    case .tagged(_, let inner): return containsNaN(inner)
    default: return false
    }
}
