import Crypto
import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue #8's "tests that must exist" through the real processes and the REST API: a real
/// `cleanroomd serve` on a loopback port, its real `cleanroom-enclave` child, and two parties acting
/// through the real `cleanroom` CLI and raw HTTP (see `JobAPIFixture`).
@Suite(.serialized) struct JobAPIEndToEndTests {
    typealias Fixture = JobAPIFixture
    static let bank = JobAPIFixture.bank
    static let retailer = JobAPIFixture.retailer
    /// Enough boosting rounds that training takes a few seconds in a debug build (cancel and kill tests).
    static let longRounds = 1500

    /// The `items` of a listing answered by the CLI with `--json`.
    static func items(_ result: JobAPIFixture.CLIResult) throws -> [[String: Any]] {
        try #require(try result.json()["items"] as? [[String: Any]], "\(result)")
    }

    static func errorCode(_ job: [String: Any]) -> String? { (job["error"] as? [String: Any])?["code"] as? String }
    static func errorMessage(_ job: [String: Any]) -> String {
        (job["error"] as? [String: Any])?["message"] as? String ?? ""
    }

    /// Every output of `job` listed for `party` through the REST API.
    static func outputs(_ fixture: Fixture, _ job: String, as party: Int) async throws -> [[String: Any]] {
        let response = try await fixture.http("GET", "/v1/jobs/\(job)/outputs", as: party)
        #expect(response.status == 200, "\(response.bodyText)")
        let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        return try #require(object?["items"] as? [[String: Any]])
    }

    // MARK: 1. Outputs are private to their recipient, downloads and key releases are audited

