import AWS
import ArgumentParser
import CleanRoom
import Foundation

/// `cleanroom job`: start a collaboration's job, follow it live, read its state, cancel it.
struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "Jobs: start, watch (live progress), status, list, cancel.",
        discussion: """
            A job runs the collaboration's current policy once every party has approved it. Exit codes: 0 success \
            (for watch: the job succeeded), 1 refused by the server or the job failed or was cancelled, 2 usage, \
            3 server unreachable.
            """,
        subcommands: [
            JobStartCommand.self, JobWatchCommand.self, JobStatusCommand.self, JobListCommand.self, JobCancelCommand.self,
        ])
}

struct JobStartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Start a job on a collaboration (every party must have approved its current policy).",
        discussion: """
            The server refuses with the reason (a missing or revoked approval, an expired policy, a used-up run \
            limit, a dataset not uploaded) and starts nothing. With --digest it starts the job only if that is \
            still the current policy (`policy_changed` otherwise), so a revision made since you reviewed the \
            policy never runs in your name. With --watch the command follows the job as `job watch` does.
            """)

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The collaboration id.") var collaboration: String

    @Option(name: .customLong("digest"), help: "Start only if the current policy digest is this one.")
    var expectedDigest: String?

    @Flag(name: .customLong("watch"), help: "Follow the job's progress until it ends.")
    var watch = false

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let body: [String: Any] = expectedDigest.map { ["policyDigest": $0] } ?? [:]
            let job = try await client.call("POST", JobRoutes.start(collaboration: collaboration), json: body)
            guard let id = job["id"] as? String else { throw CLIError("the server's answer has no job id") }
            if watch {
                if options.json {
                    JobProgressRenderer(mode: .json, jobID: id).printJSON(event: "job", data: job)
                } else {
                    print("job \(id) started (policy \(job["policyDigest"] ?? ""))")
                }
                try await JobWatcher(client: client, jobID: id, json: options.json).run()
            } else {
                try options.output(
                    "job \(id) started (\(job["status"] ?? "pending")); follow it with `cleanroom job watch \(id)`",
                    json: job)
            }
        }
    }
}

struct JobWatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Follow a job live: a progress bar on a terminal, plain lines otherwise, JSON lines with --json.",
        discussion: """
            Reads the job's Server-Sent Events stream. On a terminal it draws one updating line (state, phase, \
            iteration, loss); when the output is not a terminal it prints one line per event; with --json it \
            prints each event as one JSON object per line and nothing else. Exits 0 when the job succeeded, \
            1 when it failed or was cancelled (the reason is printed).
            """)

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The job id.") var job: String

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            try await JobWatcher(client: client, jobID: job, json: options.json).run()
        }
    }
}

struct JobStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "A job's state (and error, if it failed).")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The job id.") var job: String

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let reply = try await client.call("GET", JobRoutes.job(job))
            var text = "job \(job): \(reply["status"] ?? "?")"
            if let progress = reply["progress"] as? [String: Any], let phase = progress["phase"] as? String {
                text += " · \(phase)"
                if let total = (progress["total"] as? NSNumber)?.intValue, total > 0 {
                    text += " \((progress["iteration"] as? NSNumber)?.intValue ?? 0)/\(total)"
                }
                if let message = progress["message"] as? String, !message.isEmpty { text += " (\(message))" }
            }
            if let error = jobError(reply) { text += "\n  \(error)" }
            try options.output(text, json: reply)
        }
    }
}

struct JobListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "A collaboration's jobs, newest first.")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The collaboration id.") var collaboration: String

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let reply = try await client.call("GET", JobRoutes.start(collaboration: collaboration))
            let items = reply["items"] as? [[String: Any]] ?? []
            let lines = items.map { job in
                var line = "\(job["id"] ?? "")  \(job["status"] ?? "")  started \(job["createdAt"] ?? "")"
                if let error = jobError(job) { line += "  \(error)" }
                return line
            }
            try options.output(lines.isEmpty ? "no jobs yet" : lines.joined(separator: "\n"), json: reply)
        }
    }
}

struct JobCancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel", abstract: "Cancel a running job (the enclave is stopped and its keys dropped).")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The job id.") var job: String

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let reply = try await client.call("POST", JobRoutes.cancel(job), json: [String: Any]())
            try options.output("job \(job): \(reply["status"] ?? "cancelling")", json: reply)
        }
    }
}

/// Follows one job's event stream to its end and renders it. A broken stream, or a server that is
/// briefly unreachable (a restart), is resumed from the last event seen (`Last-Event-ID`) for up to
/// `patience` without any contact; then the watch ends saying the job may still be running.
struct JobWatcher {
    let client: GovernanceClient
    let jobID: String
    let json: Bool
    /// How long to keep trying without reaching the server.
    var patience: Duration = .seconds(60)

