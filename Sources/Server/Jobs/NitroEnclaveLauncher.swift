#if canImport(Glibc)
import Glibc
#endif
import Enclave
import Foundation
import Spawn

/// Nitro mode: runs the enclave image with `nitro-cli run-enclave` and accepts its vsock
/// connection to the parent (the enclave dials CID 3 on `configuration.port`).
///
/// Launches run one at a time: every enclave of the image dials the same port, so two at once would
/// both listen on it (the second fails to bind) and could accept each other's enclave. A launch waits
/// for the one before it to be accepted or to time out.
///
/// Cannot run outside an enclave-enabled EC2 instance; its command lines, output parsing and
/// turn-taking are unit-tested (with a stand-in `nitro-cli`).
public struct NitroEnclaveLauncher: EnclaveLauncher {
    /// The image, its resources and the channel port.
    public struct Configuration: Sendable, Equatable {
        /// Path or name of `nitro-cli`.
        public var nitroCLI: String = "/usr/bin/nitro-cli"
        /// The enclave image file (EIF); its PCR0 must be in each policy's allowed set.
        public var eifPath: String
        public var cpuCount: Int
        public var memoryMiB: Int
        /// A fixed enclave CID, or nil to let nitro-cli choose.
        public var enclaveCID: UInt32?
        /// The vsock port the enclave connects to on the parent (baked into the image's command).
        public var port: UInt32
        /// Debug mode zeroes the PCRs; policies refuse it unless `allowDebug`.
        public var debugMode: Bool = false
        /// How long nitro-cli and the enclave's connection may take.
        public var connectTimeout: Duration = .seconds(60)
        public var limits: ChannelLimits = .default

        public init(eifPath: String, cpuCount: Int, memoryMiB: Int, port: UInt32) {
            self.eifPath = eifPath
            self.cpuCount = cpuCount
            self.memoryMiB = memoryMiB
            self.port = port
        }
    }

    public let configuration: Configuration
    /// Held from listening to accepting (shared by copies of this launcher).
    private let oneAtATime = NSLock()

    public init(configuration: Configuration) throws(EnclaveLaunchError) {
        guard configuration.cpuCount >= 1, configuration.memoryMiB >= 64, configuration.port > 0,
            !configuration.eifPath.isEmpty
        else {
            throw EnclaveLaunchError(
                .configuration, "nitro enclave needs an EIF path, at least 1 CPU, 64 MiB of memory and a port")
        }
        self.configuration = configuration
    }

    /// `nitro-cli run-enclave …` arguments.
    public var runArguments: [String] {
        var arguments = [
            "run-enclave", "--eif-path", configuration.eifPath, "--cpu-count", String(configuration.cpuCount),
            "--memory", String(configuration.memoryMiB),
        ]
        if let cid = configuration.enclaveCID { arguments += ["--enclave-cid", String(cid)] }
        if configuration.debugMode { arguments.append("--debug-mode") }
        return arguments
    }

    /// `nitro-cli terminate-enclave …` arguments.
    public static func terminateArguments(enclaveID: String) -> [String] {
        ["terminate-enclave", "--enclave-id", enclaveID]
    }

    /// The `EnclaveID` from `nitro-cli run-enclave`'s JSON output.
    public static func enclaveID(fromRunOutput output: [UInt8]) throws(EnclaveLaunchError) -> String {
        // nitro-cli may print log lines before the JSON object: start at the first line opening one.
        let text = String(decoding: output, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard let first = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix("{") }),
            let object = try? JSONSerialization.jsonObject(with: Data(lines[first...].joined(separator: "\n").utf8))
                as? [String: Any],
            let id = object["EnclaveID"] as? String, !id.isEmpty, id.count <= 128,
            id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") })
        else {
            throw EnclaveLaunchError(.nitroCLIFailed, "nitro-cli run-enclave printed no EnclaveID")
        }
        return id
    }

    public func launch(jobID: String) throws(EnclaveLaunchError) -> any EnclaveInstance {
        oneAtATime.lock()
        defer { oneAtATime.unlock() }
        let listener: Int32
        do {
            listener = try ChannelSocket.listen(.vsock(cid: ChannelAddress.anyCID, port: configuration.port))
        } catch {
            throw EnclaveLaunchError(.socket, error.message)
        }
        defer { close(listener) }
        let deadline = ContinuousClock.now + configuration.connectTimeout
        let run = try Self.runTool(configuration.nitroCLI, runArguments, timeout: configuration.connectTimeout)
        guard run.status == .exited(0) else {
            throw EnclaveLaunchError(
                .nitroCLIFailed, "nitro-cli run-enclave \(run.status): \(String(decoding: run.output.suffix(512), as: UTF8.self))")
        }
        let id = try Self.enclaveID(fromRunOutput: run.output)
        do {
            let fd = try ChannelSocket.accept(listener, deadline: deadline)
            return NitroEnclave(
                enclaveID: id, nitroCLI: configuration.nitroCLI,
                connection: ChannelConnection(fileDescriptor: fd, limits: configuration.limits))
        } catch {
            _ = try? Self.runTool(configuration.nitroCLI, Self.terminateArguments(enclaveID: id), timeout: .seconds(30))
            throw EnclaveLaunchError(.connectTimeout, "enclave \(id) did not connect on vsock port \(configuration.port)")
        }
    }

    /// Runs a tool to completion (killed at `timeout`) and returns its status and combined output.
    static func runTool(
        _ tool: String, _ arguments: [String], timeout: Duration
    ) throws(EnclaveLaunchError) -> (status: ChildProcess.ExitStatus, output: [UInt8]) {
        var template = Array("/tmp/cleanroom-nitro-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw EnclaveLaunchError(.socket, "could not create a temporary file") }
        close(fd)
        let path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
        defer { unlink(path) }
        let child = try ChildProcess.launch(
            executable: tool, arguments: arguments,
            environment: ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"], outputPath: path)
        let status = child.wait(timeout: timeout) ?? child.terminate(grace: .seconds(1))
        let output = (try? Data(contentsOf: URL(fileURLWithPath: path))).map { [UInt8]($0) } ?? []
        return (status, output)
    }
}

/// A running Nitro Enclave and its vsock channel.
final class NitroEnclave: EnclaveInstance, @unchecked Sendable {
    let enclaveID: String
    let nitroCLI: String
    let connection: ChannelConnection
    private let lock = NSLock()
    private var terminated = false

    init(enclaveID: String, nitroCLI: String, connection: ChannelConnection) {
        self.enclaveID = enclaveID
        self.nitroCLI = nitroCLI
        self.connection = connection
    }

    deinit { terminate() }

    var summary: String { "nitro enclave \(enclaveID)" }

    func isAlive() -> Bool { lock.withLock { !terminated } }

    func terminate() {
        let first = lock.withLock { () -> Bool in
            defer { terminated = true }
            return !terminated
        }
        connection.shutdown()
        if first {
            _ = try? NitroEnclaveLauncher.runTool(
                nitroCLI, NitroEnclaveLauncher.terminateArguments(enclaveID: enclaveID), timeout: .seconds(30))
        }
        connection.close()
    }
}
