import Crypto
import Dispatch
import Envelope
import Foundation
import Training

extension TrainingWorkload {
    /// How much plaintext a streamed output gathers before handing it to the encryptor: a few
    /// 64 KiB frames, so memory stays constant whatever the output's size.
    static let plaintextBatchBytes = 256 * 1024

    /// The outputs the policy grants, in policy order; each is built, encrypted and streamed only
    /// when the session delivers it (`scores:own` row by row, never whole).
    func outputProducers(
        result: TrainingResult, combined: Table, rowCounts: [Int], admission: Admission
    ) throws(EnclaveError) -> [OutputProducer] {
        let policy = admission.policy
        var producers: [OutputProducer] = []
        for grant in policy.outputs {
            guard let pem = policy.party(grant.recipient)?.resultKey else {
                throw EnclaveError(.output, "the policy names no result key for \(grant.recipient)")
            }
            let recipient = grant.recipient
            for artifact in grant.artifacts {
                let write: (inout OutputEncryptor) throws(EnclaveError) -> Void
                switch artifact {
                case "model":
                    write = { (out) throws(EnclaveError) in try out.write(Array(result.modelJSON)) }
                case "metrics":
                    write = { (out) throws(EnclaveError) in
                        try out.write(
                            try Self.metricsJSON(
                                result, rows: combined.rowCount,
                                perParty: Self.perPartyMetrics(result, admission: admission, rowCounts: rowCounts)))
                    }
                case "scores:own":
                    write = { (out) throws(EnclaveError) in
                        try Self.writeOwnScores(
                            recipient: recipient, admission: admission, rowCounts: rowCounts, combined: combined,
                            scores: result.scores, batchBytes: Self.plaintextBatchBytes
                        ) { (batch) throws(EnclaveError) in try out.write(batch) }
                    }
                default: throw EnclaveError(.output, "unknown artifact \(artifact)")
                }
                producers.append(
                    OutputProducer(name: artifact, recipient: recipient) { (sink) throws(EnclaveError) in
                        var out = try await OutputEncryptor(to: pem, recipient: recipient, artifact: artifact, sink: sink)
                        try write(&out)
                        try out.finish()
                    })
            }
        }
        return producers
    }

    /// `id,score` for the rows of the joined table that came from the recipient's own data: for an
    /// inner join, the join key of every joined row the recipient holds (all of them); for a
    /// union, the recipient's own rows, numbered from 1 in its file. In batches of about
    /// `batchBytes` (whole rows), each passed to `emit` in order. The rows of an inner join are
    /// formatted ahead on a background thread, two batches at a time, while `emit` runs; memory
    /// stays at a few batches.
    static func writeOwnScores(
        recipient: String, admission: Admission, rowCounts: [Int], combined: Table, scores: [Double], batchBytes: Int,
        emit: ([UInt8]) throws(EnclaveError) -> Void
    ) throws(EnclaveError) {
        let header = Array("id,score\n".utf8)
        let policy = admission.policy
        if policy.join.type == .inner, let key = policy.join.key, admission.datasets.count > 1 {
            guard admission.datasets.contains(where: { $0.owner == recipient }) else { return try emit(header) }
            guard let column = try? combined.column(named: key), column.type != .float
            else { throw EnclaveError(.output, "the join key column \(key) is not an id, categorical or integer column") }
            try emit(header)
            guard column.count > 0 else { return }
            let rows = ScoreRows(column: column, scores: scores)
            // Rows per batch from the first row's length (ids and scores are about as long throughout).
            var first: [UInt8] = []
            rows.append(0, to: &first)
            let rowBytes = first.count + 8
            let rowsPerBatch = max(1, batchBytes / max(first.count, 16))
            let batchCount = (column.count + rowsPerBatch - 1) / rowsPerBatch
            // Batches are formatted ahead, two at a time on a background thread, while this thread
            // encrypts and sends the ones before: at most four batches wait, so memory stays bounded.
            let queue = BatchQueue(capacity: 4)
            let shared = SendableBox(rows)
            let formatter = Thread {
                Thread.current.name = "scores-format"  // named from inside: on Linux a name set before start is lost
                let rows = shared.value
                var batch = 0
                while batch < batchCount, !queue.isCancelled {
                    let pair = batch..<min(batch + 2, batchCount)
                    var formatted = [[UInt8]](repeating: [], count: pair.count)
                    formatted.withUnsafeMutableBufferPointer { buffer in
                        let out = SendableBox(buffer)
                        DispatchQueue.concurrentPerform(iterations: pair.count) { k in
                            let range = (pair.lowerBound + k) * rowsPerBatch..<min(column.count, (pair.lowerBound + k + 1) * rowsPerBatch)
                            var text: [UInt8] = []
                            text.reserveCapacity(range.count * rowBytes)
                            for row in range { rows.append(row, to: &text) }
                            out.value[k] = text
                        }
                    }
                    for text in formatted where !queue.put(text) { break }
                    batch = pair.upperBound
                }
                queue.finish()
            }
            formatter.start()
            defer { queue.cancelAndWait() }
            while let batch = queue.take() {
                if !batch.isEmpty { try emit(batch) }
            }
        } else {
            var out = header
            out.reserveCapacity(min(batchBytes, 1 << 20) + 256)
            var offset = 0
            for (index, dataset) in admission.datasets.enumerated() {
                let count = rowCounts[index]
                if dataset.owner == recipient {
                    for number in 0..<count {
                        out += Array("\(number + 1),\(scores[offset + number])\n".utf8)
                        if out.count >= batchBytes {
                            try emit(out)
                            out.removeAll(keepingCapacity: true)
                        }
                    }
                }
                offset += count
            }
            if !out.isEmpty { try emit(out) }
        }
    }

