// libFuzzer target for HTTPRequestParser. Built by `make fuzz-http-parser` together with the
// parser's own source files (no I/O, no other module), so it runs at full speed.
//
// Each input is parsed twice: whole, and split at an offset taken from its first byte. Both
// feedings must give the same events and the same error; any difference, crash or trap is a
// finding. Limits are small so that the limit checks are reached often.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var limits = HTTPParserLimits()
    limits.maxRequestLineLength = 256
    limits.maxHeaderSectionSize = 1024
    limits.maxHeaderCount = 16
    limits.maxChunkLineLength = 64
    limits.maxChunkSize = 1 << 20
    let whole = outcome(bytes, splitAt: nil, limits: limits)
    let split = bytes.isEmpty ? whole : outcome(bytes, splitAt: Int(bytes[0]) % (bytes.count + 1), limits: limits)
    if whole != split {
        fatalError("split feeding disagrees with whole feeding:\n\(whole)\n\(split)")
    }
    return 0
}

private func outcome(_ bytes: [UInt8], splitAt: Int?, limits: HTTPParserLimits) -> [String] {
    var parser = HTTPRequestParser(limits: limits)
    var log: [String] = []
    var body: [UInt8] = []
    let pieces: [ArraySlice<UInt8>] = splitAt.map { [bytes[..<$0], bytes[$0...]] } ?? [bytes[...]]
    for piece in pieces {
        parser.feed(piece)
        var steps = 0
        while true {
            steps += 1
            precondition(steps < 100_000, "parser does not make progress")
            do {
                guard let event = try parser.next() else { break }
                switch event {
                case .head(let head):
                    log.append("head \(head.method) \(head.target) \(head.version) \(head.framing) \(head.keepAlive) \(head.headers.count)")
                case .body(let chunk):
                    precondition(!chunk.isEmpty, "empty body event")
                    body += chunk
                case .end(let trailers):
                    log.append("end \(body.count) \(body.hashValue) \(trailers.count)")
                    body = []
                }
            } catch {
                log.append("error \(error.status.code) \(error.code)")
                return log
            }
        }
    }
    return log
}
