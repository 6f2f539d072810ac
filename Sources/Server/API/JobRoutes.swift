import AWS
import CleanRoom
import Crypto
import Enclave
import Foundation
import HTTPServer

/// The job operations of the permission table (issue #8): start, list, status, live progress
/// (Server-Sent Events), cancel, outputs (listed and streamed to their recipient only), the
/// receipt, the attestation document, and the policy and approval bundle a job's enclave received.
struct JobRoutes {
    /// nil when this server runs no jobs (then every job operation answers 503 `jobs_unavailable`).
    let manager: JobManager?

    /// Largest stored job document (receipt, attestation document, approval bundle) served.
    static let documentLimit = 4 << 20
    /// Seconds between SSE comment lines that keep an idle stream (and proxies) alive.
    static let heartbeatSeconds: UInt64 = 15

    func handlers() -> [String: GovernanceRoutes.Operation] {
        let operations: [String: @Sendable (JobManager, Request, Caller) async throws -> Response] = [
            "startJob": { manager, request, caller in
                let collaborationId = try request.pathParameters.require("collaborationId")
                let job = try await manager.start(
                    collaborationId: collaborationId, caller: caller, expectedDigest: try await Self.pinnedDigest(request))
                return try Response.json(JobBody(job), status: .created)
            },
            "listJobs": { manager, request, caller in
                let collaborationId = try request.pathParameters.require("collaborationId")
                let jobs = try await GovernanceRoutes.blocking {
                    try manager.jobs.jobs(collaborationId: collaborationId, caller: caller)
                }
                return try Response.json(ItemList(items: jobs.map { JobBody($0) }))
            },
            "getJob": { manager, request, caller in
                let job = try await Self.job(manager, request, caller)
                return try Response.json(JobBody(job, progress: manager.hub.latestProgress(jobID: job.id)))
            },
            "watchJob": { manager, request, caller in
                try await Self.events(manager, request, caller)
            },
            "cancelJob": { manager, request, caller in
                let id = try request.pathParameters.require("jobId")
                return try Response.json(JobBody(try await manager.cancel(jobID: id, caller: caller)))
            },
            "listOutputs": { manager, request, caller in
                let id = try request.pathParameters.require("jobId")
                let outputs = try await GovernanceRoutes.blocking { try manager.jobs.outputs(jobID: id, caller: caller) }
                return try Response.json(ItemList(items: outputs.map(OutputBody.init)))
            },
            "downloadOutput": { manager, request, caller in
                try await Self.download(manager, request, caller)
            },
            "getReceipt": { manager, request, caller in
                let job = try await Self.job(manager, request, caller)
                try Self.requireSucceeded(job)
                return try await Self.document(
                    manager, StoredJobSink.receiptKey(jobID: job.id), job: job, type: "application/json", what: "receipt")
            },
            "getJobAttestation": { manager, request, caller in
                let job = try await Self.job(manager, request, caller)
                return try await Self.document(
                    manager, StoredJobSink.attestationKey(jobID: job.id), job: job, type: "application/cbor",
                    what: "attestation document")
            },
            "getJobPolicy": { manager, request, caller in
                let job = try await Self.job(manager, request, caller)
                let canonical = try await GovernanceRoutes.blocking { try manager.jobs.policy(of: job) }
                return Response(
                    status: .ok, headers: ["Content-Type": "application/json", "X-Policy-Digest": job.policyDigest],
                    body: .bytes(Array(canonical.utf8)))
            },
            "getApprovalBundle": { manager, request, caller in
                let job = try await Self.job(manager, request, caller)
                return try await Self.document(
                    manager, JobManager.approvalBundleKey(jobID: job.id), job: job, type: "application/json",
                    what: "approval bundle")
            },
        ]
        let manager = self.manager
        return operations.mapValues { operation in
            { request, caller in
                guard let caller else { throw APIAuthorizer.unauthenticated }
                guard let manager else {
                    return Response.errorJSON(
                        status: .serviceUnavailable, code: "jobs_unavailable",
                        message: "this server was started without an enclave launcher, so it runs no jobs")
                }
                return try await operation(manager, request, caller)
            }
        }
    }