    /// Formats `id,score\n` for joined rows (nothing for a row whose key is missing); `.id`
    /// columns' key bytes are copied as they are stored, other keys go through `keyString`.
    struct ScoreRows {
        let column: Column
        let keys: KeyColumn?
        let scores: [Double]

        init(column: Column, scores: [Double]) {
            self.column = column
            self.scores = scores
            if case .keys(let keys) = column.storage { self.keys = keys } else { keys = nil }
        }

        func append(_ row: Int, to out: inout [UInt8]) {
            if let keys {
                guard !keys.isMissing(row) else { return }
                keys.withKey(row) { raw in
                    if raw.contains(where: TrainingWorkload.needsQuoting) {
                        out.append(contentsOf: TrainingWorkload.csvField(String(decoding: raw, as: UTF8.self)).utf8)
                    } else {
                        out.append(contentsOf: raw)
                    }
                }
            } else {
                guard let id = column.keyString(row) else { return }
                out.append(contentsOf: TrainingWorkload.csvField(id).utf8)
            }
            out.append(UInt8(ascii: ","))
            // Predictions are single precision (as XGBoost's): the shortest text that reads back as
            // that Float is exact, half as long as the Double's, and needs no heap string.
            let score = scores[row], single = Float(score)
            out.append(contentsOf: Double(single) == score ? single.description.utf8 : score.description.utf8)
            out.append(UInt8(ascii: "\n"))
        }
    }

    /// Bytes that make a CSV field need quotes: comma, quote, LF, CR.
    static func needsQuoting(_ byte: UInt8) -> Bool { byte == 0x2C || byte == 0x22 || byte == 0x0A || byte == 0x0D }

    static func csvField(_ text: String) -> String {
        guard text.utf8.contains(where: needsQuoting) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// One output being encrypted into a `CiphertextSink`: an Encryption SDK message (suite 0x0478,
/// 64 KiB frames) to the recipient's result key with a raw RSA keyring (OAEP-SHA256); the
/// header and each whole frame go to the sink as soon as they exist.
struct OutputEncryptor {
    let encryptor: MessageEncryptor
    let sink: any CiphertextSink
    let recipient: String
    let artifact: String

    init(to pem: String, recipient: String, artifact: String, sink: any CiphertextSink) async throws(EnclaveError) {
        do {
            let key = try RSA.PublicKey(pemRepresentation: pem)
            let keyring = try RawRSAKeyring(
                keyNamespace: ResultKeyring.keyNamespace, keyName: recipient, publicKey: key,
                encryptionPadding: .oaepSHA256)
            let context = try EncryptionContext([("cleanroom:output", artifact), ("cleanroom:recipient", recipient)])
            encryptor = try await MessageEncryptor(keyring: keyring, encryptionContext: context)
        } catch {
            throw EnclaveError(.output, "could not encrypt \(artifact) for \(recipient)")
        }
        self.sink = sink
        self.recipient = recipient
        self.artifact = artifact
    }

    /// Encrypts more plaintext; whatever ciphertext is ready goes to the sink.
    mutating func write(_ plaintext: [UInt8]) throws(EnclaveError) {
        let ciphertext: [UInt8]
        do {
            ciphertext = try encryptor.update(plaintext)
        } catch {
            throw EnclaveError(.output, "could not encrypt \(artifact) for \(recipient)")
        }
        try sink.write(ciphertext)
    }

    /// The final frame.
    mutating func finish() throws(EnclaveError) {
        let ciphertext: [UInt8]
        do {
            ciphertext = try encryptor.finish()
        } catch {
            throw EnclaveError(.output, "could not encrypt \(artifact) for \(recipient)")
        }
        try sink.write(ciphertext)
    }
}

/// Formatted batches in order, from one producer thread to one consumer: `put` waits while
/// `capacity` batches are waiting, `take` while none is; cancelling releases both.
private final class BatchQueue: @unchecked Sendable {  // state guarded by `condition`
    private let condition = NSCondition()
    private let capacity: Int
    private var batches: [[UInt8]] = []
    private var finished = false
    private var cancelled = false

    init(capacity: Int) { self.capacity = capacity }

    var isCancelled: Bool { condition.withLock { cancelled } }

    /// Adds a batch; false when the consumer has gone.
    func put(_ batch: [UInt8]) -> Bool {
        condition.withLock {
            while batches.count >= capacity && !cancelled { condition.wait() }
            guard !cancelled else { return false }
            batches.append(batch)
            condition.broadcast()
            return true
        }
    }

    /// The producer is done.
    func finish() {
        condition.withLock {
            finished = true
            condition.broadcast()
        }
    }

    /// The next batch, or nil when the producer finished and none is left.
    func take() -> [UInt8]? {
        condition.withLock {
            while batches.isEmpty && !finished { condition.wait() }
            guard !batches.isEmpty else { return nil }
            condition.broadcast()
            return batches.removeFirst()
        }
    }

    /// Stops the producer and waits until it has finished (it then no longer reads the rows).
    func cancelAndWait() {
        condition.withLock {
            cancelled = true
            condition.broadcast()
            while !finished { condition.wait() }
        }
    }
}

/// Carries values into `concurrentPerform`; the parts write disjoint elements.
private struct SendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
