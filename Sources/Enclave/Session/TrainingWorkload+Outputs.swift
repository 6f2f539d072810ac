import Crypto
import Envelope
import Training

extension TrainingWorkload {
    /// How much plaintext a streamed output gathers before handing it to the encryptor: a few
    /// 64 KiB frames, so memory stays constant whatever the output's size.
    static let plaintextBatchBytes = 256 * 1024

    /// The outputs the policy grants, in policy order; each is built, encrypted and streamed only
    /// when the session delivers it (`scores:own` row by row, never whole).
    func outputProducers(
        result: TrainingResult, combined: Table, inputs: [Table], admission: Admission
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
                                perParty: Self.perPartyMetrics(result, admission: admission, inputs: inputs)))
                    }
                case "scores:own":
                    write = { (out) throws(EnclaveError) in
                        try Self.writeOwnScores(
                            recipient: recipient, admission: admission, inputs: inputs, combined: combined,
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
    /// union, the recipient's own rows, numbered from 1 in its file. Whole, in memory (tests).
    static func ownScores(
        recipient: String, admission: Admission, inputs: [Table], combined: Table, scores: [Double]
    ) throws(EnclaveError) -> [UInt8] {
        var out: [UInt8] = []
        try writeOwnScores(
            recipient: recipient, admission: admission, inputs: inputs, combined: combined, scores: scores,
            batchBytes: Int.max
        ) { (batch) throws(EnclaveError) in out += batch }
        return out
    }

    /// `ownScores` in batches of about `batchBytes`: each batch (whole rows) is passed to `emit`
    /// and the buffer reused.
    static func writeOwnScores(
        recipient: String, admission: Admission, inputs: [Table], combined: Table, scores: [Double], batchBytes: Int,
        emit: ([UInt8]) throws(EnclaveError) -> Void
    ) throws(EnclaveError) {
        var out = Array("id,score\n".utf8)
        out.reserveCapacity(min(batchBytes, 1 << 20) + 256)
        func row() throws(EnclaveError) {
            if out.count >= batchBytes {
                try emit(out)
                out.removeAll(keepingCapacity: true)
            }
        }
        let policy = admission.policy
        if policy.join.type == .inner, let key = policy.join.key, admission.datasets.count > 1 {
            guard admission.datasets.contains(where: { $0.owner == recipient }) else { return try emit(out) }
            guard let column = try? combined.column(named: key), column.type != .float
            else { throw EnclaveError(.output, "the join key column \(key) is not an id, categorical or integer column") }
            for index in 0..<column.count {
                guard let id = column.keyString(index) else { continue }
                out.append(contentsOf: csvField(id).utf8)
                out.append(UInt8(ascii: ","))
                out.append(contentsOf: scores[index].description.utf8)
                out.append(UInt8(ascii: "\n"))
                try row()
            }
        } else {
            var offset = 0
            for (index, dataset) in admission.datasets.enumerated() {
                let count = inputs[index].rowCount
                if dataset.owner == recipient {
                    for number in 0..<count {
                        out += Array("\(number + 1),\(scores[offset + number])\n".utf8)
                        try row()
                    }
                }
                offset += count
            }
        }
        if !out.isEmpty { try emit(out) }
    }

    static func csvField(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0x2C || $0 == 0x22 || $0 == 0x0A || $0 == 0x0D }) else { return text }
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
