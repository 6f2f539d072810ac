// Throughput of the Envelope streaming API, single-threaded (issue #3 performance item).
//
// usage: envelope-benchmark [GIB=1] [SUITE=0x0478] [FRAME=65536] [CHUNK=1048576]
//
// Encrypts GIB GiB of plaintext in CHUNK-byte pieces with MessageEncryptor and feeds every
// piece of ciphertext straight into a MessageDecryptor, timing the encrypt and decrypt calls
// separately, so no file or pipe is involved and memory stays at a few chunks. Prints one JSON
// line: bytes, CPU seconds and MB/s per CPU second for each direction (as `openssl speed`
// divides by CPU time; the shared machine is too loaded for wall time), wall seconds, and the
// process's peak RSS.
import Crypto
import Envelope
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A raw AES keyring stands in for KMS: the keyring runs once per message, so it does not
/// affect throughput.
func main() async throws {
    let arguments = CommandLine.arguments.dropFirst().map { $0 }
    let gib = arguments.count > 0 ? Double(arguments[0])! : 1
    let suite = AlgorithmSuite.suite(named: arguments.count > 1 ? arguments[1] : "0x0478")!
    let frame = arguments.count > 2 ? Int(arguments[2])! : MessageEncryptor.defaultFrameLength
    let chunk = arguments.count > 3 ? Int(arguments[3])! : 1 << 20
    let total = Int(gib * Double(1 << 30))

    let keyring = try RawAESKeyring(keyNamespace: "bench", keyName: "aes", wrappingKey: SecureBytes(randomCount: 32))
    let context = try EncryptionContext([("cleanroom:dataset", "bench")])
    let plaintext = try SecureRandom.bytes(count: chunk)
    let encryptor = try await MessageEncryptor(keyring: keyring, encryptionContext: context, suite: suite, frameLength: frame)
    let decryptor = MessageDecryptor(keyring: keyring)

    var encryptNanos: UInt64 = 0, decryptNanos: UInt64 = 0
    var produced = 0, recovered = 0
    func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
    let wallStart = DispatchTime.now().uptimeNanoseconds
    while produced < total {
        let count = min(chunk, total - produced)
        var t0 = now()
        let ciphertext = try plaintext.withUnsafeBytes { try encryptor.update(raw: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        var t1 = now()
        encryptNanos += t1 - t0
        let released = try await decryptor.update(ciphertext)
        t0 = now()
        decryptNanos += t0 - t1
        recovered += released.count
        produced += count
        if produced == total {
            t1 = now()
            let tail = try encryptor.finish()
            t0 = now()
            encryptNanos += t0 - t1
            recovered += try await decryptor.update(tail).count
            let verified = try decryptor.finish()
            decryptNanos += now() - t0
            precondition(verified.plaintextLength == UInt64(total) && recovered == total)
        }
    }
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    func mbps(_ nanos: UInt64) -> Double { Double(total) / (Double(nanos) / 1e9) / 1e6 }
    let report: [String: Any] = [
        "bytes": total, "suite": suite.description, "frame": frame, "chunk": chunk,
        "encrypt_seconds": Double(encryptNanos) / 1e9, "decrypt_seconds": Double(decryptNanos) / 1e9,
        "encrypt_MBps": mbps(encryptNanos), "decrypt_MBps": mbps(decryptNanos),
        "peak_rss_MiB": Double(usage.ru_maxrss) / 1024,
        "wall_seconds": Double(DispatchTime.now().uptimeNanoseconds - wallStart) / 1e9,
    ]
    let json = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
    print(String(decoding: json, as: UTF8.self))
}

try await main()
