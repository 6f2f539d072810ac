import Foundation
import TestSupport
import Testing
@testable import Enclave

@Suite struct ChannelConnectionTests {
    @Test func messagesCrossASocketPairInOrder() throws {
        let (a, b) = try ChannelSocket.pair()
        let left = ChannelConnection(fileDescriptor: a), right = ChannelConnection(fileDescriptor: b)
        let reader = Thread.detachNewThreadWithResult {
            var received: [ChannelMessage] = []
            for _ in sampleMessages { received.append(try right.receive(timeout: .seconds(10))) }
            return received
        }
        for message in sampleMessages { try left.send(message, timeout: .seconds(10)) }
        #expect(try reader.value() == sampleMessages)
    }

    @Test func largeChunksStreamWithBackpressure() throws {
        let (a, b) = try ChannelSocket.pair()
        let left = ChannelConnection(fileDescriptor: a), right = ChannelConnection(fileDescriptor: b)
        let chunk = (0..<(1024 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let reader = Thread.detachNewThreadWithResult {
            var total = 0
            for _ in 0..<8 {
                guard case .datasetChunk(let bytes) = try right.receive(timeout: .seconds(20)), bytes == chunk else {
                    throw ChannelError(.unexpectedMessage, "wrong chunk")
                }
                total += bytes.count
            }
            return total
        }
        for _ in 0..<8 { try left.send(.datasetChunk(chunk), timeout: .seconds(20)) }
        #expect(try reader.value() == 8 * 1024 * 1024)
    }

    @Test func receiveTimesOutWhenThePeerIsSilent() throws {
        let (a, b) = try ChannelSocket.pair()
        let left = ChannelConnection(fileDescriptor: a)
        defer { close(b) }
        let start = ContinuousClock.now
        #expect(throws: ChannelError.self) { try left.receive(timeout: .milliseconds(200)) }
        do { _ = try left.receive(timeout: .milliseconds(100)) } catch { #expect(error.code == .timeout) }
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func sendTimesOutWhenThePeerDoesNotRead() throws {
        let (a, b) = try ChannelSocket.pair()
        let left = ChannelConnection(fileDescriptor: a)
        defer { close(b) }
        let chunk = [UInt8](repeating: 1, count: 1024 * 1024)
        var failure: ChannelError?
        do {
            for _ in 0..<64 { try left.send(.datasetChunk(chunk), timeout: .milliseconds(300)) }
        } catch { failure = error }
        #expect(failure?.code == .timeout)
    }

    @Test func closedPeerIsReportedAsClosed() throws {
        let (a, b) = try ChannelSocket.pair()
        let left = ChannelConnection(fileDescriptor: a)
        close(b)
        do {
            _ = try left.receive(timeout: .seconds(5))
            Issue.record("receive should fail")
        } catch { #expect(error.code == .closed) }
        do {
            try left.send(.cancel(reason: "x"), timeout: .seconds(5))
            Issue.record("send should fail")
        } catch { #expect(error.code == .closed) }
    }

    @Test func peerDyingInsideAFrameIsTruncation() throws {
        let (a, b) = try ChannelSocket.pair()
        let left = ChannelConnection(fileDescriptor: a)
        let bytes = ChannelMessage.datasetChunk([1, 2, 3, 4]).encoded()
        _ = bytes.withUnsafeBytes { write(b, $0.baseAddress!, 6) }
        close(b)
        do {
            _ = try left.receive(timeout: .seconds(5))
            Issue.record("receive should fail")
        } catch { #expect(error.code == .truncated) }
    }

    @Test func largeFrameWhoseSenderDiesMidPayloadIsTruncationAndTheStreamStaysFailed() throws {
        // A frame large enough to be read straight into its payload: header and 300 KiB of 1 MiB.
        let (a, b) = try ChannelSocket.pair()
        let left = ChannelConnection(fileDescriptor: a)
        let bytes = ChannelMessage.outputChunk([UInt8](repeating: 5, count: 1 << 20)).encoded()
        _ = fcntl(b, F_SETFL, fcntl(b, F_GETFL) & ~O_NONBLOCK)  // the raw writer blocks until all is taken
        let writer = Thread.detachNewThreadWithResult { () -> Int in
            let written = bytes.withUnsafeBytes { Glibc.send(b, $0.baseAddress!, 300 * 1024, Int32(MSG_NOSIGNAL)) }
            close(b)
            return written
        }
        do {
            _ = try left.receive(timeout: .seconds(5))
            Issue.record("receive should fail")
        } catch { #expect(error.code == .truncated) }
        #expect(try writer.value() == 300 * 1024)
        do {
            _ = try left.receive(timeout: .seconds(1))
            Issue.record("a stream that lost part of a frame must not resume")
        } catch { #expect(error.code == .truncated) }
    }

    @Test func timeoutInsideALargeFrameFailsEveryLaterReceive() throws {
        let (a, b) = try ChannelSocket.pair()
        let left = ChannelConnection(fileDescriptor: a), right = ChannelConnection(fileDescriptor: b)
        let bytes = ChannelMessage.datasetChunk([UInt8](repeating: 7, count: 512 * 1024)).encoded()
        _ = fcntl(b, F_SETFL, fcntl(b, F_GETFL) & ~O_NONBLOCK)
        _ = bytes.withUnsafeBytes { Glibc.send(b, $0.baseAddress!, 100 * 1024, Int32(MSG_NOSIGNAL)) }
        do {
            _ = try left.receive(timeout: .milliseconds(200))
            Issue.record("receive should time out")
        } catch { #expect(error.code == .timeout) }
        // The rest arrives, then a whole message: the half-read frame is gone, so nothing is trusted.
        _ = bytes.withUnsafeBytes { Glibc.send(b, $0.baseAddress! + 100 * 1024, bytes.count - 100 * 1024, Int32(MSG_NOSIGNAL)) }
        try right.send(.datasetEnd(datasetID: "d"), timeout: .seconds(5))
        do {
            _ = try left.receive(timeout: .seconds(1))
            Issue.record("a stream that lost part of a frame must not resume")
        } catch { #expect(error.code == .timeout) }
    }

    @Test func dataFramesAreSentWithoutCopiesAndCheckedFirst() throws {
        let (a, b) = try ChannelSocket.pair()
        let left = ChannelConnection(fileDescriptor: a), right = ChannelConnection(fileDescriptor: b)
        let payload = (0..<(300 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 17) }
        try payload.withUnsafeBytes { try left.sendData(.outputChunk, $0, timeout: .seconds(5)) }
        #expect(try right.receive(timeout: .seconds(5)) == .outputChunk(payload))
        do {
            try [UInt8]().withUnsafeBytes { try left.sendData(.datasetChunk, $0, timeout: .seconds(5)) }
            Issue.record("an empty data frame must be refused")
        } catch let error as ChannelError { #expect(error.code == .malformedPayload) }
        do {
            try [UInt8](repeating: 0, count: ChannelLimits.default.maxChunkPayload + 1).withUnsafeBytes {
                try left.sendData(.datasetChunk, $0, timeout: .seconds(5))
            }
            Issue.record("an oversized data frame must be refused")
        } catch let error as ChannelError { #expect(error.code == .frameTooLarge) }
        do {
            try [UInt8](repeating: 0, count: 10).withUnsafeBytes { try left.sendData(.receipt, $0, timeout: .seconds(5)) }
            Issue.record("only data frames go through sendData")
        } catch let error as ChannelError { #expect(error.code == .unexpectedMessage) }
        // Nothing of the refused frames reached the peer: the next message is intact.
        try left.send(.datasetEnd(datasetID: "d"), timeout: .seconds(5))
        #expect(try right.receive(timeout: .seconds(5)) == .datasetEnd(datasetID: "d"))
    }

    @Test func shutdownWakesABlockedReceiver() throws {
        let (a, b) = try ChannelSocket.pair()
        let left = ChannelConnection(fileDescriptor: a)
        defer { close(b) }
        let reader = Thread.detachNewThreadWithResult { try left.receive(timeout: .seconds(30)) }
        Thread.sleep(forTimeInterval: 0.2)
        let start = ContinuousClock.now
        left.shutdown()
        #expect(throws: ChannelError.self) { try reader.value() }
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func unixListenerAcceptsAConnectingPeer() throws {
        let dir = try TestEnvironment.temporaryDirectory("chan")
        defer { try? FileManager.default.removeItem(at: dir) }
        let address = ChannelAddress.unix(path: dir.appendingPathComponent("s").path)
        let listener = try ChannelSocket.listen(address)
        defer { close(listener) }
        let client = Thread.detachNewThreadWithResult {
            let fd = try ChannelSocket.connect(address, deadline: .now + .seconds(5))
            let connection = ChannelConnection(fileDescriptor: fd)
            try connection.send(.datasetEnd(datasetID: "d"), timeout: .seconds(5))
            return try connection.receive(timeout: .seconds(5))
        }
        let server = ChannelConnection(fileDescriptor: try ChannelSocket.accept(listener, deadline: .now + .seconds(5)))
        #expect(try server.receive(timeout: .seconds(5)) == .datasetEnd(datasetID: "d"))
        try server.send(.cancel(reason: "done"), timeout: .seconds(5))
        #expect(try client.value() == .cancel(reason: "done"))
    }

    @Test func acceptGivesUpAtTheDeadlineOrWhenThePeerIsGone() throws {
        let dir = try TestEnvironment.temporaryDirectory("chan")
        defer { try? FileManager.default.removeItem(at: dir) }
        let listener = try ChannelSocket.listen(.unix(path: dir.appendingPathComponent("s").path))
        defer { close(listener) }
        do {
            _ = try ChannelSocket.accept(listener, deadline: .now + .milliseconds(200))
            Issue.record("accept should time out")
        } catch { #expect(error.code == .timeout) }
        do {
            _ = try ChannelSocket.accept(listener, deadline: .now + .seconds(30), stillWaiting: { false })
            Issue.record("accept should give up")
        } catch { #expect(error.code == .closed) }
    }

    @Test func addressesParse() {
        #expect(ChannelAddress("unix:/tmp/x") == .unix(path: "/tmp/x"))
        #expect(ChannelAddress("vsock:3:5005") == .vsock(cid: 3, port: 5005))
        #expect(ChannelAddress("vsock:3") == nil)
        #expect(ChannelAddress("vsock:x:1") == nil)
        #expect(ChannelAddress("tcp:1") == nil)
        #expect(ChannelAddress("unix:") == nil)
    }
}

/// Runs `body` on a new thread; `value()` waits for and returns its result.
final class ThreadResult<T: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var result: Result<T, any Error>?

    func set(_ value: Result<T, any Error>) {
        condition.lock()
        result = value
        condition.broadcast()
        condition.unlock()
    }

    func value() throws -> T {
        condition.lock()
        defer { condition.unlock() }
        while result == nil { condition.wait() }
        return try result!.get()
    }
}

extension Thread {
    static func detachNewThreadWithResult<T: Sendable>(_ body: @escaping @Sendable () throws -> T) -> ThreadResult<T> {
        let box = ThreadResult<T>()
        Thread.detachNewThread { box.set(Result { try body() }) }
        return box
    }
}