    /// The body of `POST /v1/collaborations/{id}/jobs`: empty, `{}`, or the digest of the policy the
    /// caller reviewed (returned), which must still be the current one (`policy_changed` otherwise).
    /// Anything else is a 400, so a misspelt option never starts a job that counts against the run limit.
    static func pinnedDigest(_ request: Request) async throws -> String? {
        let bytes = try await request.body.collect(upTo: 1 << 16)
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return nil }
        let body: JSONValue
        do {
            body = try JSONParser.parse(bytes, limits: .request)
        } catch let error as JSONParser.Error {
            throw DomainError(.invalidInput, "invalid_json", error.description)
        }
        guard case .object(let members) = body else {
            throw DomainError(.invalidInput, "invalid_json", "the body must be a JSON object: {} or {\"policyDigest\": \"…\"}")
        }
        if let (unknown, _) = members.first(where: { $0.0 != "policyDigest" }) {
            throw DomainError(.invalidInput, "invalid_json", "unknown field \(unknown): a job start takes only policyDigest")
        }
        guard let digest = body["policyDigest"] else { return nil }
        guard let text = digest.stringValue, text.count == 64, Hex.decode(text) != nil else {
            throw DomainError(.invalidInput, "invalid_json", "policyDigest must be 64 hex digits (a SHA-256)")
        }
        return text
    }

    static func job(_ manager: JobManager, _ request: Request, _ caller: Caller) async throws -> Job {
        let id = try request.pathParameters.require("jobId")
        return try await GovernanceRoutes.blocking { try manager.jobs.job(id: id, caller: caller) }
    }

    /// Event ids go up to 2^53 (a JSON-safe integer). A client's `Last-Event-ID` of digits is read
    /// as at most 2^53 - 1, so the id after it is still one (a review crashed the server with
    /// Int.max, whose successor overflowed); anything else replays from the start.
    static let maxEventID = 1 << 53

    static func lastEventID(_ header: String?) -> Int {
        guard let text = header?.trimmingCharacters(in: .whitespaces), !text.isEmpty,
            text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
        else { return 0 }
        return min(Int(text) ?? Int.max, maxEventID - 1)
    }

    /// `text/event-stream`: the job's state changes and progress (replayed from the start, or after
    /// `Last-Event-ID`), live until the job ends; a comment line every 15 s while nothing happens.
    /// The training loss is left out of the progress of a party the policy grants no `metrics`:
    /// the last one is the model's training log-loss, which the metrics report.
    static func events(_ manager: JobManager, _ request: Request, _ caller: Caller) async throws -> Response {
        let job = try await job(manager, request, caller)
        let seesLoss = try await GovernanceRoutes.blocking { try manager.jobs.grantedArtifacts(of: job, caller: caller) }
            .contains("metrics")
        let lastEventID = Self.lastEventID(request.headers["Last-Event-ID"])
        let headers: HTTPHeaders = [
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store", "X-Accel-Buffering": "no",
        ]
        guard let feed = manager.hub.subscribeIfKnown(jobID: job.id) else {
            // Not live in this process: the job ended (or the server restarted); its state is the whole story.
            let state = JobState(rawValue: job.status) ?? .failed
            let event = JobEvent.state(state, JobBody.failure(job.error))
            // Its id follows the client's `Last-Event-ID`, so ids never go backwards for a reconnecting client.
            return Response(status: .ok, headers: headers, body: .string(event.serverSentEvent(id: lastEventID + 1)))
        }
        return Response(
            status: .ok, headers: headers,
            body: .stream { writer in
                enum Item: Sendable {
                    case event(Int, JobEvent)
                    case heartbeat
                }
                let (items, continuation) = AsyncStream<Item>.makeStream()
                let forward = Task {
                    for await (id, event) in feed { continuation.yield(.event(id, event)) }
                    continuation.finish()
                }
                let heartbeat = Task {
                    while !Task.isCancelled {
                        try await Task.sleep(nanoseconds: heartbeatSeconds * 1_000_000_000)
                        continuation.yield(.heartbeat)
                    }
                }
                defer {
                    forward.cancel()
                    heartbeat.cancel()
                }
                try await writer.write(Array(": job \(job.id)\n\n".utf8))
                for await item in items {
                    switch item {
                    case .event(let id, let event) where id > lastEventID:
                        try await writer.write(Array((seesLoss ? event : event.withoutLoss).serverSentEvent(id: id).utf8))
                    case .event: continue
                    case .heartbeat: try await writer.write(Array(": keep-alive\n\n".utf8))
                    }
                }
            })
    }

    /// Streams one output's ciphertext to its recipient, audited as `output.download`. A single
    /// `Range: bytes=…` resumes an interrupted download (206 with `Content-Range`; 416 past the end).
    static func download(_ manager: JobManager, _ request: Request, _ caller: Caller) async throws -> Response {
        let job = try await job(manager, request, caller)
        let outputId = try request.pathParameters.require("outputId")
        let output = try await GovernanceRoutes.blocking {
            try manager.jobs.output(jobID: job.id, outputID: outputId, caller: caller)
        }
        var range: ByteRange?
        switch request.headers["Range"].map({ requestedRange($0, size: output.size) }) ?? .whole {
        case .whole: range = nil
        case .range(let requested): range = requested
        case .unsatisfiable:
            var response = Response.errorJSON(
                status: .rangeNotSatisfiable, code: "range_not_satisfiable",
                message: "the output has \(output.size) bytes; a range must start before that")
            response.headers.set("Content-Range", "bytes */\(output.size)")
            return response
        }
        let download: ObjectDownload
        do {
            download = try await manager.objects.get(key: output.objectKey, versionId: nil, range: range)
        } catch {
            throw DomainError(.internalError, "object_store_failed", "the output could not be read; try again")
        }
        try await GovernanceRoutes.blocking {
            try manager.jobs.auditDownload(output: output, collaborationId: job.collaborationId, caller: caller)
        }
        let filename = output.name.replacingOccurrences(of: ":", with: "-") + ".esdk"
        var headers: HTTPHeaders = [
            "Content-Type": "application/octet-stream", "Content-Disposition": "attachment; filename=\"\(filename)\"",
            "X-Content-SHA256": output.sha256, "Accept-Ranges": "bytes",
        ]
        let length = range.map { Int($0.length ?? (output.size - $0.offset)) } ?? Int(download.info.size)
        if let range {
            headers.set("Content-Range", "bytes \(range.offset)-\(range.offset + Int64(length) - 1)/\(output.size)")
        }
        return Response(
            status: range == nil ? .ok : .partialContent, headers: headers,
            body: .stream(length: length) { writer in
                for try await chunk in download.body { try await writer.write(chunk) }
            })
    }

    enum RangeRequest: Equatable {
        case whole, range(ByteRange), unsatisfiable
    }

    /// The one byte range a `Range` header asks for (`bytes=FIRST-`, `bytes=FIRST-LAST`,
    /// `bytes=-SUFFIX`), clamped to the object. A header that is not a single byte range is ignored
    /// (the whole object is served, as RFC 9110 §14.2 allows); a range starting past the end is unsatisfiable.
    static func requestedRange(_ header: String, size: Int64) -> RangeRequest {
        let value = header.trimmingCharacters(in: .whitespaces)
        guard value.hasPrefix("bytes="), !value.contains(",") else { return .whole }
        let spec = value.dropFirst("bytes=".count).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard spec.count == 2 else { return .whole }
        let first = Int64(spec[0].trimmingCharacters(in: .whitespaces)), last = Int64(spec[1].trimmingCharacters(in: .whitespaces))
        let offset: Int64, end: Int64
        switch (first, last) {
        case (nil, let suffix?) where spec[0].isEmpty && suffix > 0:
            offset = max(0, size - suffix)
            end = size - 1
        case (let first?, nil) where spec[1].isEmpty && first >= 0:
            offset = first
            end = size - 1
        case (let first?, let last?) where first >= 0 && last >= first:
            offset = first
            end = min(last, size - 1)
        default:
            return .whole
        }
        guard offset < size else { return .unsatisfiable }
        return .range(ByteRange(offset: offset, length: end - offset + 1))
    }

    /// A job's receipt is given, as its outputs are listed, only once the job has succeeded: one that
    /// failed or was cancelled may have stored it (the receipt comes last, and a later step can still
    /// fail), but its outputs are discarded and it has no results to prove (409 `receipt_unavailable`).
    static func requireSucceeded(_ job: Job) throws {
        let id = job.id
        let message: String
        switch JobState(rawValue: job.status) {
        case .succeeded?:
            return
        case .failed?:
            message = "job \(id) failed, so it has no receipt (only a job that succeeded has one): "
                + "see why with `cleanroom job status \(id)` and start a new job once the cause is fixed"
        case .cancelled?:
            message =
                "job \(id) was cancelled, so it has no receipt (only a job that succeeded has one): start a new job"
        default:
            message = "job \(id) is \(job.status): it has a receipt once it has succeeded; "
                + "follow it with `cleanroom job watch \(id)`"
        }
        throw DomainError(.conflict, "receipt_unavailable", message)
    }

    /// A small stored document of a job, byte for byte (verifiers hash it).
    static func document(_ manager: JobManager, _ key: String, job: Job, type: String, what: String) async throws
        -> Response
    {
        let bytes: [UInt8]
        do {
            let download = try await manager.objects.get(key: key)
            bytes = try await download.body.collect(limit: documentLimit)
        } catch let error as ObjectStoreError where error.code == .notFound {
            throw DomainError(
                .conflict, "\(what.replacingOccurrences(of: " ", with: "_"))_unavailable",
                "job \(job.id) has no \(what) (it is \(job.status)); a job has one once it "
                    + (what == "approval bundle" ? "started" : "succeeded"))
        } catch {
            throw DomainError(.internalError, "object_store_failed", "the \(what) could not be read; try again")
        }
        return Response(status: .ok, headers: ["Content-Type": type], body: .bytes(bytes))
    }
}

