import Foundation
import HTTPServer
import Synchronization

/// The server's Prometheus metrics, rendered for `GET /metrics` in the text exposition format
/// (version 0.0.4).
///
/// HTTP exchanges are counted from the access-log entries the server already makes (by method,
/// route pattern and status, with durations and bytes); everything else is read when scraped, by
/// the gauges registered with `addGauge` (jobs by state, readiness, the standby enclave) and from
/// `/proc/self` (the process's CPU time, memory and descriptors, under the names every Prometheus
/// client uses). Labels hold route patterns, methods and job states only: never an id, a path or a
/// party's name, which are the parties' business and would not group.
public final class ServerMetrics: Sendable {
    /// RFC 9110's methods; any other is counted as "other".
    static let standardMethods: Set<String> = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"]

    /// Upper bounds of the request-duration histogram's buckets, seconds: from a cached read to a
    /// dataset upload.
    static let durationBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

    /// One family read at scrape time: a name, its type (`gauge`, or `histogram` for counts the
    /// database keeps), its help, and its samples.
    public struct Gauge: Sendable {
        public typealias Sample = (labels: [(String, String)], value: Double)
        /// A sample of a family whose series have suffixes (`_bucket`, `_sum`, `_count`).
        public typealias SuffixedSample = (suffix: String, labels: [(String, String)], value: Double)
        let name: String
        let type: String
        let help: String
        let read: @Sendable () async -> [SuffixedSample]
    }

    private struct RouteKey: Hashable {
        let method: String
        let route: String
    }

    private struct RouteStats {
        var statuses: [Int: UInt64] = [:]
        var buckets = [UInt64](repeating: 0, count: ServerMetrics.durationBuckets.count)
        var count: UInt64 = 0
        var seconds: Double = 0
        var bytesIn: UInt64 = 0
        var bytesOut: UInt64 = 0
        var aborted: UInt64 = 0

        mutating func add(_ entry: AccessLogEntry, seconds: Double) {
            statuses[entry.status, default: 0] += 1
            if let bucket = ServerMetrics.durationBuckets.firstIndex(where: { seconds <= $0 }) { buckets[bucket] += 1 }
            count += 1
            self.seconds += seconds
            bytesIn += UInt64(max(0, entry.bytesIn))
            bytesOut += UInt64(max(0, entry.bytesOut))
            if entry.aborted { aborted += 1 }
        }
    }

    private let routes = Mutex<[RouteKey: RouteStats]>([:])
    private let gauges = Mutex<[Gauge]>([])
    private let startTime: Double

    public init() {
        startTime = Self.processStartTime() ?? Date().timeIntervalSince1970
    }

    /// Adds a gauge family read at every scrape.
    public func addGauge(_ name: String, help: String, _ read: @escaping @Sendable () async -> [Gauge.Sample]) {
        gauges.withLock {
            $0.append(Gauge(name: name, type: "gauge", help: help, read: { await read().map { ("", $0.labels, $0.value) } }))
        }
    }

    /// Adds a histogram read at every scrape from counts kept elsewhere (the database): for each
    /// label set, the observations' values; rendered as cumulative buckets at `bounds`, `_sum` and `_count`.
    public func addHistogram(
        _ name: String, help: String, bounds: [Double], _ read: @escaping @Sendable () async -> [(labels: [(String, String)], values: [Double])]
    ) {
        let family = Gauge(name: name, type: "histogram", help: help) {
            await read().flatMap { series -> [Gauge.SuffixedSample] in
                let buckets = bounds.map { bound in
                    (suffix: "_bucket", labels: series.labels + [("le", Self.format(bound))], value: Double(series.values.filter { $0 <= bound }.count))
                }
                return buckets + [
                    ("_bucket", series.labels + [("le", "+Inf")], Double(series.values.count)),
                    ("_sum", series.labels, series.values.reduce(0, +)),
                    ("_count", series.labels, Double(series.values.count)),
                ]
            }
        }
        gauges.withLock { $0.append(family) }
    }

    /// Counts one answered (or aborted) exchange; called on event-loop threads, never blocks for long.
    public func record(_ entry: AccessLogEntry) {
        // Requests no route matched, and those the parser refused, share one series, and methods
        // outside RFC 9110's are "other": paths and method tokens are whatever a client sent, and
        // a series for each would let any client grow the server's memory.
        let method = Self.standardMethods.contains(entry.method) ? entry.method : "other"
        let key = RouteKey(method: method, route: entry.route ?? "unmatched")
        let seconds = entry.durationMilliseconds / 1000
        routes.withLock { all in
            all[key, default: RouteStats()].add(entry, seconds: seconds)
        }
    }

