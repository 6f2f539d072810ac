import Glibc

/// One access-log record: written as one JSON object per line once a request is answered (or
/// its connection dies). The path is logged without the query string, which may carry secrets.
public struct AccessLogEntry: Sendable {
    /// Wall-clock time the request head was complete, Unix seconds.
    public var time: Double
    public var method: String
    public var path: String
    /// The route pattern that answered (`/v1/jobs/:jobId`); nil when none matched.
    public var route: String?
    public var status: Int
    /// Request-body bytes received.
    public var bytesIn: Int
    /// Response-body bytes sent.
    public var bytesOut: Int
    public var durationMilliseconds: Double
    public var peer: String
    public var version: String
    /// The exchange did not complete (client went away, handler failed mid-stream, timeout).
    public var aborted: Bool

    /// The record as a single-line JSON object (no trailing newline).
    public var jsonLine: String {
        var s = #"{"time":"#
        s += JSONText.timestamp(time)
        s += #","method":"#
        JSONText.appendString(method, to: &s)
        s += #","path":"#
        JSONText.appendString(path, to: &s)
        if let route {
            s += #","route":"#
            JSONText.appendString(route, to: &s)
        }
        s += #","status":\#(status),"bytes_in":\#(bytesIn),"bytes_out":\#(bytesOut),"duration_ms":"#
        s += String(Double(Int(durationMilliseconds * 1000)) / 1000)
        s += #","peer":"#
        JSONText.appendString(peer, to: &s)
        s += #","version":"#
        JSONText.appendString(version, to: &s)
        if aborted { s += #","aborted":true"# }
        s += "}"
        return s
    }

    /// Now, Unix seconds.
    public static func wallClock() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
