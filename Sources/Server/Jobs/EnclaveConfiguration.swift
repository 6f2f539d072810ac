import AWS
import Attestation
import Foundation
import LocalServices
import Logging

/// Where `cleanroomd serve` runs job enclaves (`--enclave …` options):
///
/// - `--enclave local` (default): `cleanroom-enclave` as a child process over a Unix socket, attested
///   by the data directory's development CA, which measures the binary it started. The binary is
///   `--enclave-binary PATH`, by default the `cleanroom-enclave` beside `cleanroomd`.
/// - `--enclave nitro`: `nitro-cli run-enclave --eif-path EIF --cpu-count N --memory MiB`, over vsock
///   (parent CID 3, `--enclave-port`), attested by the NSM and verified against AWS's Nitro root.
public struct EnclaveConfiguration: Sendable, Equatable {
    public enum Mode: String, Sendable, Equatable {
        case local, nitro
    }

    public var mode: Mode = .local
    /// Local mode: the enclave program (nil: beside the running executable).
    public var binaryPath: String?
    /// Local mode: where each launch makes its private socket directory; at start the ones servers
    /// now gone left there are removed (`LocalEnclaveLauncher.removeAbandonedSocketDirectories`).
    public var socketParent = "/tmp"
    /// Nitro mode.
    public var eifPath: String?
    public var cpuCount = 2
    public var memoryMiB = 4096
    public var enclaveCID: UInt32?
    public var port: UInt32 = 5005
    public var debugMode = false
    /// Keep one enclave launched and keyed ahead of the next job (`--no-enclave-standby` turns it off).
    public var standby = true

    public init() {}

    /// Parses the option values (nil = not given); errors name the option and what to give.
    public init(
        mode: String?, binary: String?, eif: String?, cpus: Int?, memoryMiB: Int?, cid: UInt32?, port: UInt32?,
        debug: Bool, standby: Bool = true
    ) throws {
        self.standby = standby
        if let mode {
            guard let parsed = Mode(rawValue: mode) else {
                throw ConfigurationError("--enclave must be local or nitro, not \(mode)")
            }
            self.mode = parsed
        }
        switch self.mode {
        case .local:
            for (name, given) in [
                ("--enclave-eif", eif != nil), ("--enclave-cpus", cpus != nil), ("--enclave-memory", memoryMiB != nil),
                ("--enclave-cid", cid != nil), ("--enclave-port", port != nil), ("--enclave-debug", debug),
            ] where given {
                throw ConfigurationError("\(name) needs --enclave nitro")
            }
            if let binary {
                var info = stat()
                guard stat(binary, &info) == 0, info.st_mode & S_IFMT == S_IFREG, access(binary, X_OK) == 0 else {
                    throw ConfigurationError("--enclave-binary \(binary) is not an executable file: give the path of cleanroom-enclave")
                }
            }
            binaryPath = binary
        case .nitro:
            if binary != nil { throw ConfigurationError("--enclave-binary is for --enclave local; give --enclave-eif") }
            guard let eif, !eif.isEmpty else {
                throw ConfigurationError("--enclave nitro needs --enclave-eif PATH (built with `nitro-cli build-enclave`)")
            }
            eifPath = eif
            if let cpus {
                guard cpus >= 2 else { throw ConfigurationError("--enclave-cpus must be at least 2 (Nitro's minimum)") }
                cpuCount = cpus
            }
            if let memoryMiB {
                guard memoryMiB >= 512 else { throw ConfigurationError("--enclave-memory must be at least 512 (MiB)") }
                self.memoryMiB = memoryMiB
            }
            if let cid {
                guard cid >= 4 else { throw ConfigurationError("--enclave-cid must be at least 4 (0–3 are reserved)") }
                enclaveCID = cid
            }
            if let port { self.port = port }
            debugMode = debug
        }
    }

    /// The local enclave program: the configured path, or `cleanroom-enclave` beside this executable.
    public func localBinary() throws -> String {
        if let binaryPath { return binaryPath }
        let me = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0])
        let beside = me.deletingLastPathComponent().appendingPathComponent("cleanroom-enclave").path
        guard FileManager.default.isExecutableFile(atPath: beside) else {
            throw ConfigurationError(
                "no enclave program at \(beside): build it (`swift build --product cleanroom-enclave`) or give --enclave-binary PATH")
        }
        return beside
    }
}

