import ArgumentParser
import Foundation
import Training

/// `cleanroom train`: a local dry run of the enclave's training on a party's own plaintext data.
/// It builds the same `TrainingJob` the enclave builds and runs it the same way.
struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model locally on your own plaintext data (a dry run of the enclave's training).",
        discussion: """
            Parameters use XGBoost's names. gbdt: num_round, max_depth, eta, lambda, gamma, min_child_weight, \
            subsample, colsample_bytree, max_bin, base_score, objective (binary:logistic | reg:squarederror). \
            logistic and linear: lambda (scikit-learn's 1/C), max_iter, tol. A policy's names num_rounds, \
            learning_rate and iterations work too. \
            The model is written in XGBoost's JSON format (load it with xgboost.Booster(model_file=...)).
            """)

    @Option(name: .customLong("data"), help: "A CSV file with a header row (repeat for several inputs).")
    var data: [String] = []

    @Option(help: "How several inputs are combined: 'union' or 'inner:ID_COLUMN'.")
    var join: String?

    @Option(help: "The label column.")
    var label: String

    @Option(help: "Comma-separated feature columns (default: every other non-id column).")
    var features: String?

    @Option(help: "logistic | linear | gbdt")
    var algorithm: String

    @Option(name: .customLong("param"), help: "A training parameter KEY=VALUE (repeatable).")
    var params: [String] = []

    @Option(help: "Share of rows held out for validation.")
    var validationFraction: Double = 0.2

    @Option(help: "Seed of the train/validation split and of row and column sampling.")
    var seed: UInt64 = 0

    @Option(help: "Where to write the model (XGBoost JSON).")
    var modelOut: String

    @Option(help: "Where to write the metrics (JSON).")
    var metricsOut: String?

    @Option(help: "Where to write each row's score (CSV: row,validation,score).")
    var scoresOut: String?

    func run() async throws {
        guard !data.isEmpty else { throw ValidationError("give at least one --data FILE") }
        guard let algorithm = Algorithm(rawValue: algorithm) else {
            throw ValidationError("--algorithm must be logistic, linear or gbdt")
        }
        var parameters: [String: String] = [:]
        for param in params {
            let parts = param.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--param must be KEY=VALUE") }
            parameters[parts[0]] = parts[1]
        }
        do {
            let spec = TrainingSpec(
                label: label,
                features: features.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } },
                algorithm: algorithm, parameters: parameters, join: try join.map { try JoinSpec(parsing: $0) },
                validationFraction: validationFraction, seed: seed)
            let job = try TrainingJob(spec: spec)
            var tables: [Table] = []
            for (index, path) in data.enumerated() {
                tables.append(try Self.readTable(path, reader: job.reader(forInput: index)))
            }
            let result = try job.run(tables: tables, progress: Self.printProgress)
            try result.modelJSON.write(to: URL(fileURLWithPath: modelOut))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            if let metricsOut { try encoder.encode(result.metrics).write(to: URL(fileURLWithPath: metricsOut)) }
            if let scoresOut { try Self.writeScores(result, to: scoresOut) }
            print(Self.summary(result.metrics))
        } catch let error as TrainingError {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// Streams a file through the job's CSV reader in 1 MiB chunks.
    static func readTable(_ path: String, reader: CSVTableReader) throws -> Table {
        var reader = reader
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ValidationError("cannot open \(path)")
        }
        defer { try? handle.close() }
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            try reader.append(chunk)
        }
        return try reader.finish()
    }

    static func writeScores(_ result: TrainingResult, to path: String) throws {
        var text = "row,validation,score\n"
        text.reserveCapacity(result.scores.count * 24)
        for (row, score) in result.scores.enumerated() {
            text += "\(row),\(result.isValidation[row] ? 1 : 0),\(score)\n"
        }
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    @Sendable static func printProgress(_ event: TrainingProgress) {
        var line: String
        if event.phase == .training {
            line = "round \(event.iteration)/\(event.totalIterations)"
            if let loss = event.loss { line += String(format: "  train-loss %.6f", loss) }
            if let loss = event.validationLoss { line += String(format: "  validation-loss %.6f", loss) }
        } else {
            line = event.phase.rawValue
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    static func summary(_ metrics: TrainingMetrics) -> String {
        func describe(_ name: String, _ set: MetricSet) -> String {
            var parts = ["\(name): \(set.rows) rows"]
            if let auc = set.auc { parts.append(String(format: "auc %.6f", auc)) }
            if let value = set.logLoss { parts.append(String(format: "logloss %.6f", value)) }
            if let value = set.accuracy { parts.append(String(format: "accuracy %.6f", value)) }
            if let value = set.rmse { parts.append(String(format: "rmse %.6f", value)) }
            return parts.joined(separator: "  ")
        }
        var lines = ["\(metrics.algorithm) (\(metrics.objective)), \(metrics.iterations) iterations, \(metrics.features.count) features"]
        lines.append(describe("train", metrics.train))
        if let validation = metrics.validation { lines.append(describe("validation", validation)) }
        let seconds = ["prepare", "fit", "evaluate"].compactMap { key in
            metrics.seconds[key].map { String(format: "\(key) %.3f s", $0) }
        }
        lines.append("time: " + seconds.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }
}
