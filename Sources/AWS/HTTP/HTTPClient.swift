import CCurl
import Foundation

/// HTTP/1.1 and HTTPS over libcurl, for S3, KMS, IMDS and webhooks.
///
/// - libcurl's blocking transfers run on the client's own worker threads, never on the caller's
///   thread: callers `await`, so event-loop threads are never blocked.
/// - Each worker keeps one curl handle whose connection cache is reused across requests.
/// - TLS peer and host verification are always on.
/// - Bodies stream both ways with backpressure (`ByteStream`).
/// - Idempotent requests are retried with backoff and jitter on connection errors, 5xx, 429
///   and service-specific throttling (`shouldRetry`).
/// - Task cancellation aborts the transfer.
public final class HTTPClient: Sendable {
    /// Timeouts and limits.
    public struct Configuration: Sendable {
        public var connectTimeout: Double = 10
        /// Abort a transfer that moves fewer than 1 byte/s for this long.
        public var stallTimeout: Double = 60
        /// Abort a transfer (connect, send, response head and body) not finished in this many
        /// seconds; nil: no limit beyond the connect and stall timeouts.
        public var totalTimeout: Double?
        /// Worker threads, i.e. transfers that can be in flight at once.
        public var maxConcurrentTransfers: Int = 8
        /// Bytes buffered between the network and a slow reader.
        public var streamBufferBytes: Int = 1 << 20
        /// libcurl's send buffer for in-place (`.buffer`) bodies: larger means fewer callbacks
        /// and `send` calls per megabyte.
        public var uploadBufferBytes: Int = 256 << 10
        /// Largest error body read before giving up on it.
        public var maxErrorBodyBytes: Int = 1 << 20
        public var retry: RetryPolicy = RetryPolicy()
        /// Extra CA bundle (PEM file) for private endpoints; system roots otherwise.
        public var caBundlePath: String?
        public init() {}
    }

    public let configuration: Configuration
    private let pool: CurlWorkerPool

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.pool = CurlWorkerPool(threads: configuration.maxConcurrentTransfers)
    }

    /// A process-wide client with default settings.
    public static let shared = HTTPClient()

    /// Sends a request built afresh for each attempt (so signatures carry the attempt's time),
    /// retrying as described above. For error statuses (>= 400) the body is already read and
    /// replayable. `shouldRetry` may mark other answers (e.g. a 400 `ThrottlingException`) retryable.
    public func execute(
        retry: RetryPolicy? = nil,
        shouldRetry: @escaping @Sendable (Int, [UInt8]) -> Bool = { _, _ in false },
        _ makeRequest: @Sendable () async throws -> HTTPClientRequest
    ) async throws -> HTTPClientResponse {
        let policy = retry ?? configuration.retry
        var attempt = 0
        while true {
            try Task.checkCancellation()
            let request = try await makeRequest()
            var canRetry = request.idempotent && attempt + 1 < policy.maxAttempts
            if case .stream = request.body { canRetry = false }
            do {
                let response = try await send(request)
                if response.status >= 400 {
                    let body = try await response.body.collect(limit: configuration.maxErrorBodyBytes)
                    let retryable =
                        response.status >= 500 || response.status == 429 || shouldRetry(response.status, body)
                    if retryable && canRetry {
                        try await sleep(policy.delay(attempt: attempt))
                        attempt += 1
                        continue
                    }
                    return HTTPClientResponse(status: response.status, headers: response.headers, body: ByteStream(bytes: body))
                }
                return response
            } catch let error as HTTPClientError where error.isRetryable && canRetry {
                try await sleep(policy.delay(attempt: attempt))
                attempt += 1
            }
        }
    }

    private func sleep(_ seconds: Double) async throws {
        try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
    }

    /// One attempt: resolves when the response head has arrived; the body streams afterwards.
    public func send(_ request: HTTPClientRequest) async throws -> HTTPClientResponse {
        let transfer = CurlTransfer(request: request, configuration: configuration)
        if case .stream(let stream, _) = request.body {
            // Pump the async body into the channel the curl thread reads from.
            let channel = transfer.uploadChannel!
            Task {
                do {
                    for try await chunk in stream {
                        if !(await channel.send(chunk)) { stream.cancel(); return }
                    }
                    channel.finish()
                } catch {
                    channel.finish(error)
                }
            }
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPClientResponse, any Error>) in
                transfer.setHeadContinuation(continuation)
                pool.submit { handle in transfer.perform(handle) }
            }
        } onCancel: {
            transfer.cancel()
        }
    }
}

/// Threads that each own a curl easy handle and run transfers on it one after another.
final class CurlWorkerPool: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [@Sendable (UnsafeMutableRawPointer) -> Void] = []

    nonisolated(unsafe) private static var initialized = false
    private static let initLock = NSLock()

    init(threads: Int) {
        Self.initLock.withLock {
            if !Self.initialized {
                curl_global_init(Int(CURL_GLOBAL_DEFAULT))
                Self.initialized = true
            }
        }
        for i in 0..<max(1, threads) {
            // Strong: a thread that starts after the client was released must still find its pool
            // (an unowned reference crashed when a test dropped a client at once); the loop never
            // ends, so the pool lives as long as the process, as its threads do.
            let thread = Thread { [self] in
                Thread.current.name = "curl-worker-\(i)"  // named from inside: on Linux a name set before start is lost
                self.run()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    func submit(_ job: @escaping @Sendable (UnsafeMutableRawPointer) -> Void) {
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    private func run() {
        guard let handle = curl_easy_init() else { return }
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            curl_easy_reset(handle)  // keeps the connection cache
            job(handle)
        }
    }
}