    func run() async throws {
        let renderer = JobProgressRenderer(mode: json ? .json : (isatty(1) != 0 ? .terminal : .lines), jobID: jobID)
        Interruption.explain("stopped watching; job \(jobID) keeps running (`cleanroom job cancel \(jobID)` stops it)")
        var lastEventID: String?
        var final: (state: String, error: String?)?
        var attempts = 0
        var lastContact = ContinuousClock.now
        var said = false
        // Streams that ended without a new event: a server that answers but never moves on (a job
        // it no longer runs, a proxy's page) must not keep the watch going forever.
        var fruitless = 0
        while final == nil {
            let seenBefore = lastEventID
            do {
                var headers: [(name: String, value: String)] = []
                if let lastEventID { headers.append(("Last-Event-ID", lastEventID)) }
                let response = try await client.stream(
                    JobRoutes.events(jobID), accept: "text/event-stream", headers: headers, client: GovernanceClient.streamingHTTP)
                lastContact = .now
                attempts = 0
                var parser = ServerSentEventParser()
                streaming: for try await chunk in response.body {
                    lastContact = .now
                    for event in try parser.feed(chunk) {
                        if let id = event.id { lastEventID = id }
                        if let state = renderer.render(event) {
                            final = state
                            response.body.cancel()
                            break streaming
                        }
                    }
                }
                if final == nil {
                    // The stream ended without a terminal state: ask for the state, then reconnect.
                    let status = try await client.call("GET", JobRoutes.job(jobID))
                    if let state = status["status"] as? String, terminalJobStates.contains(state) {
                        final = (state, jobError(status))
                        renderer.renderFinal(state: state, error: jobError(status))
                        break
                    }
                }
            } catch let error as GovernanceClient.APIFailure where error.status != 0 {
                renderer.finish()
                throw error
            } catch let error as CLIError {
                renderer.finish()
                throw error
            } catch {
                // A broken stream or an unreachable server: try again below.
            }
            if final != nil { break }
            fruitless = lastEventID == seenBefore ? fruitless + 1 : 0
            guard ContinuousClock.now - lastContact < patience, fruitless <= 20 else {
                renderer.finish()
                throw CLIError(
                    "lost the connection to the server; job \(jobID) may still be running: "
                        + "`cleanroom job watch \(jobID)` follows it again", exitCode: 3)
            }
            if !said, !json {
                renderer.note("the connection to the server broke; reconnecting…")
                said = true
            }
            attempts += 1
            try await Task.sleep(for: .milliseconds(min(5000, 250 * attempts)))
        }
        renderer.finish()
        guard let final else { return }
        if final.state != "succeeded" {
            throw CLIError("job \(jobID) \(final.state)\(final.error.map { ": \($0)" } ?? "")")
        }
        if !json {
            print("job \(jobID) succeeded: download your results with `cleanroom output download \(jobID) --out DIR`")
        }
    }
}

/// Renders job events: one redrawn line on a terminal, plain lines otherwise, or JSON lines.
///
/// Progress comes as fast as training iterates (hundreds of events a second); a terminal's line is
/// redrawn at most ten times a second and plain lines are printed at most once a second per phase,
/// besides each phase's first and last event. JSON lines carry every event, each with the job id,
/// the event id and the time it arrived.
final class JobProgressRenderer {
    enum Mode { case terminal, lines, json }
    let mode: Mode
    let jobID: String
    private var state = "pending"
    private var drewLine = false
    private let start = Date()
    private var lastPhase = ""
    private var lastDrawn = Date.distantPast

    init(mode: Mode, jobID: String) {
        self.mode = mode
        self.jobID = jobID
    }

