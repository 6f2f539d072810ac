// attestation-bench: how long the verifier takes on the real Nitro documents (`make bench-attestation`).
// For each document in ../shared/vectors/nitro: the median (and p10/p90) wall time of
//   - end to end: decode COSE + payload, structure, ES384 signature, chain to the AWS root;
//   - its parts: decoding only, the COSE signature check only, the chain check only.
// Each figure is the median of ITERATIONS timed calls after WARMUP untimed ones, one thread.
import Attestation
import Crypto
import Foundation

let arguments = CommandLine.arguments
let vectors = arguments.count > 1 ? arguments[1] : "../shared/vectors/nitro"
let iterations = arguments.count > 2 ? Int(arguments[2]) ?? 2000 : 2000
let warmup = 200

struct Document {
    let name: String
    let bytes: [UInt8]
    let verifyAt: UInt64
}
let documents = [
    Document(name: "att-2022-10-13-evervault.cose", bytes: [], verifyAt: 1_665_651_482),
    Document(name: "att-2023-09-18-evervault-debug.cose", bytes: [], verifyAt: 1_695_049_410),
    Document(name: "att-2026-01-03-base-indefinite.cose", bytes: [], verifyAt: 1_767_472_867),
].map { d in
    guard let data = FileManager.default.contents(atPath: vectors + "/" + d.name) else {
        FileHandle.standardError.write(Data("attestation-bench: cannot read \(vectors)/\(d.name)\n".utf8))
        exit(2)
    }
    return Document(name: d.name, bytes: [UInt8](data), verifyAt: d.verifyAt)
}

/// Wall-clock and on-CPU (this thread) medians: on a shared, loaded machine the wall time includes
/// waiting for a core, the thread CPU time does not.
struct Timing {
    let wallMedian: Double, wallP90: Double, cpuMedian: Double, cpuP10: Double
}

func threadCPUNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func measure(_ body: () throws -> Void) rethrows -> Timing {
    for _ in 0..<warmup { try body() }
    var wall: [Double] = [], cpu: [Double] = []
    wall.reserveCapacity(iterations)
    cpu.reserveCapacity(iterations)
    for _ in 0..<iterations {
        let start = DispatchTime.now().uptimeNanoseconds, cpuStart = threadCPUNanoseconds()
        try body()
        cpu.append(Double(threadCPUNanoseconds() - cpuStart) / 1_000_000)
        wall.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1_000_000)
    }
    wall.sort()
    cpu.sort()
    return Timing(
        wallMedian: wall[iterations / 2],
        wallP90: wall[iterations * 9 / 10],
        cpuMedian: cpu[iterations / 2],
        cpuP10: cpu[iterations / 10]
    )
}

func row(_ label: String, _ t: Timing) {
    let f = { (x: Double) in String(format: "%.3f", x) }
    print("| \(label) | \(f(t.cpuMedian)) | \(f(t.cpuP10)) | \(f(t.wallMedian)) | \(f(t.wallP90)) |")
}

print("attestation-bench: \(iterations) iterations after \(warmup) warm-up, times in ms")
print("| document / step | CPU median | CPU p10 | wall median | wall p90 |")
print("|---|---|---|---|---|")
let root = TrustedRoot.awsNitroEnclavesRootG1
let expectations = AttestationExpectations(allowDebug: true, maxAgeMilliseconds: nil)
for document in documents {
    let time = UnixTime(seconds: document.verifyAt)
    // Cold: no cache, every certificate parsed and the whole path validated on each call.
    let cold = AttestationVerifier(trustedRoots: [root], at: time, cache: nil)
    let endToEnd = try measure { _ = try cold.verify(document.bytes, expectations: expectations) }
    // Warm: the verifier has seen this enclave's leaf and cabundle before (the NSM reuses its leaf
    // for about three hours), so only the document's own ES384 signature is checked.
    let warmVerifier = AttestationVerifier(trustedRoots: [root], at: time)
    let warm = try measure { _ = try warmVerifier.verify(document.bytes, expectations: expectations) }
    let decoded = try AttestationDocument(bytes: document.bytes)
    let decode = try measure { _ = try AttestationDocument(bytes: document.bytes) }
    let leaf = try Certificate(derEncoded: decoded.certificate)
    guard case .p384(let key) = leaf.publicKey else { fatalError("leaf is not P-384") }
    let signature = try measure { try decoded.cose.verify(with: .p384(key)) }
    let context = AttestationPolicyContext(verificationTime: time)
    let chainPolicy = CertificateChainPolicy(roots: [root])
    let chain = measure {
        guard chainPolicy.evaluate(decoded, context: context) == .meetsPolicy else { fatalError("chain failed") }
    }
    let parseCertificates = try measure {
        _ = try Certificate(derEncoded: decoded.certificate)
        for der in decoded.cabundle { _ = try Certificate(derEncoded: der) }
    }
    let bundle = try decoded.cabundle.map { try Certificate(derEncoded: $0) }
    let pathVerifier = CertificateChainVerifier(roots: [root.certificate])
    let date = Date(timeIntervalSince1970: Double(document.verifyAt))
    let openSSLPath = try measure { _ = try pathVerifier.verify(leaf: leaf, intermediates: bundle, at: date) }
    row("\(document.name): end to end, cold (no cache)", endToEnd)
    row("\(document.name): end to end, chain seen before", warm)
    row("  decode (COSE + payload)", decode)
    row("  ES384 signature (COSE)", signature)
    row("  certificate parse + chain (5 certs)", chain)
    row("    of which: parse 5 certificates", parseCertificates)
    row("    of which: OpenSSL path validation", openSSLPath)
}
