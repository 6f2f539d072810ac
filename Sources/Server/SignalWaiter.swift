import Dispatch
import Foundation

/// Waits for the first of some signals (SIGTERM, SIGINT) without a signal handler: the signals
/// are ignored for default delivery and observed through Dispatch sources.
final class SignalWaiter: @unchecked Sendable {  // immutable after init
    private let sources: [any DispatchSourceSignal]
    private let received = AsyncStream<Int32>.makeStream()

    init(signals: [Int32]) {
        var sources: [any DispatchSourceSignal] = []
        let continuation = received.continuation
        for sig in signals {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { continuation.yield(sig) }
            source.resume()
            sources.append(source)
        }
        self.sources = sources
    }

    /// The first signal received.
    func wait() async -> Int32 {
        for await sig in received.stream { return sig }
        return SIGTERM
    }
}
