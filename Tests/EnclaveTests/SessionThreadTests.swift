import Enclave
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The enclave session's own thread: its nonisolated async code runs there, before and after it
/// suspends, and the thread ends with it.
@Suite struct SessionThreadTests {
    /// The name of the thread this runs on (nonisolated: it runs on the task's executor).
    nonisolated static func threadName() async -> String {
        let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
        return name.trimmingCharacters(in: .newlines)
    }

    @Test func theSessionsAsyncCodeRunsOnItsOwnThread() async throws {
        let outside = await Self.threadName()
        let seen = try await SessionThread.run(name: "session-test") { () async throws -> [String] in
            var seen = [await Self.threadName()]
            try await Task.sleep(for: .milliseconds(20))
            seen.append(await Self.threadName())
            // Blocking here holds this thread, not one of the concurrency pool's.
            usleep(20_000)
            seen.append(await Self.threadName())
            return seen
        }
        #expect(seen == ["session-test", "session-test", "session-test"])
        #expect(outside != "session-test")
    }

    @Test func anErrorComesOutAsItIs() async {
        await #expect(throws: EnclaveError(.internal, "stop")) {
            try await SessionThread.run(name: "session-error") { () async throws(EnclaveError) in
                throw EnclaveError(.internal, "stop")
            }
        }
    }
}