    @Test func partnerCannotListOrDownloadAnotherPartysOutputAndDownloadsAndKeyReleasesAreAudited() async throws {
        try await Fixture.with { f in
            let (collaboration, digest) = try await f.propose(rounds: 4)
            for party in f.parties.indices { try await f.approve(party, collaboration, digest: digest) }
            let job = try await f.startJob(collaboration)
            let watched = try await f.cli(Self.bank, ["job", "watch", job])
            #expect(watched.status == 0, "\(watched)\n\(f.serverLog())")

            // `output list` shows each party its own outputs only.
            let bankOutputs = try Self.items(try await f.cli(Self.bank, ["output", "list", job, "--json"]))
            let retailerOutputs = try Self.items(try await f.cli(Self.retailer, ["output", "list", job, "--json"]))
            #expect(bankOutputs.compactMap { $0["name"] as? String }.sorted() == ["metrics", "model", "scores:own"])
            #expect(bankOutputs.allSatisfy { $0["recipient"] as? String == f.parties[Self.bank].id })
            #expect(retailerOutputs.compactMap { $0["name"] as? String } == ["metrics"])
            #expect(retailerOutputs.allSatisfy { $0["recipient"] as? String == f.parties[Self.retailer].id })
            let bankModel = try #require(bankOutputs.first { $0["name"] as? String == "model" }?["id"] as? String)
            let bankIDs = Set(bankOutputs.compactMap { $0["id"] as? String })
            #expect(bankIDs.isDisjoint(with: retailerOutputs.compactMap { $0["id"] as? String }))

            // The retailer asks for the bank's real model by id, and for an id that does not exist:
            // the same 404, byte for byte — nothing tells it the first one exists.
            let foreign = try await f.http("GET", "/v1/jobs/\(job)/outputs/\(bankModel)/content", as: Self.retailer)
            let missing = try await f.http(
                "GET", "/v1/jobs/\(job)/outputs/out-00000000deadbeef/content", as: Self.retailer)
            #expect(foreign.status == 404)
            #expect(missing.status == 404)
            #expect(Fixture.error(foreign)?.code == "not_found")
            let sameBody = foreign.body == missing.body
            #expect(sameBody, "\(foreign.body.count) bytes (\(foreign.bodyText.prefix(200))) vs \(missing.bodyText)")
            #expect(foreign.header("content-type") == missing.header("content-type"))
            #expect(foreign.header("content-length") == missing.header("content-length"))
            // The CLI, asked for an artifact the retailer was not granted, finds none.
            let notGranted = try await f.cli(
                Self.retailer,
                ["output", "download", job, "--only", "model", "--out", f.root.appendingPathComponent("r-model").path])
            #expect(notGranted.status == 1)
            #expect(notGranted.stderr == "error: job \(job) has no output model for your party\n", "\(notGranted)")

            // The bank downloads its own model (raw HTTP): the ciphertext hash the server lists.
            let own = try await f.http("GET", "/v1/jobs/\(job)/outputs/\(bankModel)/content", as: Self.bank)
            #expect(own.status == 200)
            let listedSHA = bankOutputs.first { $0["id"] as? String == bankModel }?["sha256"] as? String
            #expect(own.header("x-content-sha256") == listedSHA)
            #expect(Int(own.header("content-length") ?? "") == own.body.count && !own.body.isEmpty)
            #expect(own.header("accept-ranges") == "bytes")
            // An interrupted download resumes with a byte range; past the end is 416.
            let size = own.body.count
            for (range, slice) in [("bytes=10-19", 10..<20), ("bytes=\(size - 7)-", (size - 7)..<size), ("bytes=-5", (size - 5)..<size)] {
                let part = try await f.http(
                    "GET", "/v1/jobs/\(job)/outputs/\(bankModel)/content", as: Self.bank, headers: [("Range", range)])
                #expect(part.status == 206, "\(range): \(part.status)")
                #expect(Array(part.body) == Array(own.body[slice]), "\(range)")
                #expect(part.header("content-range") == "bytes \(slice.lowerBound)-\(slice.upperBound - 1)/\(size)", "\(range)")
            }
            let beyond = try await f.http(
                "GET", "/v1/jobs/\(job)/outputs/\(bankModel)/content", as: Self.bank, headers: [("Range", "bytes=\(size)-")])
            #expect(beyond.status == 416 && beyond.header("content-range") == "bytes */\(size)", "\(beyond.status)")
            let ignored = try await f.http(
                "GET", "/v1/jobs/\(job)/outputs/\(bankModel)/content", as: Self.bank, headers: [("Range", "bytes=0-1,5-9")])
            #expect(ignored.status == 200 && ignored.body == own.body)
            // The bank revises the policy; the retailer then downloads and decrypts its own metrics
            // with the CLI, and verifies them against the policy the job ran (a review found the
            // bundle of a job whose collaboration had moved on could not be verified at all).
            let (_, revised) = try await f.propose(rounds: 5, revising: collaboration)
            #expect(revised != digest)
            let retailerDownload = try await f.cli(
                Self.retailer,
                ["output", "download", job, "--out", f.root.appendingPathComponent("retailer-results").path])
            #expect(retailerDownload.status == 0 && retailerDownload.stderr.isEmpty, "\(retailerDownload)")
            let metrics = f.root.appendingPathComponent("retailer-results/metrics.json")
            #expect(FileManager.default.fileExists(atPath: metrics.path))
            let policyFile = f.root.appendingPathComponent("retailer-results/policy.json")
            #expect(Hex.encode(SHA256.hash(Array(try Data(contentsOf: policyFile)))) == digest)
            let verified = try await f.cli(
                Self.retailer,
                ["verify", f.root.appendingPathComponent("retailer-results").path,
                 "--root", f.dataDirectory.appendingPathComponent("development-ca/root.pem").path])
            #expect(verified.status == 0 && verified.stdout.contains("VERIFIED"), "\(verified)")
            let ranPolicy = try await f.http("GET", "/v1/jobs/\(job)/policy", as: Self.retailer)
            #expect(ranPolicy.status == 200 && ranPolicy.header("x-policy-digest") == digest)
            #expect(Array(ranPolicy.body) == Array(try Data(contentsOf: policyFile)))

            // The audit log both parties can read: one key release per dataset, to the allowed PCR0;
            // the downloads that happened (by whom, of what); not the refused one.
            let audit = try await f.audit(collaboration, as: Self.retailer)
            let releases = audit.filter { $0.action == "job.key_release" && $0.subject == job }
            #expect(Set(releases.compactMap { $0.details["dataset"] }) == Set(f.parties.map(\.datasetID)))
            #expect(releases.count == 2)
            #expect(releases.allSatisfy { $0.details["pcr0"] == f.pcr0 })
            let downloads = audit.filter { $0.action == "output.download" }
            #expect(downloads.contains { $0.subject == bankModel && $0.actorPartyId == f.parties[Self.bank].id })
            let retailerMetrics = try #require(retailerOutputs.first?["id"] as? String)
            #expect(
                downloads.contains { $0.subject == retailerMetrics && $0.actorPartyId == f.parties[Self.retailer].id })
            #expect(
                !downloads.contains {
                    $0.actorPartyId == f.parties[Self.retailer].id && bankIDs.contains($0.subject ?? "")
                })
            #expect(audit.filter { $0.action == "job.output" }.count == 4)
            #expect(try await f.enclaveProcesses().isEmpty)
        }
    }

    // MARK: 2. Unanimity: a missing or revoked approval refuses the start, and nothing starts

    @Test func jobStartIsRefusedWithTheReasonWhenAnApprovalIsMissingOrRevoked() async throws {
        try await Fixture.with { f in
            let (collaboration, digest) = try await f.propose(rounds: 3)
            try await f.approve(Self.bank, collaboration, digest: digest)
            let retailerID = f.parties[Self.retailer].id
            func expectRefused(_ when: String, reason: String) async throws {
                let expected = "error: approval_missing: no valid approval of the current policy from: \(retailerID) (\(reason))\n"
                let cli = try await f.cli(Self.bank, ["job", "start", collaboration])
                #expect(cli.status == 1, "\(when): \(cli)")
                #expect(cli.stderr == expected, "\(when): \(cli)")
                #expect(cli.stdout.isEmpty, "\(when): \(cli)")
                // With --json the reason is also on stdout, as JSON a script can read.
                let json = try await f.cli(Self.bank, ["job", "start", collaboration, "--json"])
                #expect(json.status == 1 && json.stderr == expected, "\(when): \(json)")
                let failure = try json.json()["error"] as? [String: Any]
                #expect(failure?["code"] as? String == "approval_missing" && failure?["status"] as? Int == 409, "\(when): \(json)")
                let raw = try await f.http(
                    "POST", "/v1/collaborations/\(collaboration)/jobs", as: Self.retailer, json: [:])
                #expect(raw.status == 409, "\(when): \(raw.bodyText)")
                #expect(Fixture.error(raw)?.code == "approval_missing", "\(when): \(raw.bodyText)")
                #expect(Fixture.error(raw)?.message.hasSuffix(": \(retailerID) (\(reason))") == true, "\(when): \(raw.bodyText)")
                // Nothing started: no job, no job audit entry, no enclave.
                let jobs = try await f.http("GET", "/v1/collaborations/\(collaboration)/jobs", as: Self.bank)
                #expect(jobs.status == 200)
                let items =
                    (try JSONSerialization.jsonObject(with: Data(jobs.body)) as? [String: Any])?["items"] as? [Any]
                #expect(items?.isEmpty == true, "\(when): \(jobs.bodyText)")
                #expect(try await f.audit(collaboration).filter { $0.action.hasPrefix("job.") }.isEmpty, "\(when)")
                #expect(try await f.enclaveProcesses().isEmpty, "\(when)")
            }

            try await expectRefused("one approval missing", reason: "not approved")

            // The retailer approves, then revokes its approval with the CLI.
            let approval = try await f.approve(Self.retailer, collaboration, digest: digest)
            let revoked = try await f.cli(Self.retailer, ["policy", "revoke", collaboration, approval])
            #expect(revoked.status == 0, "\(revoked)")
            #expect(
                try await f.audit(collaboration).contains { $0.action == "approval.revoked" && $0.subject == approval })
            // Its KMS key no longer releases to the enclave image: KMS enforces the revocation too.
            let key = try await f.cli(Self.retailer, ["kms", "show", "--json"])
            #expect(try key.json()["enclaveImages"] as? [String] == [], "\(key)")
            try await expectRefused("the approval revoked", reason: "approval revoked")

            // With the approval given again, a start whose body is not the documented one is refused
            // and starts nothing (each used to start a job that counted against the run limit), as is
            // a start pinned to another digest than the current policy's.
            try await f.approve(Self.retailer, collaboration, digest: digest)
            for (body, detail) in [
                ("{\"a\":", "JSON"), ("[]", "must be a JSON object"), ("{\"a\":1,\"a\":2}", "duplicate"),
                ("{\"maxRuns\":99}", "unknown field maxRuns"), ("{\"policyDigest\":\"abc\"}", "64 hex digits"),
            ] {
                let raw = try await f.http("POST", "/v1/collaborations/\(collaboration)/jobs", as: Self.bank, raw: body)
                #expect(raw.status == 400, "\(body): \(raw.bodyText)")
                #expect(Fixture.error(raw)?.code == "invalid_json", "\(body): \(raw.bodyText)")
                #expect(Fixture.error(raw)?.message.contains(detail) == true, "\(body): \(raw.bodyText)")
            }
            let other = String(repeating: "ab", count: 32)
            let pinned = try await f.cli(Self.bank, ["job", "start", collaboration, "--digest", other])
            #expect(pinned.status == 1, "\(pinned)")
            #expect(pinned.stderr.contains("policy_changed: the collaboration's current policy is \(digest), not \(other)"), "\(pinned)")
            let none = try await f.http("GET", "/v1/collaborations/\(collaboration)/jobs", as: Self.bank)
            #expect(
                ((try JSONSerialization.jsonObject(with: Data(none.body)) as? [String: Any])?["items"] as? [Any])?.isEmpty == true,
                "\(none.bodyText)")
            #expect(try await f.audit(collaboration).filter { $0.action.hasPrefix("job.") }.isEmpty)

            // The same start pinned to the current digest succeeds (the refusals were about the approval).
            let started = try await f.cli(Self.bank, ["job", "start", collaboration, "--digest", digest, "--json"])
            let job = try #require(try started.json()["id"] as? String, "\(started)")
            let ended = try await f.waitForJob(job)
            #expect(ended["status"] as? String == "succeeded", "\(ended)\n\(f.serverLog())")
        }
    }

    // MARK: 3. A changed enclave binary (another PCR0) gets no keys

    @Test func changedEnclaveBinaryIsRefusedAtAttestationAndGetsNoKeys() async throws {
        let folder = try TestEnvironment.temporaryDirectory("e2e-tampered-enclave")
        defer { try? FileManager.default.removeItem(at: folder) }
        let tampered = folder.appendingPathComponent("cleanroom-enclave")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: try TestEnvironment.executable("cleanroom-enclave")))
        bytes.append(contentsOf: Array("appended by the operator".utf8))
        try bytes.write(to: tampered)
        #expect(chmod(tampered.path, 0o755) == 0)

        try await Fixture.with(enclaveBinary: tampered.path) { f in
            // The copy still runs, but it measures differently from the binary the policy allows.
            let measured = try await f.cli(Self.bank, ["enclave", "measure", tampered.path, "--json"])
            let tamperedPCR0 = (try measured.json()["Measurements"] as? [String: Any])?["PCR0"] as? String
            #expect(tamperedPCR0 != nil && tamperedPCR0 != f.pcr0)

            let (collaboration, digest) = try await f.propose(rounds: 3)
            for party in f.parties.indices { try await f.approve(party, collaboration, digest: digest) }
            let job = try await f.startJob(collaboration)
            let ended = try await f.waitForJob(job)
            #expect(ended["status"] as? String == "failed", "\(ended)")
            #expect(Self.errorCode(ended) == "attestation.pcr_mismatch", "\(ended)")
            #expect(try await f.enclaveProcesses().isEmpty)

            // `job watch` on the finished job prints the reason and exits 1.
            let watched = try await f.cli(Self.retailer, ["job", "watch", job])
            #expect(watched.status == 1, "\(watched)")
            #expect(watched.stdout.contains("state failed"), "\(watched)")
            #expect(watched.stderr.hasPrefix("error: job \(job) failed: attestation.pcr_mismatch: "), "\(watched)")

            // No key was released, no output exists, no receipt.
            let audit = try await f.audit(collaboration)
            #expect(!audit.contains { $0.action == "job.key_release" })
            #expect(audit.contains { $0.action == "job.failed" && $0.details["code"] == "attestation.pcr_mismatch" })
            #expect(!audit.contains { $0.action == "job.running" || $0.action == "job.output" })
            for party in f.parties.indices { #expect(try await Self.outputs(f, job, as: party).isEmpty) }
            let receipt = try await f.http("GET", "/v1/jobs/\(job)/receipt", as: Self.bank)
            #expect(receipt.status == 409)
            #expect(Fixture.error(receipt)?.code == "receipt_unavailable")
        }
    }

    // MARK: 3b. A dataset that violates its declared schema

    @Test func schemaViolationFailsTheJobNamingColumnAndRuleWithoutAnyRowValue() async throws {
        let badValue = "7x9q-not-a-number"
        let badLine = 40
        try await Fixture.with(editCSV: { party, csv in
            guard party == JobAPIFixture.retailer else { return csv }
            var lines = csv.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            var fields = lines[badLine].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            fields[1] = badValue  // monthly_spend, declared float
            lines[badLine] = fields.joined(separator: ",")
            return lines.joined(separator: "\n")
        }) { f in
            let csv = try String(contentsOf: f.root.appendingPathComponent("plaintext/shopmart.csv"), encoding: .utf8)
            let rowID = try #require(csv.split(separator: "\n")[badLine].split(separator: ",").first.map(String.init))
            let (collaboration, digest) = try await f.propose(rounds: 3)
            for party in f.parties.indices { try await f.approve(party, collaboration, digest: digest) }
            let job = try await f.startJob(collaboration)
            let ended = try await f.waitForJob(job)
            #expect(ended["status"] as? String == "failed", "\(ended)")
            #expect(Self.errorCode(ended) == "enclave.schema_violation", "\(ended)")
            let message = Self.errorMessage(ended)
            let dataset = f.parties[Self.retailer].datasetID
            #expect(message == "dataset \(dataset): column 'monthly_spend' row \(badLine) fails rule 'type float'")
            let watched = try await f.cli(Self.bank, ["job", "watch", job])
            #expect(watched.status == 1)
            #expect(watched.stderr.hasPrefix("error: job \(job) failed: enclave.schema_violation: "), "\(watched)")
            // Neither the value nor the row's id appears in what the parties see or the server logged.
            for text in [message, watched.stdout, watched.stderr, f.serverLog()] {
                #expect(!text.contains(badValue) && !text.contains(rowID))
            }
            for party in f.parties.indices { #expect(try await Self.outputs(f, job, as: party).isEmpty) }
            #expect(try await f.enclaveProcesses().isEmpty)
        }
    }

    // MARK: 3c. Progress shows the training loss only to parties granted the metrics

    /// The last training loss is the model's training log-loss, which the metrics report: a party the
    /// policy grants no `metrics` sees the progress without it (an adversarial review found every
    /// member's event stream carried it).
    @Test func progressShowsTheTrainingLossOnlyToPartiesGrantedTheMetrics() async throws {
        try await Fixture.with { f in
            let (collaboration, digest) = try await f.propose(rounds: 3, retailerArtifacts: ["scores:own"])
            for party in f.parties.indices { try await f.approve(party, collaboration, digest: digest) }
            let job = try await f.startJob(collaboration)
            let ended = try await f.waitForJob(job)
            #expect(ended["status"] as? String == "succeeded", "\(ended)\n\(f.serverLog())")
            let bank = try await f.http("GET", "/v1/jobs/\(job)/events", as: Self.bank)
            let retailer = try await f.http("GET", "/v1/jobs/\(job)/events", as: Self.retailer)
            for response in [bank, retailer] {
                #expect(response.status == 200)
                #expect(response.bodyText.contains(#""phase":"training""#), "\(response.bodyText.prefix(600))")
            }
            #expect(bank.bodyText.contains(#""loss":"#), "\(bank.bodyText.prefix(600))")
            #expect(!retailer.bodyText.contains(#""loss""#), "\(retailer.bodyText.prefix(600))")
            // The same events otherwise, in the same order with the same ids.
            let ids = { (text: String) in text.split(separator: "\n").filter { $0.hasPrefix("id: ") } }
            #expect(ids(bank.bodyText) == ids(retailer.bodyText))
        }
    }

    // MARK: 4. Cancel mid-run

    @Test func cancelMidTrainingEndsTheJobAndTheEnclaveAndWatchReportsIt() async throws {
        try await Fixture.with { f in
            let (collaboration, digest) = try await f.propose(rounds: Self.longRounds)
            for party in f.parties.indices { try await f.approve(party, collaboration, digest: digest) }
            let job = try await f.startJob(collaboration)
            let (watch, out, err) = try f.spawnCLI(Self.retailer, ["job", "watch", job], name: "watch-cancel")
            defer { watch.kill() }
            #expect(try await f.waitFor("progress training", in: out), "\(f.serverLog())")
            let trainingSeen = Date()
            #expect(try await f.enclaveProcesses().count == 1)

            // A second watcher, in JSON, is interrupted (Ctrl-C): it says the job goes on, and it does.
            let (interrupted, jsonOut, jsonErr) = try f.spawnCLI(Self.bank, ["job", "watch", job, "--json"], name: "watch-interrupt")
            defer { interrupted.kill() }
            #expect(try await f.waitFor("\"progress\"", in: jsonOut), "\(f.serverLog())")
            interrupted.kill(SIGINT)
            #expect(try await offPool { interrupted.wait() } == 130)
            let said = (try? String(contentsOf: jsonErr, encoding: .utf8)) ?? ""
            #expect(said.contains("stopped watching; job \(job) keeps running (`cleanroom job cancel \(job)` stops it)"), "\(said)")
            let events = ((try? String(contentsOf: jsonOut, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            #expect(!events.isEmpty && events.allSatisfy { $0["jobId"] as? String == job && $0["receivedAt"] is String }, "\(events)")
            #expect(events.contains { $0["id"] is String }, "\(events)")
            #expect(try await f.enclaveProcesses().count == 1, "the job goes on")

            // Its status shows how far it got (never the loss); its outputs say why there are none yet.
            let running = try await f.cli(Self.retailer, ["job", "status", job])
            #expect(running.status == 0 && running.stdout.hasPrefix("job \(job): running · training "), "\(running)")
            let statusJSON = try await f.cli(Self.retailer, ["job", "status", job, "--json"]).json()
            let progress = try #require(statusJSON["progress"] as? [String: Any], "\(statusJSON)")
            #expect(progress["phase"] as? String == "training" && progress["loss"] == nil, "\(progress)")
            let none = try await f.cli(Self.retailer, ["output", "list", job])
            #expect(none.stdout == "job \(job) is running: outputs are delivered once it has succeeded; follow it with `cleanroom job watch \(job)`\n", "\(none)")

            // Meanwhile the first watcher printed plain lines at most once a second per phase, not
            // once per training round (hundreds a second).
            let lines = ((try? String(contentsOf: out, encoding: .utf8)) ?? "").split(separator: "\n")
            let elapsed = Int(Date().timeIntervalSince(trainingSeen).rounded(.up))
            #expect(lines.filter { $0.hasPrefix("progress training") }.count <= elapsed + 2, "\(elapsed) s: \(lines)")

            let cancelled = try await f.cli(Self.bank, ["job", "cancel", job, "--json"])
            #expect(cancelled.status == 0, "\(cancelled)")
            #expect(try cancelled.json()["status"] as? String == "cancelled", "\(cancelled)")
            #expect(try await f.enclaveProcesses().isEmpty)

            let watchStatus = try await offPool { watch.wait() }
            let watchErr = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
            #expect(watchStatus == 1)
            #expect(
                watchErr == "error: job \(job) cancelled: job.cancelled: cancelled by \(f.parties[Self.bank].id)\n",
                "\(watchErr)")
            // It was cancelled while training: nothing was being delivered.
            let watchOut = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            #expect(watchOut.contains("state cancelled") && !watchOut.contains("state delivering"), "\(watchOut)")

            let status = try await f.waitForJob(job, timeout: 5)
            #expect(status["status"] as? String == "cancelled")
            #expect(Self.errorCode(status) == "job.cancelled")
            for party in f.parties.indices { #expect(try await Self.outputs(f, job, as: party).isEmpty) }
            let audit = try await f.audit(collaboration)
            #expect(
                audit.contains { $0.action == "job.cancel_requested" && $0.actorPartyId == f.parties[Self.bank].id })
            #expect(audit.contains { $0.action == "job.cancelled" && $0.subject == job })
            #expect(!audit.contains { $0.action == "job.output" })

            // A finished job cannot be cancelled again.
            let again = try await f.cli(Self.retailer, ["job", "cancel", job])
            #expect(again.status == 1)
            #expect(again.stderr.hasPrefix("error: job_finished: "), "\(again)")
        }
    }

    // MARK: 5. The enclave killed mid-training

    @Test func enclaveKilledMidTrainingFailsTheJobCleanlyAndARetrySucceeds() async throws {
        try await Fixture.with { f in
            let (collaboration, digest) = try await f.propose(rounds: Self.longRounds, maxRuns: 2)
            for party in f.parties.indices { try await f.approve(party, collaboration, digest: digest) }
            let job = try await f.startJob(collaboration)
            let (watch, out, err) = try f.spawnCLI(Self.bank, ["job", "watch", job], name: "watch-kill")
            defer { watch.kill() }
            #expect(try await f.waitFor("progress training", in: out), "\(f.serverLog())")
            let enclaves = try await f.enclaveProcesses()
            let enclave = try #require(enclaves.first, "no enclave child while the job trains")
            #expect(enclaves.count == 1)
            #expect(kill(enclave.pid, SIGKILL) == 0)

            let watchStatus = try await offPool { watch.wait() }
            let watchErr = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
            #expect(watchStatus == 1)
            #expect(watchErr.hasPrefix("error: job \(job) failed: job.enclave_lost: "), "\(watchErr)")
            let watchOut = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            #expect(watchOut.contains("state failed") && !watchOut.contains("state delivering"), "\(watchOut)")
            let ended = try await f.waitForJob(job, timeout: 10)
            #expect(ended["status"] as? String == "failed")
            #expect(Self.errorCode(ended) == "job.enclave_lost", "\(ended)")
            // The killed enclave was reaped (no zombie) and no other was started.
            #expect(try await f.enclaveProcesses().isEmpty)
            for party in f.parties.indices { #expect(try await Self.outputs(f, job, as: party).isEmpty) }

            // A retry of the same policy succeeds and delivers.
            let retry = try await f.startJob(collaboration)
            #expect(retry != job)
            let retried = try await f.waitForJob(retry)
            #expect(retried["status"] as? String == "succeeded", "\(retried)\n\(f.serverLog())")
            #expect(try await Self.outputs(f, retry, as: Self.bank).count == 3)
            #expect(try await f.enclaveProcesses().isEmpty)
            // Both runs counted: the policy's run limit (2) is now used up.
            let third = try await f.http("POST", "/v1/collaborations/\(collaboration)/jobs", as: Self.bank, json: [:])
            #expect(third.status == 409)
            #expect(Fixture.error(third)?.code == "run_limit_reached", "\(third.bodyText)")
        }
    }

    // MARK: 5b. The server killed mid-job

    @Test func serverKilledMidJobTakesItsEnclaveAlongAndARestartFailsTheJobAsInterruptedThenResumesFromItsCheckpoint()
        async throws
    {
        try await Fixture.with { f in
            let (collaboration, digest) = try await f.propose(rounds: Self.longRounds, maxRuns: 2)
            for party in f.parties.indices { try await f.approve(party, collaboration, digest: digest) }
            let job = try await f.startJob(collaboration)
            let (watch, out, err) = try f.spawnCLI(Self.bank, ["job", "watch", job], name: "watch-crash")
            defer { watch.kill() }
            #expect(try await f.waitFor("progress training", in: out), "\(f.serverLog())")
            let enclave = try #require(try await f.enclaveProcesses().first, "no enclave child while the job trains")
            // The enclave seals a checkpoint every 10 rounds; wait until the server has stored one.
            let checkpointStored = try await offPool { () -> Bool in
                let root = f.dataDirectory.appendingPathComponent("objects/objects")
                let deadline = Date().addingTimeInterval(60)
                while Date() < deadline {
                    for dir in (try? FileManager.default.contentsOfDirectory(at: root, includingPropertiesForKeys: nil)) ?? [] {
                        let key = (try? String(contentsOf: dir.appendingPathComponent("key"), encoding: .utf8)) ?? ""
                        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
                        if key.hasPrefix("checkpoints/\(collaboration)/"), files.contains(where: { $0.hasSuffix(".data") }) {
                            return true
                        }
                    }
                    Thread.sleep(forTimeInterval: 0.05)
                }
                return false
            }
            #expect(checkpointStored, "no checkpoint was stored while the job trained")

            // The operator's server dies (SIGKILL: no shutdown code runs). The enclave loses its
            // channel and exits by itself; the watcher says it lost the connection and keeps trying.
            try await f.stop(signal: SIGKILL, leaveEnclaves: true)
            #expect(try await f.waitForEnclaveExit(enclave.pid, timeout: 15), "the enclave outlived its server")
            #expect(try await f.waitFor("reconnecting", in: err, timeout: 15))
            #expect(watch.isRunning, "the watcher gave up while the server was away")

            // Restarted on the same data directory, the server fails the interrupted job cleanly,
            // and the watcher, back in touch, reports that and exits 1 (it used to exit 3 at once).
            try await f.start()
            let ended = try await f.waitForJob(job, timeout: 5)
            #expect(ended["status"] as? String == "failed", "\(ended)")
            #expect(Self.errorCode(ended) == "job.interrupted", "\(ended)")
            let watchStatus = try await offPool { watch.wait() }
            let watchErr = (try? String(contentsOf: err, encoding: .utf8)) ?? ""
            #expect(watchStatus == 1, "\(watchErr)")
            #expect(watchErr.hasSuffix("error: job \(job) failed: job.interrupted: \(Self.errorMessage(ended))\n"), "\(watchErr)")
            let watched = try await f.cli(Self.retailer, ["job", "watch", job])
            #expect(watched.status == 1, "\(watched)")
            #expect(watched.stderr.hasPrefix("error: job \(job) failed: job.interrupted: "), "\(watched)")
            #expect(try await f.enclaveProcesses().isEmpty)
            for party in f.parties.indices { #expect(try await Self.outputs(f, job, as: party).isEmpty) }

            // A new start resumes from the sealed checkpoint the crashed job left, and delivers.
            let retry = try await f.startJob(collaboration)
            let retried = try await f.waitForJob(retry)
            #expect(retried["status"] as? String == "succeeded", "\(retried)\n\(f.serverLog())")
            #expect(try await Self.outputs(f, retry, as: Self.bank).count == 3)
            #expect(try await f.enclaveProcesses().isEmpty)
            let keyReleases = try await f.audit(collaboration).filter { $0.action == "job.checkpoint_key" }
            let resumed = { (job: String) in
                keyReleases.first { $0.subject == job }.map { ["true", "1"].contains($0.details["resumed"] ?? "") }
            }
            #expect(resumed(job) == false, "\(keyReleases)")
            #expect(resumed(retry) == true, "the retry did not resume from the checkpoint: \(keyReleases)")
        }
    }

    // MARK: 6. A party key forged by the operator: the owner-key binding fails inside the enclave

    @Test func operatorForgedPartyKeyCannotMakeTheEnclaveUseThatPartysData() async throws {
        try await Fixture.with { f in
            let victim = f.parties[Self.retailer]
            // The operator makes keys of its own, then — with the server stopped — swaps them in for
            // the retailer's in the database (the result key too, so that the retailer's outputs would
            // be encrypted to it) and mints itself a credential of the retailer's principal (only
            // hashes are stored, so it adds its own).
            let operatorHome = f.root.appendingPathComponent("operator-machine")
            let keys = try await f.cli(home: operatorHome, ["keys", "init", "--result-key-bits", "3072", "--json"])
            #expect(keys.status == 0, "\(keys)")
            let shown = try await f.cli(home: operatorHome, ["keys", "show", "--json"]).json()
            let forgedKey = try #require(shown["signingKey"] as? String)
            let forgedFingerprint = try #require(shown["signingKeyFingerprint"] as? String)
            let forgedResultKey = try #require(shown["resultKey"] as? String)
            #expect(forgedFingerprint != victim.fingerprint)
            let forgedCredential = "operator-forged-\(UUID().uuidString)"

            try await f.stop()
            let edit = try await f.python(
                """
                import hashlib, sqlite3, sys, time
                db = sqlite3.connect(sys.argv[1])
                party, key, fingerprint, secret, result = sys.argv[2:7]
                (principal,) = db.execute(
                    "SELECT id FROM principal WHERE partyId = ? ORDER BY createdAt LIMIT 1", (party,)).fetchone()
                changed = db.execute("UPDATE party SET signingKey = ?, signingKeyFingerprint = ?, resultKey = ? WHERE id = ?",
                                     (key, fingerprint, result, party)).rowcount
                db.execute("INSERT INTO credential (id, principalId, secretHash, createdAt) VALUES (?, ?, ?, ?)",
                           ("cr-forged", principal, hashlib.sha256(secret.encode()).hexdigest(), int(time.time())))
                db.commit()
                print(principal, changed)
                """,
                [
                    f.dataDirectory.appendingPathComponent("cleanroom.sqlite").path, victim.id, forgedKey,
                    forgedFingerprint,
                    forgedCredential, forgedResultKey,
                ])
            #expect(edit.status == 0, "\(edit)")
            let principal = try #require(edit.stdout.split(separator: " ").first.map(String.init))
            #expect(edit.stdout.hasSuffix(" 1\n"), "\(edit)")
            try await f.start()
            let profile: [String: Any] = [
                "server": f.url, "partyId": victim.id, "principalId": principal, "credential": forgedCredential,
            ]
            let profileURL = operatorHome.appendingPathComponent("profiles/default.json")
            try FileManager.default.createDirectory(
                at: profileURL.deletingLastPathComponent(), withIntermediateDirectories: true)
            try JSONSerialization.data(withJSONObject: profile).write(to: profileURL)

            // The bank proposes; the server fills in the (forged) key it holds for the retailer.
            let (collaboration, digest) = try await f.propose(rounds: 3)
            let shownPolicy = try await f.http("GET", "/v1/collaborations/\(collaboration)", as: Self.bank)
            #expect(shownPolicy.bodyText.contains(forgedFingerprint))
            try await f.approve(Self.bank, collaboration, digest: digest)
            // The real retailer's CLI notices the policy names another key and does not approve…
            let honest = try await f.cli(
                Self.retailer, ["policy", "approve", collaboration, "--digest", digest, "--yes"])
            #expect(honest.status == 1)
            #expect(honest.stderr.contains("names a different approval key"), "\(honest)")
            // …but the operator approves in the retailer's name with the forged key, and the server accepts it.
            let forged = try await f.cli(
                home: operatorHome, ["policy", "approve", collaboration, "--digest", digest, "--yes", "--json"])
            #expect(forged.status == 0, "\(forged)")

            // The job starts (the server trusts its own database), but the retailer's KMS key releases
            // nothing: the retailer approved no policy on this enclave image, so its key policy lists none.
            let refused = try await f.waitForJob(try await f.startJob(collaboration))
            #expect(Self.errorCode(refused) == "key_release.refused", "\(refused)")
            #expect(Self.errorMessage(refused).contains("AccessDeniedException"), "\(refused)")
            #expect(Self.errorMessage(refused).contains("cleanroom kms allow-image"), "the error says what to do: \(refused)")

            // Had the retailer trusted this image already (say, for another collaboration), KMS would
            // release — and the enclave still refuses the retailer's data.
            let allowed = try await f.cli(Self.retailer, ["kms", "allow-image", f.pcr0, "--json"])
            #expect(allowed.status == 0, "\(allowed)")
            let job = try await f.startJob(collaboration)
            let ended = try await f.waitForJob(job)
            #expect(ended["status"] as? String == "failed", "\(ended)")
            #expect(Self.errorCode(ended) == "enclave.binding_mismatch", "\(ended)")
            #expect(
                Self.errorMessage(ended)
                    == "dataset \(victim.datasetID): no approval of this policy is signed by the owner key its "
                    + "encryption context names",
                "\(ended)")
            #expect(
                !Self.errorMessage(ended).contains(victim.fingerprint)
                    && !Self.errorMessage(ended).contains(forgedFingerprint))
            for party in f.parties.indices { #expect(try await Self.outputs(f, job, as: party).isEmpty) }
            let audit = try await f.audit(collaboration)
            #expect(!audit.contains { $0.action == "job.output" })
            #expect(try await f.enclaveProcesses().isEmpty)
        }
    }

    // MARK: 7. Watching a finished job, and replay after Last-Event-ID

    /// One Server-Sent Event of a raw `text/event-stream` body.
    struct Event: Equatable {
        var id: Int
        var name: String
        var data: String
    }

    static func events(_ body: String) -> [Event] {
        body.components(separatedBy: "\n\n").compactMap { block in
            var event = Event(id: 0, name: "", data: "")
            var any = false
            for line in block.split(separator: "\n") where !line.hasPrefix(":") {
                any = true
                if line.hasPrefix("id: ") { event.id = Int(line.dropFirst(4)) ?? -1 }
                if line.hasPrefix("event: ") { event.name = String(line.dropFirst(7)) }
                if line.hasPrefix("data: ") { event.data = String(line.dropFirst(6)) }
            }
            return any ? event : nil
        }
    }

    static func state(_ event: Event) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any])?["state"] as? String
    }

    @Test func watchingAFinishedJobPrintsItsFinalStateAndEventsReplayOnlyAfterLastEventID() async throws {
        try await Fixture.with { f in
            let (collaboration, digest) = try await f.propose(rounds: 6)
            for party in f.parties.indices { try await f.approve(party, collaboration, digest: digest) }
            let job = try await f.startJob(collaboration)
            let ended = try await f.waitForJob(job)
            #expect(ended["status"] as? String == "succeeded", "\(ended)\n\(f.serverLog())")

            // `job watch` of the finished job: its final state, exit 0.
            let watched = try await f.cli(Self.retailer, ["job", "watch", job])
            #expect(watched.status == 0, "\(watched)")
            let lines = watched.stdout.split(separator: "\n").map(String.init)
            #expect(
                lines.suffix(2) == [
                    "state succeeded",
                    "job \(job) succeeded: download your results with `cleanroom output download \(job) --out DIR`",
                ], "\(watched)")
            let json = try await f.cli(Self.retailer, ["job", "watch", job, "--json"])
            #expect(json.status == 0)
            let last =
                try JSONSerialization.jsonObject(with: Data((json.stdout.split(separator: "\n").last ?? "").utf8))
                as? [String: Any]
            #expect(last?["event"] as? String == "state")
            #expect((last?["data"] as? [String: Any])?["state"] as? String == "succeeded", "\(json)")

            // The raw event stream: every event, ids increasing, from pending to succeeded.
            let all = try await f.http("GET", "/v1/jobs/\(job)/events", as: Self.retailer)
            #expect(all.status == 200)
            #expect(all.header("content-type")?.hasPrefix("text/event-stream") == true)
            let events = Self.events(all.bodyText)
            let ids = events.map(\.id)
            #expect(ids == ids.sorted() && Set(ids).count == ids.count && !ids.isEmpty, "\(ids)")
            let states = events.compactMap(Self.state)
            #expect(states == ["pending", "attesting", "running", "delivering", "succeeded"], "\(states)")
            #expect(events.contains { $0.name == "progress" && $0.data.contains("\"training\"") })

            // With Last-Event-ID, only the later events, exactly as first sent.
            let middle = ids[ids.count / 2]
            let later = try await f.http(
                "GET", "/v1/jobs/\(job)/events", as: Self.retailer, headers: [("Last-Event-ID", "\(middle)")])
            #expect(later.status == 200)
            #expect(Self.events(later.bodyText) == events.filter { $0.id > middle })
            let none = try await f.http(
                "GET", "/v1/jobs/\(job)/events", as: Self.bank, headers: [("Last-Event-ID", "\(ids.last!)")])
            #expect(none.status == 200)
            #expect(Self.events(none.bodyText).isEmpty, "\(none.bodyText)")

            // After a restart the server has no replay: it answers the final state alone, and watch still exits 0.
            try await f.stop()
            try await f.start()
            let afterRestart = Self.events(
                try await f.http("GET", "/v1/jobs/\(job)/events", as: Self.retailer).bodyText)
            #expect(afterRestart.compactMap(Self.state) == ["succeeded"], "\(afterRestart)")
            #expect(afterRestart.count == 1)
            // A reconnecting client's ids never go backwards.
            let resumed = Self.events(
                try await f.http(
                    "GET", "/v1/jobs/\(job)/events", as: Self.retailer, headers: [("Last-Event-ID", "\(middle)")]
                ).bodyText)
            #expect(resumed.map(\.id) == [middle + 1], "\(resumed)")
            // An id out of range is read as the largest there is, or as none: no crash (Int.max
            // killed the server, its successor overflowing), and the server answers on.
            for (header, id) in [
                ("9223372036854775807", 1 << 53), ("99999999999999999999999", 1 << 53), ("9007199254740992", 1 << 53),
                ("-5", 1), ("1e3", 1),
            ] {
                let odd = try await f.http(
                    "GET", "/v1/jobs/\(job)/events", as: Self.retailer, headers: [("Last-Event-ID", header)])
                #expect(odd.status == 200, "\(header)")
                #expect(Self.events(odd.bodyText).map(\.id) == [id], "\(header): \(odd.bodyText)")
            }
            let watchedAgain = try await f.cli(Self.bank, ["job", "watch", job])
            #expect(watchedAgain.status == 0, "\(watchedAgain)")
            // Without a valid credential nothing is streamed.
            let stranger = try await f.http("GET", "/v1/jobs/\(job)/events", token: "not-a-credential")
            #expect(stranger.status == 401)
        }
    }
}
