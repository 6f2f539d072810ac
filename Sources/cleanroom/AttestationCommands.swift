import ArgumentParser
import Attestation
import Crypto
import Foundation

/// `cleanroom attestation …`: inspect and verify Nitro attestation documents.
struct AttestationCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attestation",
        abstract: "Inspect and verify Nitro attestation documents.",
        subcommands: [AttestationVerifyCommand.self]
    )
}

/// `cleanroom attestation verify FILE --root PEM …`.
struct AttestationVerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify an attestation document and print what it attests.",
        discussion: """
            Checks the structure, the ES384 signature with the leaf certificate's key, the certificate \
            chain to --root at the verification time, debug mode, and any expectations given. Prints the \
            decoded document and exits 0 only if every check passed; otherwise prints the failing check \
            and exits 1. Exit 2 means the arguments or the root could not be used.
            """
    )

    @Argument(help: "The document: raw COSE_Sign1 bytes or base64 of them ('-' reads standard input).")
    var file: String

    @Option(help: "PEM file of the trusted root (the AWS Nitro Enclaves root, or a development root).")
    var root: String

    @Option(help: "Verify at this time (Unix seconds) instead of now; certificates must be valid then.")
    var at: UInt64?

    @Option(name: .customLong("expect-pcr"), help: "Require PCR N to equal HEX (repeatable), e.g. 0=f4d4….")
    var expectPCR: [String] = []

    @Flag(help: "Accept a debug-mode enclave (PCR0 all zeros).")
    var allowDebug = false

    @Option(help: "Reject documents older than this many seconds at the verification time.")
    var maxAge: UInt64?

    @Option(help: "Require this nonce (hex).")
    var nonce: String?

    @Option(name: .customLong("user-data"), help: "Require this user data (hex).")
    var userData: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        let input: [UInt8]
        let rootPEM: String
        do {
            input =
                file == "-"
                ? [UInt8](FileHandle.standardInput.readDataToEndOfFile())
                : [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        } catch {
            throw usage("cannot read the attestation document \(file): \(error.localizedDescription)")
        }
        do {
            rootPEM = try String(contentsOf: URL(fileURLWithPath: root), encoding: .utf8)
        } catch {
            throw usage("cannot read the trusted root --root \(root): \(error.localizedDescription)")
        }
        let trustedRoot: TrustedRoot
        do {
            trustedRoot = try TrustedRoot(pem: rootPEM)
        } catch {
            throw usage("--root: \(error)")
        }
        var expectations = AttestationExpectations(
            allowDebug: allowDebug,
            maxAgeMilliseconds: maxAge.map { $0 * 1000 }
        )
        if !expectPCR.isEmpty {
            var values: [Int: [UInt8]] = [:]
            for entry in expectPCR {
                let parts = entry.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, let index = Int(parts[0]), (0..<32).contains(index),
                    let value = Hex.decode(String(parts[1])), value.count == 48
                else { throw usage("--expect-pcr \(entry): expected N=HEX with N in 0...31 and 96 hex digits") }
                values[index] = value
            }
            expectations.allowedPCRSets = [PCRSet(values)]
        }
        if let nonce {
            guard let bytes = Hex.decode(nonce) else { throw usage("--nonce is not hex") }
            expectations.nonce = bytes
        }
        if let userData {
            guard let bytes = Hex.decode(userData) else { throw usage("--user-data is not hex") }
            expectations.userData = bytes
        }
        let time = at.map { UnixTime(seconds: $0) } ?? UnixTime.now()
        let verifier = AttestationVerifier(trustedRoots: [trustedRoot], at: time)
        do {
            let bytes = try AttestationInput.decode(input)
            let verified = try verifier.verify(bytes, expectations: expectations)
            print(json ? Self.json(verified) : Self.text(verified))
        } catch {
            if json {
                let body: [String: Any] = [
                    "verified": false, "error": ["code": error.code.rawValue, "message": error.message],
                ]
                print(Self.serialize(body))
            } else {
                FileHandle.standardError.write(
                    Data("attestation verification FAILED: \(error.code): \(error.message)\n".utf8)
                )
            }
            throw ExitCode(1)
        }
    }

    /// A usage failure (exit 2), reported like every other usage error of the CLI.
    private func usage(_ message: String) -> ValidationError { ValidationError(message) }

    static func fields(_ v: VerifiedAttestationDocument) -> [(String, Any)] {
        func optional(_ bytes: [UInt8]?) -> Any {
            guard let bytes else { return NSNull() }
            return ["hex": Hex.encode(bytes), "base64": Data(bytes).base64EncodedString()]
        }
        return [
            ("verified", true),
            ("development", v.isDevelopment),
            ("root", v.trustedRoot.name),
            ("root_sha256", v.trustedRoot.sha256Fingerprint),
            ("module_id", v.moduleID),
            ("timestamp_ms", v.timestamp),
            (
                "timestamp_utc",
                ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(v.timestamp) / 1000))
            ),
            ("verified_at", v.verificationTime.seconds),
            ("debug_mode", v.isDebugMode),
            ("pcrs", Dictionary(uniqueKeysWithValues: v.pcrs.map { (String($0.key), Hex.encode($0.value)) })),
            ("public_key", optional(v.publicKey)),
            ("user_data", optional(v.userData)),
            ("nonce", optional(v.nonce)),
            ("chain", v.chain.certificates.map { $0.subject.description }),
        ]
    }

    static func json(_ v: VerifiedAttestationDocument) -> String {
        serialize(Dictionary(uniqueKeysWithValues: fields(v)))
    }

    static func serialize(_ object: [String: Any]) -> String {
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func text(_ v: VerifiedAttestationDocument) -> String {
        func optional(_ bytes: [UInt8]?) -> String {
            guard let bytes else { return "(null)" }
            return
                "\(bytes.count) bytes\n    hex:    \(Hex.encode(bytes))\n    base64: \(Data(bytes).base64EncodedString())"
        }
        var lines = [
            "attestation document VERIFIED\(v.isDevelopment ? " (DEVELOPMENT root: not a real Nitro Enclave)" : "")",
            "root:       \(v.trustedRoot.name) (sha256 \(v.trustedRoot.sha256Fingerprint))",
            "module_id:  \(v.moduleID)",
            "timestamp:  \(v.timestamp) ms (\(ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(v.timestamp) / 1000))))",
            "debug mode: \(v.isDebugMode ? "yes (PCR0 all zeros)" : "no")",
            "pcrs:",
        ]
        for index in v.pcrs.keys.sorted() {
            lines.append("  PCR\(index)\(index < 10 ? " " : ""): \(Hex.encode(v.pcrs[index]!))")
        }
        lines.append("public_key: \(optional(v.publicKey))")
        lines.append("user_data:  \(optional(v.userData))")
        lines.append("nonce:      \(optional(v.nonce))")
        lines.append("chain:")
        for certificate in v.chain.certificates { lines.append("  \(certificate.subject)") }
        return lines.joined(separator: "\n")
    }
}

