/// A process's `/proc/PID/stat`, for the enclave socket folders' owners and the server's metrics.
enum ProcessStat {
    /// The fields after the command name (which may hold spaces and parentheses, so it ends at the
    /// last `)`): [0] is the state (field 3), [11] and [12] user and system time in clock ticks
    /// (14, 15), [19] the start time in ticks since boot (22), [20] the virtual size in bytes (23),
    /// [21] the resident set in pages (24).
    static func fields(_ path: String = "/proc/self/stat") -> [Substring]? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let close = text.lastIndex(of: ")") else {
            return nil
        }
        return text[text.index(after: close)...].split(separator: " ")
    }
}
