import Foundation
import Testing

@testable import Training

/// Collects checkpoints handed out by a job.
final class CheckpointBox: @unchecked Sendable {
    private let lock = NSLock()
    private var saved: [[UInt8]] = []
    func append(_ bytes: [UInt8]) { lock.withLock { saved.append(bytes) } }
    var last: [UInt8]? { lock.withLock { saved.last } }
    var count: Int { lock.withLock { saved.count } }
}

@Suite struct CheckpointTests {
    /// Stops the job after `rounds` rounds and returns the checkpoint it handed out.
    func interrupted(_ job: TrainingJob, _ table: Table, after rounds: Int) throws -> [UInt8] {
        let box = CheckpointBox()
        let counter = CheckpointBox()
        let control = TrainingControl(
            onCheckpoint: { box.append($0) },
            shouldStop: {
                counter.append([])
                return counter.count >= rounds
            })
        #expect(throws: TrainingError(.interrupted, "stopped after \(job.spec.algorithm == .gbdt ? "round" : "iteration") \(rounds)")) {
            try job.run(tables: [table], control: control)
        }
        return try #require(box.last)
    }

    @Test(arguments: [Algorithm.gbdt, .logistic])
    func resumedRunGivesTheSameModelAsAnUninterruptedOne(algorithm: Algorithm) throws {
        let table = try TrainingFixtures.synthetic(rows: 1500)
        let parameters = algorithm == .gbdt
            ? ["num_round": "8", "max_depth": "3", "subsample": "0.7", "colsample_bytree": "0.6"]
            : ["tol": "1e-8"]
        let job = try TrainingJob(spec: TrainingSpec(label: "label", algorithm: algorithm, parameters: parameters, seed: 11))
        let uninterrupted = try job.run(tables: [table])
        let checkpoint = try interrupted(job, table, after: 3)
        let resumed = try job.run(tables: [table], resumeFrom: checkpoint)
        #expect(resumed.modelJSON == uninterrupted.modelJSON)
        #expect(resumed.scores == uninterrupted.scores)
        #expect(resumed.metrics.iterations == uninterrupted.metrics.iterations)
    }

    @Test func checkpointOfAnotherJobOrDamagedBytesIsRejected() throws {
        let table = try TrainingFixtures.synthetic(rows: 600)
        let job = try TrainingJob(spec: TrainingSpec(label: "label", algorithm: .gbdt, parameters: ["num_round": "4"]))
        let checkpoint = try interrupted(job, table, after: 2)
        let other = try TrainingJob(spec: TrainingSpec(label: "label", algorithm: .gbdt, parameters: ["num_round": "4", "eta": "0.1"]))
        #expect {
            try other.run(tables: [table], resumeFrom: checkpoint)
        } throws: { ($0 as? TrainingError)?.code == .invalidCheckpoint }
        for cut in [0, 4, 13, checkpoint.count - 1] {
            #expect {
                try job.run(tables: [table], resumeFrom: Array(checkpoint.prefix(cut)))
            } throws: { ($0 as? TrainingError)?.code == .invalidCheckpoint }
        }
        var flipped = checkpoint
        flipped[5] ^= 0xFF
        #expect(throws: TrainingError.self) { try job.run(tables: [table], resumeFrom: flipped) }
    }
}

