import AWS
import ArgumentParser
import Crypto
import Envelope
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// `cleanroom encrypt` and `cleanroom decrypt`: AWS Encryption SDK messages with raw RSA, raw AES
// or KMS keyrings, streamed in constant memory. Exit codes: 0 ok, 1 authentication or format
// failure (or an I/O failure while streaming), 2 usage (bad arguments, unreadable key or input).

struct EncryptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encrypt",
        abstract: "Encrypt a file as an AWS Encryption SDK message (format 2, framed).",
        discussion: """
            Exactly one key source: --rsa-public-key (raw RSA keyring, RSA-OAEP-SHA256), --aes-key \
            (raw AES keyring; a file of exactly 32 raw bytes) or --kms-key-id (AWS KMS keyring; region, \
            credentials and AWS_ENDPOINT_URL_KMS are read as the AWS CLI reads them). \
            --key-namespace and --key-name are the raw keyring's provider id and key name; the \
            decrypting side must use the same two values. The output is written to a temporary \
            file beside --out and renamed into place when complete. Use - for stdin or stdout.

            Exit codes: 0 ok, 1 encryption or I/O failure, 2 usage error.
            """)

    @Option(name: .customLong("in"), help: "Plaintext file, or - for stdin.")
    var input: String

    @Option(name: .customLong("out"), help: "Ciphertext file, or - for stdout.")
    var output: String

    @Option(name: .customLong("rsa-public-key"), help: "PEM file with the recipient's RSA public key.")
    var rsaPublicKey: String?

    @Option(name: .customLong("aes-key"), help: "File of 32 raw bytes: the AES-256 wrapping key.")
    var aesKey: String?

    @Option(name: .customLong("kms-key-id"), help: "KMS key id, alias or ARN.")
    var kmsKeyID: String?

    @Option(name: .customLong("key-namespace"), help: "Raw keyring key namespace (provider id).")
    var keyNamespace: String = EncryptionCLI.defaultNamespace

    @Option(name: .customLong("key-name"), help: "Raw keyring key name.")
    var keyName: String = EncryptionCLI.defaultKeyName

    @Option(name: .customLong("context"), help: "Encryption context pair KEY=VALUE (repeatable).")
    var context: [String] = []

    @Option(name: .customLong("suite"), help: "Algorithm suite: 0x0478 (default) or 0x0578 (adds an ECDSA P-384 signature).")
    var suite: String = "0x0478"

    @Option(name: .customLong("frame-length"), help: "Plaintext bytes per frame (default 65536).")
    var frameLength: Int = MessageEncryptor.defaultFrameLength

    func validate() throws {
        try EncryptionCLI.requireOneKeySource(["--rsa-public-key": rsaPublicKey, "--aes-key": aesKey, "--kms-key-id": kmsKeyID])
        _ = try EncryptionCLI.parseContext(context, option: "--context")
        guard let parsed = AlgorithmSuite.suite(named: suite), AlgorithmSuite.encryptable.contains(parsed) else {
            throw ValidationError("--suite must be 0x0478 or 0x0578, not \(suite)")
        }
        guard frameLength > 0, frameLength <= MessageLimits.default.maxFrameLength else {
            throw ValidationError("--frame-length must be between 1 and \(MessageLimits.default.maxFrameLength)")
        }
    }

    func run() async throws {
        let keyring: any Keyring
        let encryptionContext: EncryptionContext
        do {
            encryptionContext = try EncryptionCLI.parseContext(context, option: "--context")
            if let rsaPublicKey {
                let key = try RSA.PublicKey(pemRepresentation: try EncryptionCLI.readText(rsaPublicKey, what: "RSA public key"))
                keyring = try RawRSAKeyring(keyNamespace: keyNamespace, keyName: keyName, publicKey: key)
            } else if let aesKey {
                keyring = try RawAESKeyring(
                    keyNamespace: keyNamespace, keyName: keyName, wrappingKey: try EncryptionCLI.readAESKey(aesKey))
            } else {
                keyring = try EncryptionCLI.kmsKeyring(keyID: kmsKeyID)
            }
        } catch {
            throw EncryptionCLI.usageFailure(error)
        }
        let source = try EncryptionCLI.openInput(input)
        defer { source.close() }
        let sink = try EncryptionCLI.openOutput(output)
        do {
            let encryptor = try await MessageEncryptor(
                keyring: keyring, encryptionContext: encryptionContext, suite: AlgorithmSuite.suite(named: suite)!,
                frameLength: frameLength)
            var chunk = [UInt8](repeating: 0, count: EncryptionCLI.chunkSize)
            while true {
                let count = try source.read(into: &chunk)
                if count == 0 { break }
                let ciphertext = try chunk.withUnsafeBytes { try encryptor.update(raw: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                try sink.write(ciphertext)
            }
            try sink.write(try encryptor.finish())
            try sink.commit()
        } catch {
            sink.abandon()
            throw EncryptionCLI.failure(error)
        }
    }
}

struct DecryptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decrypt",
        abstract: "Decrypt and verify an AWS Encryption SDK message.",
        discussion: """
            Exactly one key source: --rsa-private-key (raw RSA keyring; RSA-OAEP-SHA256, with \
            OAEP-SHA1 and PKCS#1 v1.5 accepted for old messages), --aes-key (raw AES keyring; 32 raw \
            bytes) or --kms (AWS KMS keyring, using the key named in the message). --key-namespace and \
            --key-name must match the ones the message was encrypted with. Every --expect-context \
            pair must be in the message's authenticated encryption context.

            Nothing is written at --out unless the whole message authenticated: header tag, key \
            commitment, every frame, the final frame, and the footer signature of signed suites. \
            Plaintext goes to a temporary file beside --out that is renamed into place only then. \
            With --out - the plaintext is held in an unlinked temporary file (in $TMPDIR) and copied \
            to stdout only after verification, so stdout receives either the whole plaintext or nothing.

            Exit codes: 0 ok, 1 authentication or format failure (or I/O failure), 2 usage error.
            """)

    @Option(name: .customLong("in"), help: "Ciphertext file, or - for stdin.")
    var input: String

    @Option(name: .customLong("out"), help: "Plaintext file, or - for stdout (see below).")
    var output: String

    @Option(name: .customLong("rsa-private-key"), help: "PEM file with the RSA private key (PKCS#8 or PKCS#1).")
    var rsaPrivateKey: String?

    @Option(name: .customLong("aes-key"), help: "File of 32 raw bytes: the AES-256 wrapping key.")
    var aesKey: String?

    @Flag(name: .customLong("kms"), help: "Decrypt the data key with AWS KMS (the key ARN comes from the message).")
    var kms = false

    @Option(name: .customLong("key-namespace"), help: "Raw keyring key namespace (provider id).")
    var keyNamespace: String = EncryptionCLI.defaultNamespace

    @Option(name: .customLong("key-name"), help: "Raw keyring key name.")
    var keyName: String = EncryptionCLI.defaultKeyName

    @Option(name: .customLong("expect-context"), help: "Required encryption context pair KEY=VALUE (repeatable).")
    var expectContext: [String] = []

    func validate() throws {
        try EncryptionCLI.requireOneKeySource(
            ["--rsa-private-key": rsaPrivateKey, "--aes-key": aesKey, "--kms": kms ? "" : nil])
        _ = try EncryptionCLI.parseContext(expectContext, option: "--expect-context")
    }

    func run() async throws {
        let keyring: any Keyring
        let required: EncryptionContext
        do {
            required = try EncryptionCLI.parseContext(expectContext, option: "--expect-context")
            if let rsaPrivateKey {
                let pem = try EncryptionCLI.readText(rsaPrivateKey, what: "RSA private key")
                let key = try RSA.PrivateKey(pemRepresentation: pem)
                keyring = try RawRSAKeyring(
                    keyNamespace: keyNamespace, keyName: keyName, privateKey: key,
                    decryptionPaddings: [.oaepSHA256, .oaepSHA1, .pkcs1v15])
            } else if let aesKey {
                keyring = try RawAESKeyring(
                    keyNamespace: keyNamespace, keyName: keyName, wrappingKey: try EncryptionCLI.readAESKey(aesKey))
            } else {
                keyring = try EncryptionCLI.kmsKeyring(keyID: nil)
            }
        } catch {
            throw EncryptionCLI.usageFailure(error)
        }
        let source = try EncryptionCLI.openInput(input)
        defer { source.close() }
        let sink = try EncryptionCLI.openOutput(output)
        do {
            let decryptor = MessageDecryptor(keyring: keyring, policy: DecryptionPolicy(requiredEncryptionContext: required))
            var chunk = [UInt8](repeating: 0, count: EncryptionCLI.chunkSize)
            while true {
                let count = try source.read(into: &chunk)
                if count == 0 { break }
                let plaintext = try await decryptor.update(count == chunk.count ? chunk : Array(chunk[0..<count]))
                try sink.write(plaintext.bytes)
            }
            _ = try decryptor.finish()
            try sink.commit()
        } catch {
            sink.abandon()
            throw EncryptionCLI.failure(error)
        }
    }
}

