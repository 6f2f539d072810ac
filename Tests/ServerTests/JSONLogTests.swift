import Foundation
import Logging
import Synchronization
import Testing
import TestSupport

@testable import Server

/// `cleanroomd serve --log-format json`: every line on stderr one JSON object.
@Suite(.serialized) struct JSONLogTests {
    @Test func anEventIsOneJSONObjectWithItsMetadataNested() throws {
        let lines = Mutex<[String]>([])
        var logger = Logger(label: "cleanroomd.test") { label in
            JSONLogHandler(label: label) { line in lines.withLock { $0.append(line) } }
        }
        logger[metadataKey: "job"] = "job-1"
        logger.info(
            "a \"quoted\"\nmessage", metadata: ["level": "not the event's", "nested": ["list": ["a", "b"], "n": "\(3)"]])
        logger.debug("below the level: not written")
        let written = lines.withLock { $0 }
        #expect(written.count == 1)
        let line = try #require(written.first)
        #expect(line.hasSuffix("}\n") && line.filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["level"] as? String == "info")
        #expect(object["logger"] as? String == "cleanroomd.test")
        #expect(object["message"] as? String == "a \"quoted\"\nmessage")
        let time = try #require(object["time"] as? String)
        #expect(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil, "\(time)")
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["job"] as? String == "job-1")
        #expect(metadata["level"] as? String == "not the event's")
        let nested = try #require(metadata["nested"] as? [String: Any])
        #expect(nested["list"] as? [String] == ["a", "b"] && nested["n"] as? String == "3")
    }

    @Test func theServersStartAndStopAreJSONEventsLikeTheRest() async throws {
        let server = try await CleanroomdProcess.start(arguments: ["--log-format", "json", "--access-log", "off"])
        // The standby enclave's "ready" is logged once it is keyed; wait for it.
        for _ in 0..<200 where !server.stderr.contains("standby enclave ready") { try await Task.sleep(for: .milliseconds(50)) }
        #expect(await server.stopped() == 0)
        let lines = server.stderr.split(separator: "\n")
        #expect(lines.count >= 4, "\(server.stderr)")
        var messages: [String] = []
        for line in lines {
            let object = try #require(
                try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
            #expect(object["time"] is String && object["level"] is String && object["logger"] is String, "\(line)")
            messages.append(try #require(object["message"] as? String))
            if object["message"] as? String == "standby enclave ready" {
                let metadata = object["metadata"] as? [String: Any]
                #expect((metadata?["enclave"] as? String)?.hasPrefix("local pid") == true, "\(line)")
            }
        }
        #expect(messages.contains { $0.hasPrefix("listening on http://127.0.0.1:\(server.port) ") }, "\(messages)")
        #expect(messages.contains("standby enclave ready"), "\(messages)")
        #expect(messages.last == "stopped", "\(messages)")
    }

    /// A server that cannot start (another one serves the data directory) says why as a JSON event
    /// too, at level critical, and exits 1: a collector's error alarm sees it.
    @Test func aServerThatCannotStartSaysWhyInJSON() async throws {
        let server = try await CleanroomdProcess.start(arguments: ["--access-log", "off"])
        defer { server.stopInBackground() }
        let second = try await runProcess(
            try TestEnvironment.executable("cleanroomd"),
            ["serve", "--data-dir", server.dataDirectory.path, "--listen", "127.0.0.1:0", "--log-format", "json"])
        #expect(second.status == 1, "\(second.stderrText)")
        let lines = second.stderrText.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any], "not JSON: \(line)")
        }
        let lastLine = try #require(lines.last)
        let last = try #require(try JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any])
        #expect(last["level"] as? String == "critical")
        #expect((last["message"] as? String)?.contains("another cleanroomd") == true, "\(last)")
    }
}
