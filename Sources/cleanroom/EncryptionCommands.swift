import ArgumentParser

struct EncryptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encrypt", abstract: "Encrypt a file as an AWS Encryption SDK message.")

    func run() async throws { throw ValidationError("'cleanroom encrypt' is not built yet (issue #3).") }
}

struct DecryptCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decrypt", abstract: "Decrypt an AWS Encryption SDK message.")

    func run() async throws { throw ValidationError("'cleanroom decrypt' is not built yet (issue #3).") }
}
