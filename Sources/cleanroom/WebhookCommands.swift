import ArgumentParser
import Foundation

/// `cleanroom webhook`: the URLs where the server sends your party's collaboration events, signed.
struct WebhookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook",
        abstract: "Webhooks: your collaborations' events POSTed to a URL of yours, signed with HMAC-SHA256.",
        discussion: """
            The server sends each event of the collaborations your party is a member of (policy proposed, \
            approval submitted, job succeeded…: the entries of `cleanroom audit`) as a JSON POST, in order, at \
            least once, retrying with backoff while your receiver fails. Each request carries \
            `Cleanroom-Signature: t=TIME,v1=HMAC` (HMAC-SHA256 under the webhook's secret of TIME.BODY) and \
            `Cleanroom-Event-Id` to deduplicate by. See docs/webhooks.md for a receiver that checks them. \
            Needs the party-admin role. \
            Exit codes: 0 success, 1 refused by the server or a failed ping, 2 usage, 3 server unreachable.
            """,
        subcommands: [
            WebhookAddCommand.self, WebhookListCommand.self, WebhookShowCommand.self, WebhookUpdateCommand.self,
            WebhookRemoveCommand.self, WebhookRotateSecretCommand.self, WebhookPingCommand.self,
            WebhookDeliveriesCommand.self,
        ])

    /// One line per webhook: id, status, URL, events.
    static func line(_ webhook: [String: Any]) -> String {
        let events = (webhook["events"] as? [String]).flatMap { $0.isEmpty ? nil : $0.joined(separator: ",") } ?? "all events"
        let failing = (webhook["failures"] as? Int ?? 0) > 0 ? "  failing (\(webhook["failures"] ?? 0) attempts)" : ""
        return "\(webhook["id"] ?? "")  \(webhook["status"] ?? "")  \(webhook["url"] ?? "")  \(events)\(failing)"
    }

    /// Where a new secret goes: into `file` (0600), or printed once.
    static func keep(secret: Any?, file: String?) throws -> String {
        guard let secret = secret as? String else { throw CLIError("the server's answer has no secret") }
        guard let file else { return "secret: \(secret)\n(shown once: store it where your receiver reads it)" }
        try SecureFile.write(Data(secret.utf8), to: URL(fileURLWithPath: file))
        return "secret written to \(file) (mode 0600)"
    }
}

struct WebhookAddCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add", abstract: "Register a URL for your party's collaboration events; prints its secret once.",
        discussion: """
            The URL must be https:// and reach a public address (the server refuses private, loopback and \
            link-local ones unless its operator allowed them). Only events from now on are sent.
            """)

    @OptionGroup var options: GovernanceOptions

    @Option(name: .customLong("url"), help: "The receiver's URL, e.g. https://hooks.example.com/cleanroom.")
    var url: String

    @Option(
        name: .customLong("event"),
        help: "An event type (job.succeeded) or prefix (job.*) to send; repeatable (default: every event).")
    var events: [String] = []

    @Option(name: .customLong("description"), help: "A note for your party's admins (one line).")
    var description: String?

    @Option(name: .customLong("secret-file"), help: "Write the signing secret to this file (mode 0600) instead of printing it.")
    var secretFile: String?

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            var body: [String: Any] = ["url": url, "events": events]
            if let description { body["description"] = description }
            var reply = try await client.call("POST", "/v1/webhooks", json: body)
            let kept = try WebhookCommand.keep(secret: reply["secret"], file: secretFile)
            if secretFile != nil { reply["secret"] = nil }
            try options.output("webhook \(reply["id"] ?? "") created: \(WebhookCommand.line(reply))\n\(kept)", json: reply)
        }
    }
}

struct WebhookListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Your party's webhooks.")

    @OptionGroup var options: GovernanceOptions

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let reply = try await client.call("GET", "/v1/webhooks")
            let items = reply["items"] as? [[String: Any]] ?? []
            try options.output(items.isEmpty ? "no webhooks" : items.map(WebhookCommand.line).joined(separator: "\n"), json: reply)
        }
    }
}

struct WebhookShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "A webhook's settings and delivery state.")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The webhook id.") var webhook: String

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let reply = try await client.call("GET", "/v1/webhooks/\(webhook)")
            let text = [
                "id", "url", "status", "disabledReason", "events", "description", "cursor", "failures", "failingSince",
                "nextAttemptAt", "previousSecretExpiresAt", "createdAt", "createdBy",
            ].compactMap { key in reply[key].map { "\(key): \(($0 as? [String])?.joined(separator: ",") ?? "\($0)")" } }
            try options.output(text.joined(separator: "\n"), json: reply)
        }
    }
}