/// `cleanroom enclave …`: enclave executables and their measurements.
struct EnclaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enclave",
        abstract: "Measure enclave executables.",
        subcommands: [EnclaveMeasureCommand.self]
    )
}

/// `cleanroom enclave measure PATH`: the development measurements of an executable.
struct EnclaveMeasureCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "measure",
        abstract: "Print the development measurements (PCR0/1/2) of an enclave executable.",
        discussion: """
            PCR0 is SHA-384 of the executable's bytes, as the development attestor computes it; PCR1 and \
            PCR2 are the configured values (48 zero bytes unless given). Real Nitro measurements come from \
            `nitro-cli build-enclave` (enclave-image/build.sh writes them to measurements.json).
            """
    )

    @Argument(help: "The enclave executable.")
    var path: String

    @Option(help: "PCR1 to report (hex, 48 bytes); defaults to zeros.")
    var pcr1: String?

    @Option(help: "PCR2 to report (hex, 48 bytes); defaults to zeros.")
    var pcr2: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() async throws {
        func pcr(_ text: String?, _ name: String) throws -> [UInt8]? {
            guard let text else { return nil }
            guard let value = Hex.decode(text), value.count == 48 else {
                throw ValidationError("--\(name) must be 96 hex digits")
            }
            return value
        }
        let measurements: DevelopmentMeasurements
        do {
            measurements = try DevelopmentMeasurements(
                executableAt: path,
                pcr1: try pcr(pcr1, "pcr1"),
                pcr2: try pcr(pcr2, "pcr2")
            )
        } catch let error as AttestationError {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            throw ExitCode(1)
        }
        if json {
            print(
                AttestationVerifyCommand.serialize([
                    "Measurements": [
                        "HashAlgorithm": "Sha384 { ... }", "PCR0": Hex.encode(measurements.pcr0),
                        "PCR1": Hex.encode(measurements.pcr1), "PCR2": Hex.encode(measurements.pcr2),
                    ],
                    "development": true,
                ])
            )
        } else {
            print("PCR0: \(Hex.encode(measurements.pcr0))")
            print("PCR1: \(Hex.encode(measurements.pcr1))")
            print("PCR2: \(Hex.encode(measurements.pcr2))")
        }
    }
}
