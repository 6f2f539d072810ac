import Crypto
import Envelope
import Foundation
import Testing
import Training
@testable import Enclave

/// Records every write a producer makes, as the session's channel stream would receive them.
final class RecordingCiphertextSink: CiphertextSink {
    var writes: [[UInt8]] = []
    func write(_ ciphertext: UnsafeRawBufferPointer) throws(EnclaveError) { writes.append(Array(ciphertext)) }
}

/// Outputs leave the enclave as streams: bounded pieces, sent as they exist, hashed on the way.
@Suite struct OutputStreamingTests {
    let fixture = try! SessionFixture.shared.get()

    @Test func outputStreamSendsEachChunkAsSoonAsItIsFullAndHashesExactlyWhatItSent() throws {
        let (a, b) = try ChannelSocket.pair()
        let enclaveSide = ChannelConnection(fileDescriptor: a), server = ChannelConnection(fileDescriptor: b)
        let chunkSize = 64 * 1024
        let stream = ChannelOutputStream(connection: enclaveSide, chunkSize: chunkSize, timeout: .seconds(10), name: "scores:own")
        let bytes = (0..<(5 * chunkSize + 1234)).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        var received: [[UInt8]] = []
        var offset = 0
        // Writes of odd sizes; a chunk is on the wire as soon as it is full, before the output ends.
        while offset < bytes.count {
            let end = min(bytes.count, offset + 10_007)
            try stream.write(Array(bytes[offset..<end]))
            offset = end
            while let message = try server.receiveIfAvailable() {
                guard case .outputChunk(let chunk) = message else { Issue.record("unexpected \(message.type)"); return }
                received.append(chunk)
            }
            #expect(received.count == offset / chunkSize || received.count == offset / chunkSize - 1,
                    "at most one full chunk may still be in flight")
        }
        // A write larger than a chunk goes out in whole chunks without waiting for `finish`.
        try stream.write([UInt8](repeating: 7, count: 3 * chunkSize))
        let (digest, count) = try stream.finish()
        enclaveSide.close()
        while true {
            guard let message = try? server.receive(timeout: .seconds(5)), case .outputChunk(let chunk) = message else { break }
            received.append(chunk)
        }
        let all = bytes + [UInt8](repeating: 7, count: 3 * chunkSize)
        #expect(received.allSatisfy { $0.count <= chunkSize })
        #expect(received.count == (all.count + chunkSize - 1) / chunkSize)
        #expect(received.flatMap { $0 } == all)
        #expect(digest == SHA256.hash(all))
        #expect(count == Int64(all.count))
    }

    /// A joined table of `rows` rows keyed by 64-hex ids, as the demo's `customer_hash`.
    func scoresFixture(rows: Int) throws -> (Admission, Table, [Double]) {
        let policy = try fixture.policy()
        let admission = try fixture.admission(policy)
        var csv = "id,y,x\n"
        for row in 0..<rows { csv += Hex.encode(SHA256.hash(Array("\(row)".utf8))) + ",\(row % 2),\(row)\n" }
        let combined = try CSVTableReader.read(Array(csv.utf8), typeOverrides: ["id": .id])
        let scores = (0..<rows).map { 1 / (1 + exp(-Double($0 % 977) / 97)) }
        return (admission, combined, scores)
    }

    @Test func streamedScoresAreTheSameBytesInBoundedBatches() throws {
        let (admission, combined, scores) = try scoresFixture(rows: 20_000)
        let whole = try TrainingWorkload.ownScores(
            recipient: "alpha", admission: admission, rowCounts: [], combined: combined, scores: scores)
        var batches: [[UInt8]] = []
        try TrainingWorkload.writeOwnScores(
            recipient: "alpha", admission: admission, rowCounts: [], combined: combined, scores: scores, batchBytes: 64 * 1024
        ) { (batch) throws(EnclaveError) in batches.append(batch) }
        #expect(batches.count > 20)
        #expect(batches.allSatisfy { $0.count < 2 * 64 * 1024 }, "a batch is about the limit (rows estimated from the first)")
        #expect(batches.flatMap { $0 } == whole)
        // The same bytes as formatting every row as text (what recipients have always received).
        var expected = "id,score\n"
        for row in 0..<20_000 { expected += Hex.encode(SHA256.hash(Array("\(row)".utf8))) + ",\(scores[row])\n" }
        #expect(whole == Array(expected.utf8))
    }

    /// The formatter ahead is blocked on a full queue when the write fails; it must be released
    /// (or this test never ends) and the failure reported.
    @Test func aFailedWriteReleasesTheFormatterAheadAndIsReported() throws {
        let (admission, combined, scores) = try scoresFixture(rows: 20_000)
        var written = 0
        #expect(throws: EnclaveError.self) {
            try TrainingWorkload.writeOwnScores(
                recipient: "alpha", admission: admission, rowCounts: [], combined: combined, scores: scores, batchBytes: 16 * 1024
            ) { (_) throws(EnclaveError) in
                written += 1
                if written == 3 { throw EnclaveError(.output, "the channel closed") }
            }
        }
        #expect(written == 3)
    }

    @Test func idsThatNeedQuotesAreQuotedAndMissingIdsSkipped() throws {
        let (admission, _, _) = try scoresFixture(rows: 1)
        let combined = try CSVTableReader.read(
            Array("id,y,x\n\"a,b\",1,0.5\n,0,1\n\"say \"\"hi\"\"\",1,2\nplain,0,3\n".utf8), typeOverrides: ["id": .id])
        let csv = try TrainingWorkload.ownScores(
            recipient: "alpha", admission: admission, rowCounts: [], combined: combined, scores: [0.5, 0.25, 0.125, 1])
        #expect(String(decoding: csv, as: UTF8.self) == "id,score\n\"a,b\",0.5\n\"say \"\"hi\"\"\",0.125\nplain,1.0\n")
    }

    /// Models predict in single precision: such a score is written as the shortest text of its
    /// Float ("0.1", not the Double's "0.10000000149011612"), which reads back as the same Float; a
    /// score that is not a Float keeps its Double text, so nothing is ever rounded.
    @Test func singlePrecisionScoresAreWrittenAsTheirShortestText() throws {
        let (admission, _, _) = try scoresFixture(rows: 1)
        let combined = try CSVTableReader.read(Array("id,y,x\na,1,0\nb,0,1\nc,1,2\nd,0,3\n".utf8), typeOverrides: ["id": .id])
        let scores = [Double(Float(0.1)), Double(Float(1) / 3), 0.1, 1.0 / 3]
        let csv = try TrainingWorkload.ownScores(recipient: "alpha", admission: admission, rowCounts: [], combined: combined, scores: scores)
        #expect(String(decoding: csv, as: UTF8.self) == "id,score\na,0.1\nb,0.33333334\nc,0.1\nd,0.3333333333333333\n")
        #expect(Float("0.33333334") == Float(1) / 3)
    }

    @Test func scoresEncryptedAsAStreamDecryptForTheRecipientInBoundedWrites() async throws {
        let (admission, combined, scores) = try scoresFixture(rows: 40_000)
        let sink = RecordingCiphertextSink()
        var out = try await OutputEncryptor(
            to: try fixture.alpha.resultKey.publicKey.pemRepresentation, recipient: "alpha", artifact: "scores:own", sink: sink)
        try TrainingWorkload.writeOwnScores(
            recipient: "alpha", admission: admission, rowCounts: [], combined: combined, scores: scores,
            batchBytes: TrainingWorkload.plaintextBatchBytes
        ) { (batch) throws(EnclaveError) in try out.write(batch) }
        try out.finish()

        let ciphertext = sink.writes.flatMap { $0 }
        #expect(ciphertext.count > 3 * 1024 * 1024)
        // Memory for the output is a batch and its frames, never the message: the largest write
        // is a batch's frames (plus the header on the first), far below the whole.
        let largest = sink.writes.map(\.count).max() ?? 0
        #expect(largest < TrainingWorkload.plaintextBatchBytes + 2 * MessageEncryptor.defaultFrameLength)
        #expect(sink.writes.count > 10)
        let keyring = try RawRSAKeyring(
            keyNamespace: ResultKeyring.keyNamespace, keyName: "alpha", privateKey: fixture.alpha.resultKey)
        let (plaintext, message) = try await MessageDecryptor.decrypt(ciphertext, keyring: keyring)
        #expect(plaintext == (try TrainingWorkload.ownScores(
            recipient: "alpha", admission: admission, rowCounts: [], combined: combined, scores: scores)))
        #expect(message.header.encryptionContext.pairs.contains { $0.key == "cleanroom:output" && $0.value == "scores:own" })
    }
}

extension TrainingWorkload {
    /// `writeOwnScores` whole, in memory.
    static func ownScores(
        recipient: String, admission: Admission, rowCounts: [Int], combined: Table, scores: [Double]
    ) throws(EnclaveError) -> [UInt8] {
        var out: [UInt8] = []
        try writeOwnScores(
            recipient: recipient, admission: admission, rowCounts: rowCounts, combined: combined, scores: scores,
            batchBytes: Int.max
        ) { (batch) throws(EnclaveError) in out += batch }
        return out
    }
}
