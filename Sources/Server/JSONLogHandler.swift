import Foundation
import HTTPServer
import Logging
import Synchronization

/// A swift-log handler that writes each event as one JSON object per line to stderr
/// (`cleanroomd serve --log-format json`), for CloudWatch Logs and other collectors that index
/// JSON fields:
///
///     {"time":"2026-11-22T09:02:30.125Z","level":"info","logger":"cleanroomd.enclave",
///      "message":"standby enclave ready","metadata":{"enclave":"local pid 25595"}}
///
/// Metadata sits under `metadata`, so its keys never collide with the event's own. Lines are
/// written whole, one `write` each, under one lock for the process.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let write: @Sendable (String) -> Void

    /// A handler writing to stderr.
    public init(label: String) {
        self.init(label: label) { line in
            JSONLogHandler.stderrLock.withLock { _ in FileHandle.standardError.write(Data(line.utf8)) }
        }
    }

    /// A handler handing each line (with its newline) to `write` (tests).
    public init(label: String, write: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.write = write
    }

    private static let stderrLock = Mutex<Void>(())

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String,
        file: String, function: String, line: UInt
    ) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let explicit { merged.merge(explicit) { _, new in new } }
        var out = #"{"time":"#
        out += JSONText.timestamp(AccessLogEntry.wallClock())
        out += #","level":"#
        JSONText.appendString(level.rawValue, to: &out)
        out += #","logger":"#
        JSONText.appendString(label, to: &out)
        out += #","message":"#
        JSONText.appendString(message.description, to: &out)
        if !merged.isEmpty {
            out += #","metadata":"#
            Self.append(.dictionary(merged), to: &out)
        }
        out += "}\n"
        write(out)
    }

    private static func append(_ value: Logger.Metadata.Value, to out: inout String) {
        switch value {
        case .string(let text): JSONText.appendString(text, to: &out)
        case .stringConvertible(let value): JSONText.appendString(value.description, to: &out)
        case .array(let values):
            out += "["
            for (index, value) in values.enumerated() {
                if index > 0 { out += "," }
                append(value, to: &out)
            }
            out += "]"
        case .dictionary(let entries):
            out += "{"
            for (index, key) in entries.keys.sorted().enumerated() {
                if index > 0 { out += "," }
                JSONText.appendString(key, to: &out)
                out += ":"
                append(entries[key]!, to: &out)
            }
            out += "}"
        }
    }
}
