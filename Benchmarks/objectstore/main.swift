// objectstore-bench: streams N MiB through an ObjectStore (put, then get) in constant memory
// and prints one JSON line with timings and the process's peak resident set.
//
//   objectstore-bench file DIR MIB
//   objectstore-bench s3 ENDPOINT BUCKET MIB     (credentials from the usual AWS sources)
//
// Environment: OBJECTSTORE_BENCH_PARTS (S3 part buffers per put, default 3),
// OBJECTSTORE_BENCH_BLOCK / OBJECTSTORE_BENCH_WRITEBACK (FileObjectStore write block and writeback interval),
// OBJECTSTORE_BENCH_SMAPS=1 (print the largest resident mappings to stderr at the end).
//
// Driven by Benchmarks/objectstore/bench.sh (see docs/performance.md).
import AWS
import Foundation
import LocalServices

#if canImport(Glibc)
    import Glibc
#endif

func peakRSSMiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let args = CommandLine.arguments
guard args.count >= 4 else {
    FileHandle.standardError.write(Data("usage: objectstore-bench file DIR MIB | s3 ENDPOINT BUCKET MIB\n".utf8))
    exit(2)
}
let store: any ObjectStore
let mib: Int
if args[1] == "file" {
    // OBJECTSTORE_BENCH_BLOCK / OBJECTSTORE_BENCH_WRITEBACK: FileObjectStore.WriteConfiguration (bytes; 0 = no writeback).
    let env = ProcessInfo.processInfo.environment
    var writes = FileObjectStore.WriteConfiguration()
    if let b = env["OBJECTSTORE_BENCH_BLOCK"].flatMap({ Int($0) }) { writes.blockSize = b }
    if let w = env["OBJECTSTORE_BENCH_WRITEBACK"].flatMap({ Int($0) }) { writes.writebackInterval = w }
    store = try FileObjectStore(root: URL(fileURLWithPath: args[2]), writes: writes)
    mib = Int(args[3])!
} else {
    var config = AWSConfiguration.resolve()
    config.endpointOverrides = ["s3": args[2]]
    // OBJECTSTORE_BENCH_PARTS: part buffers per put (S3ObjectStore's concurrentParts), to compare settings.
    let parts = ProcessInfo.processInfo.environment["OBJECTSTORE_BENCH_PARTS"].flatMap { Int($0) } ?? 3
    store = try S3ObjectStore(bucket: args[3], configuration: config, concurrentParts: parts)
    mib = Int(args[4])!
}

let chunk = [UInt8](repeating: 0x5a, count: 1 << 20)
let remaining = LockedCounter(mib)
let body = ByteStream(next: { remaining.take() ? chunk : nil })

let t0 = now()
let info = try await store.put(key: "bench/object.bin", body: body)
let t1 = now()
var read = 0
for try await c in try await store.get(key: "bench/object.bin").body { read += c.count }
let t2 = now()
precondition(read == mib << 20 && info.size == Int64(mib << 20), "size mismatch")
try await store.delete(key: "bench/object.bin")
let put = t1 - t0, get = t2 - t1
print(
    String(
        format: "{\"mib\": %d, \"put_seconds\": %.3f, \"get_seconds\": %.3f, \"put_mib_s\": %.1f, \"get_mib_s\": %.1f, \"peak_rss_mib\": %.1f}",
        mib, put, get, Double(mib) / put, Double(mib) / get, peakRSSMiB()))

final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var left: Int
    init(_ n: Int) { left = n }
    func take() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard left > 0 else { return false }
        left -= 1
        return true
    }
}

// OBJECTSTORE_BENCH_SMAPS=1: print the largest resident mappings to stderr (where memory goes).
if ProcessInfo.processInfo.environment["OBJECTSTORE_BENCH_SMAPS"] != nil,
    let data = try? FileHandle(forReadingAtPath: "/proc/self/smaps")?.readToEnd()
{
    let smaps = String(decoding: data, as: UTF8.self)
    var byName: [String: Int] = [:]
    var current = ""
    for line in smaps.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if let first = fields.first, first.contains("-"), fields.count >= 5, !first.hasSuffix(":") {
            current = fields.count >= 6 ? String(fields[5]) : "[anon]"
        } else if fields.first == "Rss:", fields.count >= 2 {
            byName[current, default: 0] += Int(fields[1]) ?? 0
        }
    }
    for (name, kb) in byName.sorted(by: { $0.value > $1.value }).prefix(12) {
        FileHandle.standardError.write(Data("\(kb / 1024) MiB\t\(kb) KiB\t\(name)\n".utf8))
    }
}
