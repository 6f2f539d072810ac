import Foundation
import Testing
import TestSupport

@testable import HTTPServer
@testable import Server

/// `GET /metrics` of a real `cleanroomd`, read by Prometheus's own Python client parser.
@Suite(.serialized) struct MetricsTests {
    /// Parses the exposition text with `prometheus_client` and prints `name{labels} value` per
    /// sample, sorted labels, one per line; fails on text Prometheus would not accept.
    static let parser = """
        import sys
        from prometheus_client.parser import text_string_to_metric_families
        for family in text_string_to_metric_families(open(sys.argv[1]).read()):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                print(f"{family.type} {s.name}{{{labels}}} {float(s.value)}")
        """

    static func get(_ port: Int, _ path: String, token: String?) async throws -> RawHTTPResponse {
        try await offPool {
            let client = try RawHTTPClient(port: port)
            let authorization = token.map { "Authorization: Bearer \($0)\r\n" } ?? ""
            try client.send("GET \(path) HTTP/1.1\r\nHost: t\r\n\(authorization)\r\n")
            return try client.readResponse()
        }
    }

    @Test func aScrapeCountsRequestsByRoutePatternAndNeedsTheMetricsToken() async throws {
        let server = try await CleanroomdProcess.start(arguments: ["--access-log", "off"])
        defer { server.stopInBackground() }
        let port = server.port
        let tokenFile = server.dataDirectory.appendingPathComponent("metrics-token")
        let token = try String(contentsOf: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let attributes = try FileManager.default.attributesOfItem(atPath: tokenFile.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(token.hasPrefix("crm_") && token.count > 40)
        #expect(!server.stderr.contains(token))

        // Without a token, or with a wrong one: 401, and it says where the token is.
        for presented in [nil, "crm_wrong"] {
            let refused = try await Self.get(port, "/metrics", token: presented)
            #expect(refused.status == 401)
            #expect(refused.header("WWW-Authenticate") == "Bearer")
            #expect(refused.bodyText.contains("metrics-token"), "\(refused.bodyText)")
        }
        // The metrics token reads the metrics and nothing else.
        let api = try await Self.get(port, "/v1/jobs/job-0123456789abcdef", token: token)
        #expect(api.status == 401)
        #expect(try await Self.get(port, "/healthz", token: nil).status == 200)
        #expect(try await Self.get(port, "/healthz", token: nil).status == 200)
        #expect(try await Self.get(port, "/no/such/route/secret-id", token: nil).status == 404)

        let scrape = try await Self.get(port, "/metrics", token: token)
        #expect(scrape.status == 200)
        #expect(scrape.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
        let text = scrape.bodyText
        // Ids and paths never become labels: the route pattern does, and unmatched paths share one.
        #expect(!text.contains("job-0123456789abcdef") && !text.contains("secret-id"))

        let file = try TestEnvironment.temporaryDirectory("metrics").appendingPathComponent("scrape.txt")
        try Data(text.utf8).write(to: file)
        let parsed = try await ChildProcess.pythonOffPool(Self.parser, [file.path])
        #expect(parsed.status == 0, "\(parsed.stderr)\n\(text)")
        let samples = Set(parsed.stdout.split(separator: "\n").map(String.init))
        for expected in [
            #"counter cleanroom_http_requests_total{method="GET",route="/healthz",status="200"} 2.0"#,
            #"counter cleanroom_http_requests_total{method="GET",route="/v1/jobs/:jobId",status="401"} 1.0"#,
            #"counter cleanroom_http_requests_total{method="GET",route="unmatched",status="404"} 1.0"#,
            #"counter cleanroom_http_requests_total{method="GET",route="/metrics",status="401"} 2.0"#,
            #"histogram cleanroom_http_request_duration_seconds_count{method="GET",route="/healthz"} 2.0"#,
            #"histogram cleanroom_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/healthz"} 2.0"#,
            #"gauge cleanroom_ready{} 1.0"#,
            #"gauge cleanroom_jobs{state="succeeded"} 0.0"#,
            #"gauge cleanroom_jobs{state="running"} 0.0"#,
            #"gauge cleanroom_webhooks{state="failing"} 0.0"#,
            #"histogram cleanroom_job_duration_seconds_count{state="succeeded"} 0.0"#,
            #"histogram cleanroom_job_duration_seconds_bucket{le="+Inf",state="failed"} 0.0"#,
        ] {
            #expect(samples.contains(expected), "\(expected) not in:\n\(parsed.stdout)")
        }
        for name in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds",
                     "cleanroom_enclave_standby_ready"] {
            #expect(samples.contains { $0.contains(" \(name){") }, "\(name) missing:\n\(parsed.stdout)")
        }
        // The operator's token reads them too, and the first scrape is counted by the second.
        let operatorToken = try server.operatorToken()
        let again = try await Self.get(port, "/metrics", token: operatorToken)
        #expect(again.status == 200)
        #expect(again.bodyText.contains(#"cleanroom_http_requests_total{method="GET",route="/metrics",status="200"} 1"#))
        // Once the operator rotates its credential, the old one reads nothing, the new one does.
        let rotated = try await offPool {
            let client = try RawHTTPClient(port: port)
            try client.send("POST /v1/me/credentials HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(operatorToken)\r\nContent-Length: 0\r\n\r\n")
            return try client.readResponse()
        }
        #expect(rotated.status == 200 || rotated.status == 201, "\(rotated.bodyText)")
        let fresh = try #require(
            (try JSONSerialization.jsonObject(with: Data(rotated.bodyText.utf8)) as? [String: Any])?["token"] as? String)
        #expect(try await Self.get(port, "/metrics", token: operatorToken).status == 401)
        #expect(try await Self.get(port, "/metrics", token: fresh).status == 200)
        #expect(try await Self.get(port, "/metrics", token: token).status == 200)
    }