/// A job as the API shows it; a single job while it runs also shows its latest progress (phase,
/// iteration; never the training loss, which the event stream shows to parties granted the metrics).
struct JobBody: Encodable {
    struct Failure: Encodable {
        let code, message: String
    }
    struct Progress: Encodable {
        let phase: String
        let iteration, total: UInt32
        let message: String
    }
    let id, collaborationId, policyDigest, status, createdAt, updatedAt: String
    let error: Failure?
    let progress: Progress?

    init(_ job: Job, progress latest: ProgressEvent? = nil) {
        progress = latest.map { Progress(phase: $0.phase, iteration: $0.iteration, total: $0.total, message: $0.message) }
        id = job.id
        collaborationId = job.collaborationId
        policyDigest = job.policyDigest
        status = job.status
        createdAt = RFC3339.format(job.createdAt)
        updatedAt = RFC3339.format(job.updatedAt)
        error = Self.failure(job.error).map { Failure(code: $0.code, message: $0.message) }
    }

    /// The stored `code: message` of a failed job.
    static func failure(_ stored: String?) -> JobFailure? {
        guard let stored else { return nil }
        guard let range = stored.range(of: ": ") else { return JobFailure(code: "job.failed", message: stored) }
        return JobFailure(code: String(stored[..<range.lowerBound]), message: String(stored[range.upperBound...]))
    }
}

/// An output as its recipient sees it.
struct OutputBody: Encodable {
    let id, jobId, name, recipient, sha256, createdAt: String
    let size: Int64

    init(_ output: Output) {
        id = output.id
        jobId = output.jobId
        name = output.name
        recipient = output.recipientPartyId
        sha256 = output.sha256
        size = output.size
        createdAt = RFC3339.format(output.createdAt)
    }
}
