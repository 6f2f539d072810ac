import ArgumentParser

struct AttestationCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attestation", abstract: "Inspect and verify Nitro attestation documents.")

    func run() async throws { throw ValidationError("'cleanroom attestation' is not built yet (issue #5).") }
}

struct EnclaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enclave", abstract: "Measure enclave executables.")

    func run() async throws { throw ValidationError("'cleanroom enclave' is not built yet (issue #5).") }
}