    @Test func aRestartKeepsTheMetricsToken() async throws {
        let server = try await CleanroomdProcess.start(arguments: ["--access-log", "off"])
        let tokenFile = server.dataDirectory.appendingPathComponent("metrics-token")
        let first = try String(contentsOf: tokenFile, encoding: .utf8)
        #expect(await server.stopped() == 0)
        try server.start(arguments: ["--access-log", "off"])
        defer { server.stopInBackground() }
        #expect(try String(contentsOf: tokenFile, encoding: .utf8) == first)
        let token = first.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try await Self.get(server.port, "/metrics", token: token).status == 200)
    }

    /// The histogram's buckets are cumulative, label values are escaped, and requests with no
    /// route (or a method the server does not know) share one series.
    @Test func renderingFollowsTheExpositionFormat() async throws {
        let metrics = ServerMetrics()
        func entry(_ method: String, _ route: String?, _ status: Int, ms: Double, aborted: Bool = false) -> AccessLogEntry {
            AccessLogEntry(
                time: 0, method: method, path: "/x", route: route, status: status, bytesIn: 10, bytesOut: 20,
                durationMilliseconds: ms, peer: "127.0.0.1", version: "HTTP/1.1", aborted: aborted)
        }
        metrics.record(entry("GET", "/a", 200, ms: 3))
        metrics.record(entry("GET", "/a", 200, ms: 40))
        metrics.record(entry("GET", "/a", 500, ms: 2000, aborted: true))
        metrics.record(entry("-", nil, 400, ms: 0))
        metrics.record(entry("BREW", nil, 400, ms: 0))
        metrics.record(entry("GET", #"/q"u\o"#, 200, ms: 1))
        metrics.addGauge("test_gauge", help: "A gauge.") { [([("k", "v\n")], 1.5)] }
        let text = await metrics.render()
        for line in [
            #"cleanroom_http_requests_total{method="GET",route="/a",status="200"} 2"#,
            #"cleanroom_http_requests_total{method="GET",route="/a",status="500"} 1"#,
            #"cleanroom_http_requests_total{method="other",route="unmatched",status="400"} 2"#,
            #"cleanroom_http_request_duration_seconds_bucket{method="GET",route="/a",le="0.005"} 1"#,
            #"cleanroom_http_request_duration_seconds_bucket{method="GET",route="/a",le="0.05"} 2"#,
            #"cleanroom_http_request_duration_seconds_bucket{method="GET",route="/a",le="1"} 2"#,
            #"cleanroom_http_request_duration_seconds_bucket{method="GET",route="/a",le="2.5"} 3"#,
            #"cleanroom_http_request_duration_seconds_bucket{method="GET",route="/a",le="+Inf"} 3"#,
            #"cleanroom_http_request_body_bytes_total{method="GET",route="/a"} 30"#,
            #"cleanroom_http_response_body_bytes_total{method="GET",route="/a"} 60"#,
            #"cleanroom_http_aborted_total{method="GET",route="/a"} 1"#,
            #"cleanroom_http_requests_total{method="GET",route="/q\"u\\o",status="200"} 1"#,
            #"test_gauge{k="v\n"} 1.5"#,
        ] {
            #expect(text.contains(line + "\n"), "\(line) not in:\n\(text)")
        }
        #expect(text.contains("# TYPE cleanroom_http_request_duration_seconds histogram\n"))
        #expect(text.contains(#"cleanroom_http_request_duration_seconds_sum{method="GET",route="/a"} 2.04"#))
    }
}