    /// Prints one JSON line for an event (`--json`).
    func printJSON(event: String, data: Any, id: String? = nil) {
        var line: [String: Any] = ["event": event, "data": data, "jobId": jobID, "receivedAt": RFC3339.format(Int64(Date().timeIntervalSince1970))]
        if let id { line["id"] = id }
        if let bytes = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys, .withoutEscapingSlashes]) {
            print(String(decoding: bytes, as: UTF8.self))
            fflush(nil)
        }
    }

    /// A remark about the watch itself (not the job), on stderr.
    func note(_ text: String) {
        if mode == .terminal, drewLine {
            print("")
            drewLine = false
        }
        fflush(nil)
        FileHandle.standardError.write(Data("\(text)\n".utf8))
    }

    /// Renders one event; returns the final state when the event ends the job.
    func render(_ event: ServerSentEvent) -> (state: String, error: String?)? {
        let object = (try? JSONSerialization.jsonObject(with: Data(event.data.utf8))) as? [String: Any] ?? [:]
        if mode == .json { printJSON(event: event.name, data: object.isEmpty ? event.data as Any : object, id: event.id) }
        switch event.name {
        case "state":
            guard let newState = object["state"] as? String else { return nil }
            state = newState
            let error = (object["error"] as? [String: Any]).map { "\($0["code"] ?? ""): \($0["message"] ?? "")" }
            if mode != .json { line("state \(newState)\(error.map { " — \($0)" } ?? "")", permanent: true) }
            return terminalJobStates.contains(newState) ? (newState, error) : nil
        case "progress":
            guard mode != .json else { return nil }
            let phase = object["phase"] as? String ?? "?"
            let iteration = (object["iteration"] as? NSNumber)?.intValue ?? 0
            let total = (object["total"] as? NSNumber)?.intValue ?? 0
            let loss = (object["loss"] as? NSNumber)?.doubleValue
            let message = object["message"] as? String ?? ""
            // Each phase's first and last event always shows; the ones between, at a bounded rate.
            let edge = phase != lastPhase || (total > 0 && iteration >= total)
            let interval = mode == .terminal ? 0.1 : 1.0
            guard edge || Date().timeIntervalSince(lastDrawn) >= interval else { return nil }
            lastPhase = phase
            lastDrawn = Date()
            // A message that starts with the phase's name already says it ("resuming from …").
            let label = message.hasPrefix(phase) ? message : ([phase, message].filter { !$0.isEmpty }.joined(separator: " "))
            if mode == .terminal {
                var text = "\(state) · \(label)"
                if total > 0 {
                    let width = 24
                    let filled = min(width, width * iteration / total)
                    text += " " + String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
                    text += " \(iteration)/\(total)"
                }
                if let loss { text += String(format: "  loss %.5f", loss) }
                text += String(format: "  %.0fs", Date().timeIntervalSince(start))
                line(text, permanent: false)
            } else {
                var text = "progress \(label)"
                if total > 0 { text += " \(iteration)/\(total)" }
                if let loss { text += String(format: " loss=%.6f", loss) }
                line(text, permanent: true)
            }
            return nil
        default:
            return nil
        }
    }

    /// Renders a final state learnt from the job's status rather than the stream.
    func renderFinal(state: String, error: String?) {
        if mode == .json {
            var data: [String: Any] = ["state": state]
            if let error { data["error"] = error }
            printJSON(event: "state", data: data)
        } else {
            line("state \(state)\(error.map { " — \($0)" } ?? "")", permanent: true)
        }
    }

    func finish() {
        if mode == .terminal, drewLine {
            print("")
            drewLine = false
        }
        fflush(nil)
    }

    private func line(_ text: String, permanent: Bool) {
        switch mode {
        case .terminal:
            // Redraw the current line; a permanent line ends with a newline.
            print("\r\u{1B}[2K" + text, terminator: permanent ? "\n" : "")
            drewLine = !permanent
        case .lines:
            print(text)
        case .json:
            return
        }
        fflush(nil)
    }
}

/// One Server-Sent Event (the `event`, `data` and `id` fields of one block).
struct ServerSentEvent: Equatable {
    var name: String
    var data: String
    var id: String?
}

/// An incremental `text/event-stream` parser (WHATWG HTML §9.2.6): lines end with LF, CRLF or CR;
/// a blank line dispatches; `:` starts a comment (keep-alives); `data` lines join with LF.
/// Limits a single line and event to 1 MiB so a hostile server cannot grow it without bound.
struct ServerSentEventParser {
    static let maxLine = 1 << 20
    private var buffer: [UInt8] = []
    private var lastWasCR = false
    private var name = ""
    private var data: [String] = []
    private var id: String?
    private var size = 0

    mutating func feed(_ bytes: [UInt8]) throws -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        for byte in bytes {
            if byte == 0x0A && lastWasCR {
                lastWasCR = false
                continue
            }
            lastWasCR = byte == 0x0D
            if byte == 0x0A || byte == 0x0D {
                if let event = try line(String(decoding: buffer, as: UTF8.self)) { events.append(event) }
                buffer.removeAll(keepingCapacity: true)
            } else {
                buffer.append(byte)
                guard buffer.count <= Self.maxLine else {
                    throw CLIError("the server's event stream sent a line over \(Self.maxLine) bytes")
                }
            }
        }
        return events
    }

    private mutating func line(_ text: String) throws -> ServerSentEvent? {
        if text.isEmpty {
            defer { (name, data, size) = ("", [], 0) }
            guard !data.isEmpty else { return nil }
            return ServerSentEvent(name: name.isEmpty ? "message" : name, data: data.joined(separator: "\n"), id: id)
        }
        if text.hasPrefix(":") { return nil }
        let field: Substring, value: Substring
        if let colon = text.firstIndex(of: ":") {
            field = text[..<colon]
            var rest = text[text.index(after: colon)...]
            if rest.hasPrefix(" ") { rest = rest.dropFirst() }
            value = rest
        } else {
            (field, value) = (Substring(text), "")
        }
        switch field {
        case "event": name = String(value)
        case "data":
            size += value.utf8.count
            guard size <= Self.maxLine else { throw CLIError("the server's event stream sent an event over \(Self.maxLine) bytes") }
            data.append(String(value))
        case "id" where !value.contains("\0"): id = String(value)
        default: break
        }
        return nil
    }
}
