#if canImport(Glibc)
import Glibc
#endif
import Enclave
import Foundation
import Logging

/// Keeps one enclave launched, connected and keyed before a job asks for it, so the job's
/// attestation starts at once: the process start (in Nitro mode, `nitro-cli run-enclave`'s boot)
/// and the enclave's RSA key generation are no longer part of the job.
///
/// A standby holds nothing of any job: only its own fresh keys. It is handed to a job only while it
/// is alive, its channel is quiet, and the image it was launched from is the same file as now (device,
/// inode, size, modification and change times); otherwise it is terminated and the job gets a fresh
/// launch, so a changed enclave image takes effect at the next job and never runs on an old one. The
/// attestation is made with the job's nonce after the job takes the enclave, as for a fresh launch.
///
/// A taken standby is replaced when its job's enclave is terminated (the job's end), not while the
/// job runs, so the replacement does not compete with the job for CPU. Jobs that overlap get fresh
/// launches. Nothing is launched before `start()`; `beginStopping()` launches no more, and `stop()`
/// also terminates the standby, waiting for one still being launched.
public final class StandbyEnclaveLauncher: EnclaveLauncher, @unchecked Sendable {
    private enum Standby {
        case none
        case launching
        case ready(any EnclaveInstance, image: FileIdentity?)
    }

    private let inner: any EnclaveLauncher
    private let imagePath: String
    private let logger: Logger
    private let condition = NSCondition()
    private var standby: Standby = .none
    private var started = false
    private var stopped = false

    /// Wraps `inner`, whose enclaves run the image at `imagePath` (the local enclave program or the EIF).
    public init(inner: any EnclaveLauncher, imagePath: String, logger: Logger = Logger(label: "cleanroomd.enclave")) {
        self.inner = inner
        self.imagePath = imagePath
        self.logger = logger
    }

    /// Launches the first standby (in the background), and from now on a replacement whenever a
    /// job's enclave ends.
    public func start() {
        condition.withLock { started = true }
        replenish()
    }

    /// From now on no standby is launched and no job gets an enclave (the server is shutting down:
    /// called before its jobs are cancelled, whose ends would otherwise launch replacements).
    public func beginStopping() {
        condition.withLock {
            stopped = true
            condition.broadcast()
        }
    }

    /// `beginStopping`, then terminates the standby, waiting for one still being launched.
    public func stop() {
        let waiting: (any EnclaveInstance)? = condition.withLock {
            stopped = true
            while case .launching = standby { condition.wait() }
            defer { standby = .none }
            if case .ready(let instance, _) = standby { return instance }
            return nil
        }
        if let waiting {
            waiting.terminate()
            logger.info("standby enclave stopped", metadata: ["enclave": "\(waiting.summary)"])
        }
    }

    /// Whether an enclave stands ready now (for the server's metrics).
    public var isReady: Bool {
        condition.withLock {
            if case .ready = standby { return true }
            return false
        }
    }

    public func launch(jobID: String) throws(EnclaveLaunchError) -> any EnclaveInstance {
        if let taken = try take() {
            let (instance, image) = taken
            if let reason = unusable(instance, launchedFrom: image) {
                logger.info("standby enclave not used", metadata: ["job": "\(jobID)", "reason": "\(reason)"])
                instance.terminate()
            } else {
                logger.info("job uses the standby enclave", metadata: ["job": "\(jobID)", "enclave": "\(instance.summary)"])
                return ReplacedWhenEnded(instance) { [self] in replenish() }
            }
        }
        return ReplacedWhenEnded(try inner.launch(jobID: jobID)) { [self] in replenish() }
    }

    /// Takes the ready standby, waiting for one being launched (it is further along than a fresh
    /// launch); nil if there is none. Refuses once stopping began: no enclave starts after that.
    private func take() throws(EnclaveLaunchError) -> (any EnclaveInstance, FileIdentity?)? {
        condition.lock()
        defer { condition.unlock() }
        while !stopped, case .launching = standby { condition.wait() }
        guard !stopped else { throw EnclaveLaunchError(.stopping, "the server is shutting down; start the job again after it restarts") }
        guard case .ready(let instance, let image) = standby else { return nil }
        standby = .none
        return (instance, image)
    }

    /// Why a standby must not be handed to a job, or nil if it may.
    private func unusable(_ instance: any EnclaveInstance, launchedFrom image: FileIdentity?) -> String? {
        guard instance.isAlive() else { return "it has exited" }
        guard let image, image == FileIdentity(path: imagePath) else {
            return "the enclave image \(imagePath) changed since it was launched"
        }
        do {
            // A standby says nothing until it is sent `begin`; anything else means it failed.
            if let message = try instance.connection.receiveIfAvailable() {
                return "it sent \(message.type) before any job"
            }
        } catch {
            return "its channel failed: \(error.message)"
        }
        return nil
    }

    /// Launches a standby on a thread of its own unless one is ready or launching.
    private func replenish() {
        let go = condition.withLock { () -> Bool in
            guard started, !stopped, case .none = standby else { return false }
            standby = .launching
            return true
        }
        guard go else { return }
        let thread = Thread { [self] in
            Thread.current.name = "enclave-standby"  // named from inside: on Linux a name set before start is lost
            // The image is identified before the launch: a change during it makes the standby unusable.
            let image = FileIdentity(path: imagePath)
            var launched: (any EnclaveInstance)?
            do {
                launched = try inner.launch(jobID: "standby")
            } catch {
                logger.warning("the standby enclave did not start; the next job launches its own", metadata: ["error": "\(error)"])
            }
            // Stored even when `stop` came meanwhile: `stop` waits for this and terminates it itself,
            // so that no enclave outlives the server's stop.
            condition.withLock {
                standby = launched.map { .ready($0, image: image) } ?? .none
                condition.broadcast()
            }
            if let launched { logger.info("standby enclave ready", metadata: ["enclave": "\(launched.summary)"]) }
        }
        thread.start()
    }
}

/// A file's identity as far as `stat` tells it: a replaced or rewritten file has another.
struct FileIdentity: Equatable {
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let modified: timespec
    let changed: timespec

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = info.st_mtim
        changed = info.st_ctim
    }

    static func == (a: FileIdentity, b: FileIdentity) -> Bool {
        a.device == b.device && a.inode == b.inode && a.size == b.size
            && a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec
            && a.changed.tv_sec == b.changed.tv_sec && a.changed.tv_nsec == b.changed.tv_nsec
    }
}

/// An enclave that calls `ended` once, after its first termination.
final class ReplacedWhenEnded: EnclaveInstance, @unchecked Sendable {
    let inner: any EnclaveInstance
    private let ended: @Sendable () -> Void
    private let lock = NSLock()
    private var terminated = false

    init(_ inner: any EnclaveInstance, ended: @escaping @Sendable () -> Void) {
        self.inner = inner
        self.ended = ended
    }

    var connection: ChannelConnection { inner.connection }
    var summary: String { inner.summary }
    var localAttestation: LocalAttestation? { inner.localAttestation }
    func isAlive() -> Bool { inner.isAlive() }

    func terminate() {
        inner.terminate()
        let first = lock.withLock { () -> Bool in
            defer { terminated = true }
            return !terminated
        }
        if first { ended() }
    }
}