extension JobManager.Services {
    /// The launcher, attestation verifier and key release of a server's configuration. In local
    /// mode, first removes the socket directories servers now gone left (logged).
    public static func make(
        _ enclave: EnclaveConfiguration, dataDirectory: DataDirectory, storage: StorageServices,
        logger: Logger = Logger(label: "cleanroomd.enclave")
    ) throws -> JobManager.Services {
        var launcher: any EnclaveLauncher
        let imagePath: String
        let verifier: AttestationVerifier
        /// The images the checkpoint key is for (local mode: the binary's development PCR0).
        var checkpointImages: [String] = []
        switch enclave.mode {
        case .local:
            let binary = try enclave.localBinary()
            imagePath = binary
            if let measured = try? DevelopmentMeasurements(executableAt: binary) {
                checkpointImages = [measured.pcr0.map { String(format: "%02x", $0) }.joined()]
            }
            let ca = try DevelopmentCA.openOrCreate(dataDirectory: dataDirectory.path)
            var configuration = LocalEnclaveLauncher.Configuration(executablePath: binary)
            configuration.socketParent = enclave.socketParent
            for path in LocalEnclaveLauncher.removeAbandonedSocketDirectories(under: enclave.socketParent) {
                logger.notice("removed the enclave socket directory of a server that is gone", metadata: ["path": "\(path)"])
            }
            configuration.extraArguments = ["--attestor", "development"]
            configuration.logPath = dataDirectory.file("enclave.log").path
            let dataPath = dataDirectory.path
            configuration.attestor = { running in
                // Measured at every launch, the file the child runs: a changed binary gets a changed PCR0 (and no keys).
                try DevelopmentAttestor.open(dataDirectory: dataPath, enclaveExecutable: running)
            }
            launcher = LocalEnclaveLauncher(configuration: configuration)
            verifier = AttestationVerifier(trustedRoots: [ca.trustedRoot])
        case .nitro:
            imagePath = enclave.eifPath ?? ""
            var configuration = NitroEnclaveLauncher.Configuration(
                eifPath: imagePath, cpuCount: enclave.cpuCount, memoryMiB: enclave.memoryMiB, port: enclave.port)
            configuration.enclaveCID = enclave.enclaveCID
            configuration.debugMode = enclave.debugMode
            do {
                launcher = try NitroEnclaveLauncher(configuration: configuration)
            } catch {
                throw ConfigurationError("cannot use the Nitro enclave configuration: \(error.message)")
            }
            verifier = AttestationVerifier(trustedRoots: [.awsNitroEnclavesRootG1])
        }
        let standby = enclave.standby ? StandbyEnclaveLauncher(inner: launcher, imagePath: imagePath) : nil
        if let standby { launcher = standby }
        let decrypt: KMSKeyRelease.Decrypt
        var checkpoints: (any CheckpointService)?
        if let local = storage.localKMS {
            decrypt = { request in try local.decrypt(request, caller: local.defaultCaller) }
            // Local KMS: a checkpoint key (alias/cleanroom-checkpoints) whose policy names the
            // enclave image. Nitro mode with the local KMS has no image to name: no checkpoints.
            if !checkpointImages.isEmpty {
                do {
                    let key = try local.checkpointKey(enclaveImages: checkpointImages)
                    checkpoints = KMSCheckpointService(
                        objects: storage.objectStore, keyID: key,
                        generateDataKey: { try local.generateDataKey($0, caller: local.defaultCaller) },
                        decrypt: { try local.decrypt($0, caller: local.defaultCaller) }, logger: logger)
                } catch {
                    throw ConfigurationError("cannot set up the checkpoint key in the local KMS: \(error)")
                }
            }
        } else if let aws = storage.kms as? AWSKMSClient {
            decrypt = { request in
                let result = BlockingTask.run {
                    try await aws.decrypt(
                        keyID: request.keyId, ciphertextBlob: Array(request.ciphertextBlob),
                        encryptionContext: request.encryptionContext ?? [:],
                        attestationDocument: Array(request.recipient?.attestationDocument ?? Data()))
                }
                let (keyARN, cms) = try result.get()
                return KMSWire.DecryptResponse(plaintext: nil, keyId: keyARN, ciphertextForRecipient: Data(cms))
            }
            // AWS KMS: the key under alias/cleanroom-checkpoints (policy: LocalKMS.checkpointKeyPolicy
            // with the EIF's PCR0). Without that key a job reports "no checkpoints" and runs on.
            checkpoints = KMSCheckpointService(
                objects: storage.objectStore, keyID: LocalKMS.checkpointKeyAlias,
                generateDataKey: { request in
                    try BlockingTask.run { try await aws.call("GenerateDataKey", request, as: KMSWire.GenerateDataKeyResponse.self) }
                        .get()
                },
                decrypt: { request in
                    try BlockingTask.run { try await aws.call("Decrypt", request, as: KMSWire.DecryptResponse.self) }.get()
                }, logger: logger)
        } else {
            throw ConfigurationError("jobs need the local KMS or AWS KMS (--kms local|aws)")
        }
        var services = JobManager.Services(launcher: launcher, verifier: verifier, decrypt: decrypt, checkpoints: checkpoints)
        services.standby = standby
        return services
    }
}