/// Shared pieces of the two commands.
enum EncryptionCLI {
    static let defaultNamespace = "cleanroom"
    static let defaultKeyName = "default"
    static let chunkSize = 256 * 1024

    static func requireOneKeySource(_ sources: [String: String?]) throws {
        let given = sources.filter { $0.value != nil }.keys.sorted()
        guard given.count == 1 else {
            let names = sources.keys.sorted().joined(separator: ", ")
            throw ValidationError(
                given.isEmpty ? "give one key source: \(names)" : "give only one key source, not \(given.joined(separator: " and "))")
        }
    }

    static func parseContext(_ pairs: [String], option: String) throws -> EncryptionContext {
        var context = EncryptionContext()
        for pair in pairs {
            guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                throw ValidationError("\(option) takes KEY=VALUE, not \"\(pair)\"")
            }
            let key = String(pair[..<equals]), value = String(pair[pair.index(after: equals)...])
            guard context[key] == nil else { throw ValidationError("\(option) names the key \"\(key)\" twice") }
            guard !key.hasPrefix(EncryptionContext.reservedPrefix) else {
                throw ValidationError("\(option): keys starting with aws-crypto- are reserved")
            }
            try context.add(key, value)
        }
        return context
    }

    static func readText(_ path: String, what: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read the \(what) file \(path)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func readAESKey(_ path: String) throws -> SecureBytes {
        guard var data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read the AES key file \(path)")
        }
        defer { data.resetBytes(in: 0..<data.count) }
        guard data.count == 32 else {
            throw ValidationError("the AES key file \(path) must hold exactly 32 raw bytes, not \(data.count)")
        }
        return SecureBytes([UInt8](data))
    }

    /// A KMS keyring over the AWS KMS client, configured like the AWS CLI (environment, shared
    /// config and credentials files, `AWS_ENDPOINT_URL[_KMS]` for a local KMS). Without a key id
    /// it is a discovery keyring: it decrypts with the KMS key named in the message.
    static func kmsKeyring(keyID: String?) throws -> any Keyring {
        let kms = try AWSKMSClient(configuration: AWSConfiguration.resolve())
        if let keyID { return try KMSKeyring(kms: kms, keyID: keyID) }
        return KMSKeyring(discovery: kms)
    }

    /// A usage failure (exit 2), reported like every other usage error of the CLI (pointing at
    /// the command's help, and on stdout as JSON with `--json`).
    static func usageFailure(_ error: Error) -> Error {
        if error is ExitCode { return error }
        return ValidationError(describe(error))
    }

    /// A message or I/O failure (exit 1) with a message on stderr.
    static func failure(_ error: Error) -> Error {
        if let exit = error as? ExitCode { return exit }
        FileHandle.standardError.write(Data("error: \(describe(error))\n".utf8))
        return ExitCode(1)
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case let error as EnvelopeError: "\(error.code): \(error.message)"
        case let error as ValidationError: error.message
        default: "\(error)"
        }
    }

    static func openInput(_ path: String) throws -> InputFile {
        do {
            return try InputFile(path: path)
        } catch {
            throw usageFailure(error)
        }
    }

    static func openOutput(_ path: String) throws -> OutputFile {
        do {
            return try OutputFile(path: path)
        } catch {
            throw usageFailure(error)
        }
    }
}

