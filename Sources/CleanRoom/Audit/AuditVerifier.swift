import Foundation

/// Verifies an audit log offline: every entry's hash, every link, contiguous sequence numbers, and
/// every checkpoint's signature and position in the chain.
///
/// Works on the full log (operator, `cleanroomd audit verify`) and on a party's proof, where the
/// entries it may not read appear only as links: (seq, prevHash, tag, content digest, hash) for
/// format-2 entries, whose hash the verifier recomputes; (seq, prevHash, hash) for format-1 ones.
public struct AuditVerifier: Sendable {
    /// What is wrong with a log; `seq` is the first entry where the chain breaks.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public enum Code: String, Sendable {
            case entryEdited = "audit_entry_edited"
            case entryMissing = "audit_entry_missing"
            case chainBroken = "audit_chain_broken"
            case checkpointInvalid = "audit_checkpoint_invalid"
            case checkpointMismatch = "audit_checkpoint_mismatch"
            case checkpointBeyondChain = "audit_checkpoint_beyond_chain"
            case noCheckpoint = "audit_no_checkpoint"
            case linkIncomplete = "audit_link_incomplete"
            case entryWithheld = "audit_entry_withheld"
        }
        public let code: Code
        public let seq: Int64
        public let message: String
        public var description: String { "\(code.rawValue) at entry \(seq): \(message)" }
    }

    /// One link of the chain: an entry reduced to its position and hashes.
    public struct Link: Codable, Sendable, Equatable {
        public var seq: Int64
        public var prevHash: String
        public var hash: String
        /// Format 2: the entry's collaboration tag (`AuditEntry.tag`); nil for format 1.
        public var tag: String?
        /// Format 2: SHA-256 of the entry's canonical fields; nil for format 1.
        public var content: String?
        public init(seq: Int64, prevHash: String, hash: String, tag: String? = nil, content: String? = nil) {
            self.seq = seq
            self.prevHash = prevHash
            self.hash = hash
            self.tag = tag
            self.content = content
        }
    }

    /// The result of a successful verification.
    public struct Report: Sendable, Equatable {
        public let entries: Int
        public let checkpoints: Int
        /// The last sequence number covered by a valid signed checkpoint.
        public let signedThrough: Int64
        public let headHash: String
    }

    let key: SigningPublicKey

    /// A verifier trusting checkpoints signed by `publicKeyPEM` (the server's audit key).
    public init(publicKeyPEM: String) throws {
        key = try SigningPublicKey(pem: publicKeyPEM)
    }

    /// Verifies a full log: `entries` as stored (any order; they are checked by sequence number).
    public func verify(entries: [AuditEntry], checkpoints: [AuditCheckpoint], requireCheckpoint: Bool = true) throws
        -> Report
    {
        var ordered = entries.sorted { $0.seq < $1.seq }.makeIterator()
        return try verify(nextEntry: { ordered.next() }, checkpoints: checkpoints, requireCheckpoint: requireCheckpoint)
    }

    /// Verifies a full log read one entry at a time in sequence order (a database cursor), so that
    /// a log of any length is checked in memory that grows with its checkpoints only.
    public func verify(
        nextEntry: () throws -> AuditEntry?, checkpoints: [AuditCheckpoint], requireCheckpoint: Bool = true
    ) throws -> Report {
        try verify(
            nextLink: {
                guard let entry = try nextEntry() else { return nil }
                // Every entry's content must match its hash.
                guard entry.computedHash == entry.hash else {
                    throw Failure(code: .entryEdited, seq: entry.seq, message: "the entry's content does not match its hash")
                }
                return entry.link
            }, checkpoints: checkpoints, requireCheckpoint: requireCheckpoint, requireSignedHead: false)
    }

    /// Verifies a chain of links (some entries may be present in full elsewhere and checked by the
    /// caller). With `requireSignedHead` the last link must be covered by a signed checkpoint, as
    /// in a proof the server hands out (it signs its head first), so that no checkpoint can be
    /// left out.
    public func verify(
        links unordered: [Link], checkpoints: [AuditCheckpoint], requireCheckpoint: Bool = true, requireSignedHead: Bool = false
    ) throws -> Report {
        // Storage order is not trusted: the chain is walked by sequence number, which the hash covers.
        var ordered = unordered.sorted { $0.seq < $1.seq }.makeIterator()
        return try verify(
            nextLink: { ordered.next() }, checkpoints: checkpoints, requireCheckpoint: requireCheckpoint,
            requireSignedHead: requireSignedHead)
    }

    /// The walk both forms share: links in sequence order, keeping only the hashes checkpoints name.
    private func verify(
        nextLink: () throws -> Link?, checkpoints unordered: [AuditCheckpoint], requireCheckpoint: Bool, requireSignedHead: Bool
    ) throws -> Report {
        let checkpoints = unordered.sorted { $0.seq < $1.seq }
        let signedSeqs = Set(checkpoints.map(\.seq))
        // The first link without its tag from where any checkpoint says format 2 begins (judged below,
        // once the checkpoints' signatures are known to be good).
        let claimedFormatSince = checkpoints.compactMap(\.formatSince).min()
        var firstBare: Int64?
        var previous = AuditEntry.genesisHash
        var hashes: [Int64: String] = [:]
        var count: Int64 = 0
        while let link = try nextLink() {
            let expectedSeq = count + 1
            guard link.seq == expectedSeq else {
                throw Failure(
                    code: .entryMissing, seq: expectedSeq,
                    message: "entry \(expectedSeq) is missing (the next entry is \(link.seq))")
            }
            guard link.prevHash == previous else {
                throw Failure(code: .chainBroken, seq: link.seq, message: "the entry does not follow its predecessor")
            }
            if let tag = link.tag, let content = link.content,
                AuditEntry.linkHash(prevHash: link.prevHash, tag: tag, content: content) != link.hash
            {
                throw Failure(code: .entryEdited, seq: link.seq, message: "the link's hash does not match its tag and content")
            }
            if firstBare == nil, let since = claimedFormatSince, link.seq >= since, link.tag == nil || link.content == nil {
                firstBare = link.seq
            }
            previous = link.hash
            if signedSeqs.contains(link.seq) { hashes[link.seq] = link.hash }
            count = link.seq
        }
        var signedThrough: Int64 = 0
        var formatSince: Int64?
        for checkpoint in checkpoints {
            guard let signature = Data(base64Encoded: checkpoint.signature),
                key.isValidSignature(Array(signature), for: checkpoint.message),
                checkpoint.keyFingerprint == key.fingerprint
            else {
                throw Failure(
                    code: .checkpointInvalid, seq: checkpoint.seq,
                    message: "the checkpoint's signature does not verify with the server's audit key")
            }
            guard let hash = hashes[checkpoint.seq] else {
                // A signed checkpoint beyond the end of the chain: entries were removed from the tail.
                throw Failure(
                    code: .checkpointBeyondChain, seq: checkpoint.seq,
                    message: "a signed checkpoint covers entry \(checkpoint.seq) but the log ends at \(count)")
            }
            guard hash == checkpoint.hash else {
                throw Failure(
                    code: .checkpointMismatch, seq: checkpoint.seq,
                    message: "the chain differs from what the server signed at entry \(checkpoint.seq)")
            }
            if let since = checkpoint.formatSince {
                guard formatSince == nil || formatSince == since else {
                    throw Failure(
                        code: .checkpointInvalid, seq: checkpoint.seq,
                        message: "signed checkpoints disagree on the first entry of format 2 (\(formatSince!) and \(since))")
                }
                formatSince = since
            }
            signedThrough = max(signedThrough, checkpoint.seq)
        }
        if requireCheckpoint, count > 0, signedThrough == 0 {
            throw Failure(code: .noCheckpoint, seq: 0, message: "no signed checkpoint covers the log")
        }
        if requireSignedHead, count > 0, signedThrough != count {
            throw Failure(code: .noCheckpoint, seq: count, message: "no signed checkpoint covers the head of the chain")
        }
        // From the first format-2 entry the server signed on, every link must show its tag.
        if let formatSince, let bare = firstBare {
            throw Failure(
                code: .linkIncomplete, seq: bare,
                message: "the entry is shown without its collaboration tag, though every entry from \(formatSince) on has one")
        }
        return Report(
            entries: Int(count), checkpoints: checkpoints.count, signedThrough: signedThrough, headHash: previous)
    }
}