    /// The exposition text.
    public func render() async -> String {
        var out = ""
        let snapshot = routes.withLock { $0 }.sorted { ($0.key.route, $0.key.method) < ($1.key.route, $1.key.method) }
        func labels(_ key: RouteKey) -> String { "method=\(quoted(key.method)),route=\(quoted(key.route))" }

        header(&out, "cleanroom_http_requests_total", "counter", "HTTP requests answered, by method, route pattern and status.")
        for (key, stats) in snapshot {
            for (status, count) in stats.statuses.sorted(by: { $0.key < $1.key }) {
                out += "cleanroom_http_requests_total{\(labels(key)),status=\"\(status)\"} \(count)\n"
            }
        }
        header(
            &out, "cleanroom_http_request_duration_seconds", "histogram",
            "Time from a request's head to its response's last byte, by method and route pattern.")
        for (key, stats) in snapshot {
            var cumulative: UInt64 = 0
            for (bound, count) in zip(Self.durationBuckets, stats.buckets) {
                cumulative += count
                out += "cleanroom_http_request_duration_seconds_bucket{\(labels(key)),le=\"\(format(bound))\"} \(cumulative)\n"
            }
            out += "cleanroom_http_request_duration_seconds_bucket{\(labels(key)),le=\"+Inf\"} \(stats.count)\n"
            out += "cleanroom_http_request_duration_seconds_sum{\(labels(key))} \(format(stats.seconds))\n"
            out += "cleanroom_http_request_duration_seconds_count{\(labels(key))} \(stats.count)\n"
        }
        let counters: [(String, String, KeyPath<RouteStats, UInt64>)] = [
            ("cleanroom_http_request_body_bytes_total", "Request-body bytes received, by method and route pattern.", \.bytesIn),
            ("cleanroom_http_response_body_bytes_total", "Response-body bytes sent, by method and route pattern.", \.bytesOut),
            (
                "cleanroom_http_aborted_total",
                "Exchanges that did not complete (the client went away, a handler failed mid-stream, a timeout).",
                \.aborted
            ),
        ]
        for (name, help, path) in counters {
            header(&out, name, "counter", help)
            for (key, stats) in snapshot { out += "\(name){\(labels(key))} \(stats[keyPath: path])\n" }
        }
        for gauge in gauges.withLock({ $0 }) {
            header(&out, gauge.name, gauge.type, gauge.help)
            for sample in await gauge.read() {
                let text = sample.labels.map { "\($0.0)=\(quoted($0.1))" }.joined(separator: ",")
                out += gauge.name + sample.suffix + (text.isEmpty ? "" : "{\(text)}") + " \(format(sample.value))\n"
            }
        }
        renderProcess(&out)
        return out
    }

    /// The process metrics every Prometheus client exports, from `/proc/self`.
    private func renderProcess(_ out: inout String) {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = Double(sysconf(Int32(_SC_PAGESIZE)))
        if let fields = ProcessStat.fields(), fields.count > 21, ticks > 0 {
            let user = Double(fields[11]) ?? 0, system = Double(fields[12]) ?? 0
            header(&out, "process_cpu_seconds_total", "counter", "User and system CPU time spent, seconds.")
            out += "process_cpu_seconds_total \(format((user + system) / ticks))\n"
            header(&out, "process_virtual_memory_bytes", "gauge", "Virtual memory size, bytes.")
            out += "process_virtual_memory_bytes \(fields[20])\n"
            header(&out, "process_resident_memory_bytes", "gauge", "Resident memory size, bytes.")
            out += "process_resident_memory_bytes \(format((Double(fields[21]) ?? 0) * page))\n"
        }
        if let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            header(&out, "process_open_fds", "gauge", "Open file descriptors.")
            out += "process_open_fds \(descriptors.count)\n"
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            header(&out, "process_max_fds", "gauge", "The limit on open file descriptors.")
            out += "process_max_fds \(limit.rlim_cur)\n"
        }
        header(&out, "process_start_time_seconds", "gauge", "When the process started, Unix seconds.")
        out += "process_start_time_seconds \(format(startTime))\n"
    }

    /// Boot time plus the process's start in clock ticks since boot.
    private static func processStartTime() -> Double? {
        guard let fields = ProcessStat.fields(), fields.count > 19, let ticks = Double(fields[19]),
            let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
            let line = stat.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
            let boot = Double(line.dropFirst(6))
        else { return nil }
        return boot + ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    private func header(_ out: inout String, _ name: String, _ type: String, _ help: String) {
        out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    /// A label value in quotes, with `\`, `"` and newlines escaped as the format requires.
    private func quoted(_ value: String) -> String {
        var out = "\""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out + "\""
    }

    private func format(_ value: Double) -> String { Self.format(value) }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