/// An input file or stdin, read with read(2) into a reusable buffer.
final class InputFile {
    let descriptor: Int32
    private let owned: Bool

    init(path: String) throws {
        if path == "-" {
            descriptor = STDIN_FILENO
            owned = false
        } else {
            descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { throw ValidationError("cannot open \(path): \(String(cString: strerror(errno)))") }
            owned = true
        }
    }

    /// Fills `buffer` as far as possible; returns the byte count, 0 at end of input.
    func read(into buffer: inout [UInt8]) throws -> Int {
        var total = 0
        while total < buffer.count {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + total, $0.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                throw IOFailure("read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            total += n
        }
        return total
    }

    func close() { if owned { _ = Glibc.close(descriptor) } }
}

/// An output that becomes visible only on `commit()`: a temporary file beside the target renamed
/// into place, or for stdout an unlinked temporary file copied to stdout at the end.
final class OutputFile {
    private let target: String?
    private let temporaryPath: String?
    private let descriptor: Int32
    /// Set once `descriptor` is closed (its number may then belong to another file or socket).
    private var closed = false
    /// Set once the file is in place (`abandon` then removes it there).
    private var committed = false

    init(path: String) throws {
        let prefix: String
        if path == "-" {
            prefix = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/cleanroom-stdout-"
            target = nil
        } else {
            let url = URL(fileURLWithPath: path)
            prefix = url.deletingLastPathComponent().path + "/.\(url.lastPathComponent).cleanroom-"
            target = path
        }
        // The name is registered for removal on an interrupt before the file exists, so no signal
        // can come between the two (with mkstemp one could, and a test once left the file behind).
        var created: (fd: Int32, path: String)?
        for _ in 0..<100 {
            let candidate = prefix + Hex.encode((try? SecureRandom.bytes(count: 6)) ?? [])
            Interruption.deleteIfInterrupted(candidate)
            let fd = open(candidate, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd >= 0 {
                created = (fd, candidate)
                break
            }
            let error = errno
            Interruption.keep(candidate)
            guard error == EEXIST else {
                throw ValidationError("cannot create a temporary file for \(path): \(String(cString: strerror(error)))")
            }
        }
        guard let created else { throw ValidationError("cannot create a temporary file for \(path): every name taken") }
        descriptor = created.fd
        if target == nil {
            unlink(created.path)
            Interruption.keep(created.path)
            temporaryPath = nil
        } else {
            temporaryPath = created.path
        }
    }

    func write(_ bytes: [UInt8]) throws {
        try Self.writeAll(descriptor, bytes)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw IOFailure("write failed: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    /// Makes the output visible.
    func commit() throws {
        if let target, let temporaryPath {
            let flushed = fsync(descriptor) == 0
            closed = true
            guard Glibc.close(descriptor) == 0, flushed else {
                throw IOFailure("could not flush the output: \(String(cString: strerror(errno)))")
            }
            guard rename(temporaryPath, target) == 0 else {
                throw IOFailure("could not move the output into place: \(String(cString: strerror(errno)))")
            }
            committed = true
            Interruption.keep(temporaryPath)
        } else {
            defer {
                closed = true
                _ = Glibc.close(descriptor)
            }
            guard lseek(descriptor, 0, SEEK_SET) == 0 else { throw IOFailure("could not rewind the spool file") }
            var chunk = [UInt8](repeating: 0, count: EncryptionCLI.chunkSize)
            while true {
                let n = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress!, $0.count) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw IOFailure("could not read the spool file")
                }
                if n == 0 { break }
                try Self.writeAll(STDOUT_FILENO, Array(chunk[0..<n]))
            }
        }
    }

    /// Discards everything written, even once committed.
    func abandon() {
        if !closed {
            closed = true
            _ = Glibc.close(descriptor)
        }
        if let temporaryPath, !committed {
            unlink(temporaryPath)
            Interruption.keep(temporaryPath)
        } else if let target, committed {
            unlink(target)  // one of several outputs that must appear together failed after this one
        }
    }
}

/// What a command does when it is interrupted (SIGINT, SIGTERM) before it ends: remove the
/// temporary files of outputs not yet committed, so an interrupted download or decryption leaves
/// no partial, unauthenticated plaintext behind, and say what the interruption means (`job watch`:
/// the job keeps running). Then it exits 130 (SIGINT) or 143 (SIGTERM).
///
/// The signal handler may only make async-signal-safe calls, so the paths and the message live in
/// a fixed table of C strings it reads without a lock (each slot is one pointer-sized store); a
/// string once published is never freed, since the handler may be reading it (a few per command).
enum Interruption {
    /// Slots in the table (the handler repeats the number as a literal).
    static let capacity = 64
    private static let lock = NSLock()
    nonisolated(unsafe) private static var installed = false

