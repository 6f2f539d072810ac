import ArgumentParser

struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Train a model locally on your own plaintext data (a dry run of the enclave's training).")

    func run() async throws {
        throw ValidationError("'cleanroom train' is not built yet (issue #7).")
    }
}