struct WebhookUpdateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update", abstract: "Change a webhook's URL, events or description, or disable or enable it.",
        discussion: "Enabling a webhook the server disabled resumes delivery at the first event it could not deliver.")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The webhook id.") var webhook: String

    @Option(name: .customLong("url"), help: "A new URL.") var url: String?

    @Option(name: .customLong("event"), help: "The event types to send from now on (replaces the list); repeatable.")
    var events: [String] = []

    @Flag(name: .customLong("all-events"), help: "Send every event type from now on.") var allEvents = false

    @Option(name: .customLong("description"), help: "A new description (\"\" removes it).") var description: String?

    @Flag(exclusivity: .exclusive, help: "Enable or disable the webhook.") var state: State?

    enum State: String, EnumerableFlag {
        case enable, disable
    }

    func validate() throws {
        if allEvents && !events.isEmpty { throw ValidationError("give --event or --all-events, not both") }
        if url == nil && events.isEmpty && !allEvents && description == nil && state == nil {
            throw ValidationError("nothing to change: give --url, --event, --all-events, --description, --enable or --disable")
        }
    }

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            var body: [String: Any] = [:]
            if let url { body["url"] = url }
            if !events.isEmpty || allEvents { body["events"] = events }
            if let description { body["description"] = description }
            if let state { body["enabled"] = state == .enable }
            let reply = try await client.call("PATCH", "/v1/webhooks/\(webhook)", json: body)
            try options.output("webhook \(webhook) updated: \(WebhookCommand.line(reply))", json: reply)
        }
    }
}

struct WebhookRemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Delete a webhook: nothing more is sent to it.")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The webhook id.") var webhook: String

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let reply = try await client.call("DELETE", "/v1/webhooks/\(webhook)")
            try options.output("webhook \(webhook) deleted", json: reply)
        }
    }
}

struct WebhookRotateSecretCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-secret", abstract: "Replace a webhook's signing secret; prints the new one once.",
        discussion: """
            For a day the old secret keeps signing beside the new one (a second v1= in Cleanroom-Signature), \
            so your receiver can switch to the new secret without refusing events.
            """)

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The webhook id.") var webhook: String

    @Option(name: .customLong("secret-file"), help: "Write the new secret to this file (mode 0600) instead of printing it.")
    var secretFile: String?

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            var reply = try await client.call("POST", "/v1/webhooks/\(webhook)/secret")
            let kept = try WebhookCommand.keep(secret: reply["secret"], file: secretFile)
            if secretFile != nil { reply["secret"] = nil }
            try options.output(
                "webhook \(webhook): new secret; the old one also signs until \(reply["previousSecretExpiresAt"] ?? "?")\n\(kept)",
                json: reply)
        }
    }
}

struct WebhookPingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ping", abstract: "Send a signed webhook.ping event now and report how the receiver answered.")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The webhook id.") var webhook: String

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let reply = try await client.call("POST", "/v1/webhooks/\(webhook)/ping")
            let status = reply["status"].map { "HTTP \($0)" } ?? "no answer"
            guard reply["succeeded"] as? Bool == true else {
                let line = "ping failed (\(status), \(reply["durationMs"] ?? 0) ms): \(reply["error"] ?? "")"
                guard options.json else { throw CLIError(line, code: "ping_failed") }
                try options.output(line, json: reply)  // the attempt as JSON, and exit 1
                FileHandle.standardError.write(Data("error: \(line)\n".utf8))
                throw ExitCode(1)
            }
            try options.output("ping delivered: \(status) in \(reply["durationMs"] ?? 0) ms", json: reply)
        }
    }
}

struct WebhookDeliveriesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deliveries", abstract: "A webhook's most recent delivery attempts, newest first.")

    @OptionGroup var options: GovernanceOptions

    @Argument(help: "The webhook id.") var webhook: String

    func run() async throws {
        try await runReporting(json: options.json) {
            let (client, _) = try options.client()
            let reply = try await client.call("GET", "/v1/webhooks/\(webhook)/deliveries")
            let items = reply["items"] as? [[String: Any]] ?? []
            let lines = items.map { d -> String in
                let result = d["succeeded"] as? Bool == true ? "ok" : "FAILED: \(d["error"] ?? "")"
                let status = d["status"].map { "HTTP \($0)" } ?? "-"
                return "\(d["time"] ?? "")  \(d["eventId"] ?? "")  \(d["eventType"] ?? "")  attempt \(d["attempt"] ?? 1)  \(status)  \(d["durationMs"] ?? 0) ms  \(result)"
            }
            try options.output(lines.isEmpty ? "no deliveries yet" : lines.joined(separator: "\n"), json: reply)
        }
    }
}