    /// Deletes `path` if the command is interrupted, until `keep(path)`.
    static func deleteIfInterrupted(_ path: String) {
        lock.withLock {
            installIfNeeded()
            // More than `capacity` at once is not a case any command has; such a file is just not tracked.
            if let free = (0..<capacity).first(where: { interruptionSlots[$0] == nil }) { interruptionSlots[free] = strdup(path) }
        }
    }

    /// `path` was committed (or removed): leave it alone.
    static func keep(_ path: String) {
        lock.withLock {
            if let slot = (0..<capacity).first(where: { interruptionSlots[$0].map { String(cString: $0) } == path }) {
                interruptionSlots[slot] = nil
            }
        }
    }

    /// Prints `message` (a line, on stderr) if the command is interrupted.
    static func explain(_ message: String) {
        lock.withLock {
            installIfNeeded()
            interruptionMessage = strdup("\n" + message + "\n")
        }
    }

    /// Called with the lock held.
    private static func installIfNeeded() {
        guard !installed else { return }
        installed = true
        // Globals are initialized lazily, on first use: that first use (an allocation, a one-time
        // lock) must happen here, never inside the handler.
        _ = interruptionSlots
        _ = interruptionMessage
        var action = sigaction()
        action.__sigaction_handler.sa_handler = interrupted
        sigemptyset(&action.sa_mask)
        sigaddset(&action.sa_mask, SIGINT)  // one handler never interrupts the other
        sigaddset(&action.sa_mask, SIGTERM)
        sigaction(SIGINT, &action, nil)
        sigaction(SIGTERM, &action, nil)
    }
}

/// `Interruption`'s files (nil: a free slot) and message.
nonisolated(unsafe) private let interruptionSlots: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = {
    let slots = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: Interruption.capacity)
    slots.initialize(repeating: nil, count: Interruption.capacity)
    return slots
}()
nonisolated(unsafe) private var interruptionMessage: UnsafeMutablePointer<CChar>?

/// SIGINT/SIGTERM: unlink the pending files, say so and what it means, exit. Async-signal-safe calls only.
private func interrupted(_ signal: Int32) {
    var removed = false
    for slot in 0..<64 {  // Interruption.capacity, as a literal: no lazy global inside the handler
        if let path = interruptionSlots[slot], unlink(path) == 0 { removed = true }
    }
    if removed {
        let message: StaticString = "\ninterrupted: the unfinished output was removed; nothing of it was written\n"
        _ = write(STDERR_FILENO, message.utf8Start, message.utf8CodeUnitCount)
    }
    if let message = interruptionMessage { _ = write(STDERR_FILENO, message, strlen(message)) }
    _exit(signal == SIGINT ? 130 : 143)
}

struct IOFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
