// cleanroom-enclave: the program that runs inside the Nitro Enclave (or as a local child
// process in local mode). Thin wiring over the Enclave module:
//
//   cleanroom-enclave --connect unix:/path/to/socket [--attestor development]   (local mode)
//   cleanroom-enclave --connect vsock:3:5005 [--attestor nsm]                   (Nitro Enclave)
//   --checkpoint-every ROUNDS: rounds between sealed checkpoints when the server stores them (10)
//
// Exit status: 0 after the receipt was delivered, 1 when the job failed (the reason was sent to
// the server), 2 for a usage error or an unreachable server.
import Attestation
import Enclave
import Foundation

#if canImport(Glibc)
import Glibc
#endif

// Local mode starts this program from a sealed in-memory copy (`/proc/self/fd/N`), for which the
// kernel names the process after the descriptor's number. Take the name `exec` of a path gives
// (argv[0]'s last component, at most 15 bytes), which `ps`, `pgrep` and operators look for.
if let name = CommandLine.arguments.first?.split(separator: "/").last {
    try? Data(name.utf8.prefix(15)).write(to: URL(fileURLWithPath: "/proc/self/comm"))
}

func fail(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data("cleanroom-enclave: \(message)\n".utf8))
    exit(status)
}

var connect: ChannelAddress?
var attestorKind = "nsm"
var checkpointEvery = 10
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--connect":
        guard let value = arguments.popFirst(), let address = ChannelAddress(value) else {
            fail("--connect needs unix:PATH or vsock:CID:PORT", status: 2)
        }
        connect = address
    case "--attestor":
        guard let value = arguments.popFirst(), ["nsm", "development"].contains(value) else {
            fail("--attestor must be nsm or development", status: 2)
        }
        attestorKind = value
    case "--checkpoint-every":
        guard let value = arguments.popFirst(), let rounds = Int(value), rounds >= 1, rounds <= 1_000_000 else {
            fail("--checkpoint-every needs a number of rounds from 1 to 1000000", status: 2)
        }
        checkpointEvery = rounds
    case "--help", "-h":
        print(
            "usage: cleanroom-enclave --connect unix:PATH|vsock:CID:PORT [--attestor nsm|development] "
                + "[--checkpoint-every ROUNDS]")
        exit(0)
    default:
        fail("unknown argument \(argument)", status: 2)
    }
}
guard let connect else { fail("--connect is required", status: 2) }

// In local mode, die with the server: a parent that went away cannot collect results anyway.
// `_exit`, not `exit`: exit's handlers (OpenSSL's cleanup among them) would free what the session
// thread may be using that moment, and it then crashed (a NULL lock in OpenSSL, seen in the kernel
// log after reviews killed servers mid-job).
if attestorKind == "development" {
    let parent = getppid()
    Thread.detachNewThread {
        while getppid() == parent { sleep(1) }
        _exit(3)
    }
}

let descriptor: Int32
do {
    descriptor = try ChannelSocket.connect(connect, deadline: .now + .seconds(30))
} catch {
    fail("cannot reach the server at \(connect): \(error.message)", status: 2)
}
let connection = ChannelConnection(fileDescriptor: descriptor)
let attestor: any Attestor
if attestorKind == "development" {
    attestor = ChannelAttestor(connection: connection)
} else {
    do {
        attestor = try NSMDevice.open()
    } catch {
        let failure = ChannelFailure(code: "enclave.attestation", message: "the NSM is unavailable: \(error.message)")
        try? connection.send(.error(failure), timeout: .seconds(5))
        fail(failure.message, status: 1)
    }
}
let session = EnclaveSession(
    connection: connection, attestor: attestor, isDevelopment: attestorKind == "development",
    workload: TrainingWorkload(checkpointEvery: checkpointEvery))
do {
    // On a thread of its own: the session blocks on the channel, the digest and the parser.
    try await SessionThread.run(name: "enclave-session") { () async throws(EnclaveError) in try await session.run() }
    connection.close()
    exit(0)
} catch {
    connection.close()
    fail(error.description, status: 1)
}
