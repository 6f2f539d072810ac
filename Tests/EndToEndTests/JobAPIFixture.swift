import Foundation
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Two parties and a real `cleanroomd serve` on a loopback port, set up the way `scripts/demo.sh`
/// does it: the operator enrolls each party (`cleanroomd admin enroll`), each party makes its keys
/// on its own "machine" (its own `CLEANROOM_HOME`), registers, declares its dataset and uploads it
/// encrypted under its KMS key with the real `cleanroom` CLI. A bank holds the label, a retailer
/// features; the policy is an inner join on a hashed customer id, trained with boosted trees.
///
/// The server runs its real `cleanroom-enclave` child (or the one `--enclave-binary` names). Every
/// blocking step runs off the test pool; `with` stops the server — and any enclave it left — on
/// every path.
final class JobAPIFixture: @unchecked Sendable {  // used by one test at a time, sequentially
    /// One party's machine.
    struct Party: Sendable {
        let id: String
        let name: String
        let home: URL
        var datasetID = ""
        var credential = ""
        var principalID = ""
        var fingerprint = ""
    }

    struct CLIResult: Sendable, CustomStringConvertible {
        let status: Int32
        let stdout: String
        let stderr: String
        var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }

        func json() throws -> [String: Any] {
            guard let object = try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any] else {
                throw TestEnvironmentError("not a JSON object: \(stdout)")
            }
            return object
        }
    }

    static let bank = 0
    static let retailer = 1
    static let columns = [
        "customer_hash:string,income:float,credit_limit:float,months_on_book:integer,defaulted:boolean",
        "customer_hash:string,monthly_spend:float,visits_per_month:float,share_of_luxury:float?,returns_rate:float?",
    ]
    static let terminalStates: Set<String> = ["succeeded", "failed", "cancelled"]

    let root: URL
    let dataDirectory: URL
    let customers: Int
    /// Whether the server runs with an enclave on standby (`--enclave-standby`, its default).
    let standby: Bool
    /// The server, on one port across restarts.
    let server: CleanroomdProcess
    var port: Int { server.port }
    var url: String { server.url }
    private(set) var parties: [Party]
    /// PCR0 of the real `cleanroom-enclave` (what the policy allows).
    private(set) var pcr0 = ""
    /// Enclave processes seen as the server's children (killed at the end if they outlived it).
    private var seenEnclaves: Set<pid_t> = []

    private init(customers: Int, standby: Bool) throws {
        self.standby = standby
        root = try TestEnvironment.temporaryDirectory("e2e-jobs")
        dataDirectory = root.appendingPathComponent("server")
        server = try CleanroomdProcess(dataDirectory: dataDirectory, keepsPort: true)
        self.customers = customers
        parties = [
            Party(id: "first-bank", name: "First Bank", home: root.appendingPathComponent("parties/first-bank")),
            Party(id: "shopmart", name: "ShopMart", home: root.appendingPathComponent("parties/shopmart")),
        ]
    }

    deinit { stopSync(signal: SIGKILL) }

    /// Sets up the server and both parties, runs `body`, and stops everything on every path.
    /// `editCSV` may change a party's plaintext CSV (party index, text) before it is encrypted and uploaded.
    /// `standby`: the server keeps an enclave launched ahead of the next job (its default); off by
    /// default here, so that every enclave process a test sees is a job's.
    static func with(
        customers: Int = 1200, enclaveBinary: String? = nil, standby: Bool = false,
        editCSV: (@Sendable (Int, String) -> String)? = nil, _ body: (JobAPIFixture) async throws -> Void
    ) async throws {
        let fixture = try JobAPIFixture(customers: customers, standby: standby)
        do {
            try await offPool { try fixture.setUp(enclaveBinary: enclaveBinary, editCSV: editCSV) }
            try await body(fixture)
        } catch {
            _ = try? await offPool { fixture.stopSync() }
            try? FileManager.default.removeItem(at: fixture.root)
            throw error
        }
        _ = try await offPool { fixture.stopSync() }
        try? FileManager.default.removeItem(at: fixture.root)
    }

    private func setUp(enclaveBinary: String?, editCSV: (@Sendable (Int, String) -> String)?) throws {
        try startSync(enclaveBinary: enclaveBinary)
        let plaintext = root.appendingPathComponent("plaintext")
        let generated = try ChildProcess.run(
            try TestEnvironment.python(),
            [
                TestEnvironment.repoRoot.appendingPathComponent("scripts/demo_data.py").path, "data", "--out",
                plaintext.path,
                "--customers", "\(customers)",
            ])
        guard generated.status == 0 else { throw TestEnvironmentError("demo_data.py failed: \(generated.stderr)") }
        for index in parties.indices {
            if let editCSV {
                let file = plaintext.appendingPathComponent("\(parties[index].id).csv")
                let edited = editCSV(index, try String(contentsOf: file, encoding: .utf8))
                try edited.write(to: file, atomically: true, encoding: .utf8)
            }
            let token = try checked(
                ChildProcess.run(
                    try TestEnvironment.executable("cleanroomd"), ["admin", "enroll", "--data-dir", dataDirectory.path])
            )
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let keys = try checked(cliSync(index, ["keys", "init", "--result-key-bits", "3072", "--json"])).json()
            parties[index].fingerprint = keys["signingKeyFingerprint"] as? String ?? ""
            _ = try checked(
                cliSync(
                    index,
                    [
                        "register", "--token", token, "--name", parties[index].name, "--party-id", parties[index].id,
                        "--json",
                    ]))
            let profile =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: parties[index].home.appendingPathComponent("profiles/default.json")))
                as? [String: Any]
            parties[index].credential = profile?["credential"] as? String ?? ""
            parties[index].principalID = profile?["principalId"] as? String ?? ""
            let created = try checked(
                cliSync(
                    index,
                    [
                        "dataset", "create", "--name", "\(parties[index].id)-customers", "--columns",
                        Self.columns[index], "--json",
                    ])
            )
            .json()
            parties[index].datasetID = created["id"] as? String ?? ""
            _ = try checked(
                cliSync(
                    index,
                    [
                        "dataset", "upload", parties[index].datasetID,
                        plaintext.appendingPathComponent("\(parties[index].id).csv").path,
                    ]))
        }
        let measured = try checked(
            cliSync(Self.bank, ["enclave", "measure", try TestEnvironment.executable("cleanroom-enclave"), "--json"])
        )
        .json()
        pcr0 = (measured["Measurements"] as? [String: Any])?["PCR0"] as? String ?? ""
        guard pcr0.count == 96 else {
            throw TestEnvironmentError("no PCR0 from `cleanroom enclave measure`: \(measured)")
        }
    }

    // MARK: The server

    /// Starts `cleanroomd serve` on the fixture's data directory and port and waits until it listens.
    func start(enclaveBinary: String? = nil) async throws {
        try await offPool { try self.startSync(enclaveBinary: enclaveBinary) }
    }

    /// Stops the server gracefully (SIGTERM), or with `signal`. An enclave that outlived it is
    /// killed, unless `leaveEnclaves` (a test that checks the enclave exits by itself); the end of
    /// `with` kills any still left.
    func stop(signal: Int32 = SIGTERM, leaveEnclaves: Bool = false) async throws {
        _ = try await offPool { self.stopSync(signal: signal, leaveEnclaves: leaveEnclaves) }
    }

    private func startSync(enclaveBinary: String?) throws {
        var arguments = ["--access-log", "off"]
        if let enclaveBinary { arguments += ["--enclave-binary", enclaveBinary] }
        if !standby { arguments.append("--no-enclave-standby") }
        try server.start(arguments: arguments)
    }

    private func stopSync(signal: Int32 = SIGTERM, leaveEnclaves: Bool = false) {
        if server.isRunning {
            seenEnclaves.formUnion(enclaveProcessesSync().map(\.pid))
            server.stop(signal: signal, timeout: 20)
        }
        guard !leaveEnclaves else { return }
        // An enclave must not outlive its server; if one did, end it here (it was ours).
        for pid in seenEnclaves where Self.isEnclave(pid) { Glibc.kill(pid, SIGKILL) }
        seenEnclaves = []
    }

    /// Waits until the enclave process `pid` has exited (gone, or a zombie of a parent that is
    /// not the server); false after `timeout` seconds.
    func waitForEnclaveExit(_ pid: pid_t, timeout: Double) async throws -> Bool {
        try await offPool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if !Self.isEnclave(pid) { return true }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return false
        }
    }

    /// True while `pid` is a live (not zombie) enclave process.
    private static func isEnclave(_ pid: pid_t) -> Bool {
        guard let stat = stat(of: pid) else { return false }
        return stat.command.hasPrefix("cleanroom-encl") && stat.state != "Z"
    }

    /// The server's log so far (every start), for failure messages.
    func serverLog() -> String { server.stderr }

    /// The server's live child processes running the enclave program — zombies (exited but not
    /// reaped) included, since those are processes the server left behind too.
    func enclaveProcesses() async throws -> [(pid: pid_t, state: String)] {
        let found = try await offPool { self.enclaveProcessesSync().map { [String($0.pid), $0.state] } }
        return found.map { (pid_t($0[0]) ?? 0, $0[1]) }
    }

    private func enclaveProcessesSync() -> [(pid: pid_t, state: String)] {
        guard let serverPID = server.pid else { return [] }
        var found: [(pid: pid_t, state: String)] = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = pid_t(entry), let stat = Self.stat(of: pid), stat.ppid == serverPID,
                stat.command.hasPrefix("cleanroom-encl")
            else { continue }
            found.append((pid, stat.state))
        }
        seenEnclaves.formUnion(found.map(\.pid))
        return found
    }

    private static func stat(of pid: pid_t) -> (command: String, state: String, ppid: pid_t)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 2, let ppid = pid_t(fields[1]) else { return nil }
        return (String(text[text.index(after: open)..<close]), String(fields[0]), ppid)
    }

    // MARK: Parties

    /// Runs the party CLI as `party` on its own machine.
    func cli(_ party: Int, _ arguments: [String]) async throws -> CLIResult {
        try await offPool { try self.cliSync(party, arguments) }
    }

    /// Runs the party CLI with a given home (e.g. one the operator made).
    func cli(home: URL, _ arguments: [String]) async throws -> CLIResult {
        try await offPool { try self.cliSync(home: home, arguments) }
    }

    private func cliSync(_ party: Int, _ arguments: [String]) throws -> CLIResult {
        try cliSync(home: parties[party].home, arguments)
    }

    private func cliSync(home: URL, _ arguments: [String]) throws -> CLIResult {
        let result = try ChildProcess.run(
            try TestEnvironment.executable("cleanroom"), arguments,
            environment: ["CLEANROOM_HOME": home.path, "CLEANROOM_SERVER": url])
        return CLIResult(status: result.status, stdout: result.stdout, stderr: result.stderr)
    }

    /// Starts the party CLI in the background (e.g. `job watch`), its output going to files.
    func spawnCLI(_ party: Int, _ arguments: [String], name: String) throws -> (ChildProcess, stdout: URL, stderr: URL)
    {
        let out = root.appendingPathComponent("\(name).out")
        let err = root.appendingPathComponent("\(name).err")
        let child = try ChildProcess.start(
            try TestEnvironment.executable("cleanroom"), arguments,
            environment: ["CLEANROOM_HOME": parties[party].home.path, "CLEANROOM_SERVER": url], stdout: out.path,
            stderr: err.path)
        return (child, out, err)
    }

    /// Waits until `file` contains `text`; false after `timeout` seconds.
    func waitFor(_ text: String, in file: URL, timeout: Double = 60) async throws -> Bool {
        try await offPool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if let content = try? String(contentsOf: file, encoding: .utf8), content.contains(text) { return true }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return false
        }
    }

    private func checked(_ result: (status: Int32, stdout: String, stderr: String)) throws -> CLIResult {
        try checked(CLIResult(status: result.status, stdout: result.stdout, stderr: result.stderr))
    }

    private func checked(_ result: CLIResult) throws -> CLIResult {
        guard result.status == 0 else {
            throw TestEnvironmentError("a setup command failed: \(result)\n\(serverLog())")
        }
        return result
    }

    // MARK: Policies and jobs

    /// The collaboration policy: an inner join of the bank's and the retailer's data on the
    /// customer hash; the bank gets model, metrics and its own scores, the retailer the metrics
    /// (or `retailerArtifacts`).
    func policy(rounds: Int, maxRuns: Int = 3, retailerArtifacts: [String] = ["metrics"]) -> [String: Any] {
        let zeros = String(repeating: "0", count: 96)
        func columns(_ spec: String) -> [[String: Any]] {
            spec.split(separator: ",").map { item in
                let parts = item.split(separator: ":")
                var column: [String: Any] = [
                    "name": String(parts[0]), "type": String(parts[1].trimmingCharacters(in: ["?"])),
                ]
                if parts[1].hasSuffix("?") { column["nullable"] = true }
                return column
            }
        }
        return [
            "version": 1, "name": "Credit default with retail features",
            "description": "End-to-end tests: an inner join of two parties on a hashed customer id.",
            "parties": parties.map { ["id": $0.id] },
            "datasets": parties.indices.map {
                ["id": parties[$0].datasetID, "owner": parties[$0].id, "columns": columns(Self.columns[$0])]
            },
            "join": ["type": "inner", "key": "customer_hash"],
            "training": [
                "algorithm": "gradient_boosted_trees", "objective": "binary:logistic", "label": "defaulted",
                "features": [
                    "income", "credit_limit", "months_on_book", "monthly_spend", "visits_per_month",
                    "share_of_luxury", "returns_rate",
                ],
                "hyperparameters": [
                    "num_rounds": rounds, "max_depth": 4, "learning_rate": 0.2, "max_bin": 64, "lambda": 1.0,
                ],
                "validation": ["fraction": 0.25, "seed": 7],
            ] as [String: Any],
            "enclave": ["measurements": [["pcr0": pcr0, "pcr1": zeros, "pcr2": zeros]], "allowDebug": false]
                as [String: Any],
            "outputs": [
                ["recipient": parties[Self.bank].id, "artifacts": ["model", "metrics", "scores:own"]],
                ["recipient": parties[Self.retailer].id, "artifacts": retailerArtifacts],
            ],
            "constraints": [
                "minRowsPerParty": customers / 8, "minJoinedRows": customers / 8, "expiresAt": ISO8601DateFormatter().string(from: Date().addingTimeInterval(365 * 86_400)),
                "maxRuns": maxRuns,
            ],
        ]
    }

    /// The bank proposes the policy with `cleanroom policy propose` (as a revision of `revising`'s
    /// policy when given); returns (collaboration, digest).
    func propose(
        rounds: Int, maxRuns: Int = 3, retailerArtifacts: [String] = ["metrics"], revising: String? = nil
    ) async throws -> (collaboration: String, digest: String) {
        let file = root.appendingPathComponent("policy-\(UUID().uuidString).json")
        try JSONSerialization.data(
            withJSONObject: policy(rounds: rounds, maxRuns: maxRuns, retailerArtifacts: retailerArtifacts), options: [.prettyPrinted])
            .write(to: file)
        let proposed = try await cli(
            Self.bank, ["policy", "propose", file.path, "--json"] + (revising.map { ["--collaboration", $0] } ?? []))
        guard proposed.status == 0, let object = try? proposed.json(), let id = object["id"] as? String,
            let digest = object["digest"] as? String
        else { throw TestEnvironmentError("policy propose failed: \(proposed)") }
        return (id, digest)
    }

    /// `cleanroom policy approve` by `party`; returns the approval id.
    @discardableResult
    func approve(_ party: Int, _ collaboration: String, digest: String) async throws -> String {
        let approved = try await cli(
            party, ["policy", "approve", collaboration, "--digest", digest, "--yes", "--json"])
        guard approved.status == 0, let reply = try? approved.json(), let id = reply["id"] as? String else {
            throw TestEnvironmentError("policy approve by \(parties[party].id) failed: \(approved)")
        }
        // Approving a policy on its data lets the party's KMS key release to the policy's enclave.
        let images = (reply["kmsKey"] as? [String: Any])?["enclaveImages"] as? [String] ?? []
        guard images.contains(pcr0) else {
            throw TestEnvironmentError("policy approve by \(parties[party].id) did not allow the enclave image in its KMS key: \(approved)")
        }
        return id
    }

    /// `cleanroom job start` by the bank; returns the job id.
    func startJob(_ collaboration: String, by party: Int = JobAPIFixture.bank) async throws -> String {
        let started = try await cli(party, ["job", "start", collaboration, "--json"])
        guard started.status == 0, let id = try? started.json()["id"] as? String else {
            throw TestEnvironmentError("job start failed: \(started)\n\(serverLog())")
        }
        return id
    }

    /// Polls `GET /v1/jobs/{id}` until the job is in a terminal state; returns the job.
    func waitForJob(_ job: String, timeout: Double = 120) async throws -> [String: Any] {
        let text = try await offPool { () throws -> String in
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                let response = try self.httpSync("GET", "/v1/jobs/\(job)", token: self.parties[Self.bank].credential)
                if response.status == 200,
                    let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
                    let status = object["status"] as? String, Self.terminalStates.contains(status)
                {
                    return response.bodyText
                }
                Thread.sleep(forTimeInterval: 0.1)
            }
            throw TestEnvironmentError("job \(job) did not end within \(timeout) s\n\(self.serverLog())")
        }
        return try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
    }

    /// The collaboration's audit entries as `party` reads them (`GET /v1/collaborations/{id}/audit`).
    func audit(_ collaboration: String, as party: Int = JobAPIFixture.bank) async throws -> [AuditItem] {
        let response = try await http("GET", "/v1/collaborations/\(collaboration)/audit", as: party)
        guard response.status == 200,
            let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
            let entries = object["entries"] as? [[String: Any]]
        else { throw TestEnvironmentError("audit read failed: \(response.status) \(response.bodyText)") }
        return entries.map(AuditItem.init)
    }

    /// One audit entry: its action, subject, actor party and details.
    struct AuditItem: Sendable {
        let action: String
        let subject: String?
        let actorPartyId: String?
        let details: [String: String]

        init(_ entry: [String: Any]) {
            action = entry["action"] as? String ?? ""
            subject = entry["subject"] as? String
            actorPartyId = entry["actorPartyId"] as? String
            var parsed: [String: Any] = entry["details"] as? [String: Any] ?? [:]
            if let text = entry["details"] as? String,
                let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            {
                parsed = object
            }
            details = parsed.mapValues { "\($0)" }
        }
    }

    // MARK: Raw HTTP

    /// One request on a fresh connection, as `party` (its bearer credential), with a JSON body made
    /// from `json` or sent as `raw` bytes.
    func http(
        _ method: String, _ path: String, as party: Int?, headers: [(String, String)] = [], json: [String: Any]? = nil,
        raw: String? = nil
    ) async throws -> RawHTTPResponse {
        let token = party.map { parties[$0].credential }
        let body = try raw.map { Data($0.utf8) } ?? json.map { try JSONSerialization.data(withJSONObject: $0) }
        return try await offPool { try self.httpSync(method, path, token: token, headers: headers, body: body) }
    }

    /// One request with an explicit bearer token (nil: none).
    func http(_ method: String, _ path: String, token: String?, headers: [(String, String)] = []) async throws
        -> RawHTTPResponse
    {
        try await offPool { try self.httpSync(method, path, token: token, headers: headers) }
    }

    private func httpSync(
        _ method: String, _ path: String, token: String?, headers: [(String, String)] = [], body: Data? = nil,
        timeout: Double = 30
    ) throws -> RawHTTPResponse {
        let client = try RawHTTPClient(port: port, timeout: timeout)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body {
            head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        } else if method == "POST" || method == "PUT" {
            head += "Content-Length: 0\r\n"
        }
        head += "\r\n"
        try client.send(Array(head.utf8) + Array(body ?? Data()))
        return try client.readResponse(head: method == "HEAD")
    }

    /// The `{"error": {"code", "message"}}` of an error response.
    static func error(_ response: RawHTTPResponse) -> (code: String, message: String)? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
            let error = object["error"] as? [String: Any], let code = error["code"] as? String
        else { return nil }
        return (code, error["message"] as? String ?? "")
    }

    /// Runs a Python snippet of the test environment (e.g. the operator's SQLite edits).
    func python(_ script: String, _ arguments: [String]) async throws -> CLIResult {
        let result = try await offPool { try ChildProcess.python(script, arguments) }
        return CLIResult(status: result.status, stdout: result.stdout, stderr: result.stderr)
    }
}
