import Crypto
import Foundation
import Synchronization
import Testing

@testable import Attestation

/// Verifies `bytes` and returns the failure code, or nil if it verified.
private func failure(
    _ bytes: [UInt8],
    roots: [TrustedRoot] = [NitroVector.awsRoot],
    at time: UnixTime,
    _ expectations: AttestationExpectations = AttestationExpectations(maxAgeMilliseconds: nil)
)
    -> AttestationError.Code?
{
    do {
        _ = try AttestationVerifier(trustedRoots: roots, at: time).verify(bytes, expectations: expectations)
        return nil
    } catch {
        return error.code
    }
}

/// Rebuilds a COSE_Sign1 from the original with a changed part; the signature is kept.
private func reassemble(
    _ original: [UInt8],
    protected: [UInt8]? = nil,
    unprotected: CBOR? = nil,
    payload: CBOR? = nil,
    signature: [UInt8]? = nil,
    parts: ((inout [CBOR]) -> Void)? = nil
)
    -> [UInt8]
{
    guard case .array(var items) = try! CBORDecoder.decode(original) else { fatalError() }
    if let protected { items[0] = .bytes(protected) }
    if let unprotected { items[1] = unprotected }
    if let payload { items[2] = payload }
    if let signature { items[3] = .bytes(signature) }
    parts?(&items)
    return CBOREncoder.encode(.array(items))
}

/// Rewrites the payload map (as decoded pairs) and re-encodes it; the signature no longer matches
/// unless a structural check fails first.
private func mutatePayload(_ original: [UInt8], _ change: (inout [(key: CBOR, value: CBOR)]) -> Void) -> [UInt8] {
    guard case .array(let items) = try! CBORDecoder.decode(original), case .bytes(let payload) = items[2],
        case .map(var pairs) = try! CBORDecoder.decode(payload)
    else { fatalError() }
    change(&pairs)
    return reassemble(original, payload: .bytes(CBOREncoder.encode(.map(pairs))))
}

private func setField(_ name: String, _ value: CBOR?) -> (inout [(key: CBOR, value: CBOR)]) -> Void {
    { pairs in
        if let index = pairs.firstIndex(where: { $0.key == .text(name) }) {
            if let value { pairs[index].value = value } else { pairs.remove(at: index) }
        } else if let value {
            pairs.append((.text(name), value))
        }
    }
}

private func field(_ original: [UInt8], _ name: String) -> CBOR {
    guard case .array(let items) = try! CBORDecoder.decode(original), case .bytes(let payload) = items[2] else {
        fatalError()
    }
    return try! CBORDecoder.decode(payload)[text: name]!
}

@Suite struct RealNitroDocumentTests {
    @Test(arguments: NitroVector.all)
    func verifiesAtItsOwnTimestampAgainstTheAWSRootAndDecodesToExpectedValues(vector: NitroVector) throws {
        #expect(Hex.encode(HashFunction.sha256.hash(vector.bytes)) == vector.expected.sha256)
        let verifier = AttestationVerifier(trustedRoots: [NitroVector.awsRoot], at: vector.verifyAt)
        let verified = try verifier.verify(
            vector.bytes,
            expectations: AttestationExpectations(allowDebug: vector.expected.debug_mode)
        )
        #expect(verified.moduleID == vector.expected.module_id)
        #expect(verified.timestamp == vector.expected.timestamp_ms)
        #expect(verified.pcrs == vector.expectedPCRs)
        #expect(verified.pcrs.count == 16)
        #expect(verified.userData == vector.expected.user_data_hex.map { Hex.decode($0)! })
        #expect(verified.nonce == vector.expected.nonce_hex.map { Hex.decode($0)! })
        #expect(verified.publicKey == nil)  // all three documents carry public_key as CBOR null
        #expect(vector.expected.null_fields.contains("public_key"))
        #expect(verified.document.cabundle.count == vector.expected.cabundle_len)
        #expect(verified.chain.certificates.map { $0.subject.description } == vector.expected.chain_subjects)
        #expect(verified.isDebugMode == vector.expected.debug_mode)
        #expect(verified.isDevelopment == false)
        #expect(verified.trustedRoot.sha256Fingerprint == TrustedRoot.awsNitroEnclavesRootG1SHA256)
        #expect(verified.document.cose.isTagged == vector.expected.cose_tagged)
        #expect(verified.document.cose.protectedHeaderBytes == [0xa1, 0x01, 0x38, 0x22])
        #expect(verified.document.cose.unprotectedHeader.isEmpty)
        #expect(verified.pcrHex(0) == vector.expected.pcrs["0"])
        // The payload's first byte tells definite (0xa9) from indefinite (0xbf) maps.
        #expect(
            (verified.document.payload.first == 0xbf) == vector.expected.payload_map_encoding.hasPrefix("indefinite")
        )
    }

    @Test(arguments: NitroVector.all)
    func verifiesTaggedFormAndBase64Independently(vector: NitroVector) throws {
        let tagged = [0xd2] + vector.bytes
        let verified = try AttestationVerifier(trustedRoots: [NitroVector.awsRoot], at: vector.verifyAt)
            .verify(tagged, expectations: AttestationExpectations(allowDebug: true))
        #expect(verified.document.cose.isTagged)
        #expect(try AttestationInput.decode(Array(Data(vector.bytes).base64EncodedString().utf8)) == vector.bytes)
        #expect(try AttestationInput.decode(vector.bytes) == vector.bytes)
    }

    @Test func theEmbeddedAWSRootIsTheVectorsRootAndHasThePublishedFingerprint() {
        #expect(TrustedRoot.awsNitroEnclavesRootG1.certificate == NitroVector.awsRoot.certificate)
        #expect(NitroVector.awsRoot.sha256Fingerprint == TrustedRoot.awsNitroEnclavesRootG1SHA256)
        #expect(TrustedRoot.awsNitroEnclavesRootG1.isDevelopment == false)
    }

    @Test func highSSignaturesVerify() throws {
        for vector in [NitroVector.debug, NitroVector.indefinite] {
            #expect(vector.expected.signature_high_s)
            #expect(
                failure(
                    vector.bytes,
                    at: vector.verifyAt,
                    AttestationExpectations(allowDebug: true, maxAgeMilliseconds: nil)
                ) == nil
            )
        }
    }
}

@Suite struct AttestationMutationTests {
    static let doc = NitroVector.production
    static let time = NitroVector.production.verifyAt

    /// Each mutation of a real document with the code it must be rejected with.
    static let mutations: [(String, [UInt8], AttestationError.Code)] = {
        let b = doc.bytes
        let other = NitroVector.debug.bytes
        guard case .array(let items) = try! CBORDecoder.decode(b), case .bytes(let signature) = items[3] else {
            fatalError()
        }
        var flipped = signature
        flipped[10] ^= 0x01
        let bigBytes = CBOR.bytes([UInt8](repeating: 1, count: 1025))
        guard case .bytes(let certificate) = field(b, "certificate") else { fatalError() }
        var garbled = certificate
        garbled[4] ^= 0xff
        return [
            ("truncated by one byte", Array(b.dropLast()), .malformedCBOR),
            ("truncated to half", Array(b.prefix(b.count / 2)), .malformedCBOR),
            ("empty input", [], .malformedCBOR),
            ("trailing byte", b + [0x00], .malformedCBOR),
            ("not an array", CBOREncoder.encode(.map([])), .malformedCOSE),
            ("array of three", reassemble(b, parts: { $0.removeLast() }), .malformedCOSE),
            ("tag 17 instead of 18", [0xd1] + b, .unexpectedCOSETag),
            ("protected header ES256", reassemble(b, protected: [0xa1, 0x01, 0x26]), .unsupportedAlgorithm),
            ("protected header without alg", reassemble(b, protected: [0xa0]), .unsupportedAlgorithm),
            (
                "protected header alg as text",
                reassemble(b, protected: CBOREncoder.encode(.map([(.unsigned(1), .text("ES384"))]))),
                .unsupportedAlgorithm
            ),
            (
                "protected header with crit", reassemble(b, protected: [0xa2, 0x01, 0x38, 0x22, 0x02, 0x81, 0x01]),
                .unsupportedCriticalHeader
            ),
            ("protected header not a map", reassemble(b, protected: [0x01]), .malformedCOSEHeader),
            (
                "alg in both header buckets", reassemble(b, unprotected: .map([(.unsigned(1), .int(-35))])),
                .malformedCOSEHeader
            ),
            ("unprotected header not a map", reassemble(b, unprotected: .array([])), .malformedCOSE),
            ("detached payload", reassemble(b, payload: .null), .detachedPayload),
            ("signature bit flipped", reassemble(b, signature: flipped), .signatureInvalid),
            ("signature of 95 bytes", reassemble(b, signature: Array(signature.dropLast())), .malformedSignature),
            ("signature all zeros", reassemble(b, signature: [UInt8](repeating: 0, count: 96)), .signatureInvalid),
            (
                "another document's signature",
                reassemble(b, parts: { $0[3] = try! CBORDecoder.decode(other).arrayElement(3) }), .signatureInvalid
            ),
            ("payload is an array", reassemble(b, payload: .bytes(CBOREncoder.encode(.array([])))), .payloadNotMap),
            ("payload is not CBOR", reassemble(b, payload: .bytes([0x1c])), .malformedCBOR),
            (
                "payload with a duplicate key",
                reassemble(b, payload: .bytes([0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02])), .malformedCBOR
            ),
            ("module_id missing", mutatePayload(b, setField("module_id", nil)), .missingField),
            ("module_id as bytes", mutatePayload(b, setField("module_id", .bytes([0x69]))), .wrongFieldType),
            ("module_id empty", mutatePayload(b, setField("module_id", .text(""))), .invalidModuleID),
            (
                "module_id changed",
                mutatePayload(b, setField("module_id", .text("i-0000000000000000-enc0000000000000000"))),
                .signatureInvalid
            ),
            ("digest SHA256", mutatePayload(b, setField("digest", .text("SHA256"))), .unsupportedDigest),
            ("digest missing", mutatePayload(b, setField("digest", nil)), .missingField),
            ("timestamp zero", mutatePayload(b, setField("timestamp", .unsigned(0))), .invalidTimestamp),
            ("timestamp as text", mutatePayload(b, setField("timestamp", .text("1665651482136"))), .wrongFieldType),
            ("timestamp negative", mutatePayload(b, setField("timestamp", .int(-1))), .wrongFieldType),
            (
                "timestamp one ms later",
                mutatePayload(b, setField("timestamp", .unsigned(doc.expected.timestamp_ms + 1))), .signatureInvalid
            ),
            ("pcrs empty", mutatePayload(b, setField("pcrs", .map([]))), .invalidPCRCount),
            ("pcrs as array", mutatePayload(b, setField("pcrs", .array([]))), .wrongFieldType),
            (
                "PCR index 32",
                mutatePayload(b, setField("pcrs", .map([(.unsigned(32), .bytes([UInt8](repeating: 0, count: 48)))]))),
                .invalidPCRIndex
            ),
            (
                "PCR index negative",
                mutatePayload(b, setField("pcrs", .map([(.int(-1), .bytes([UInt8](repeating: 0, count: 48)))]))),
                .invalidPCRIndex
            ),
            (
                "PCR of 32 bytes",
                mutatePayload(b, setField("pcrs", .map([(.unsigned(0), .bytes([UInt8](repeating: 1, count: 32)))]))),
                .invalidPCRLength
            ),
            ("PCR as text", mutatePayload(b, setField("pcrs", .map([(.unsigned(0), .text("00"))]))), .wrongFieldType),
            (
                "PCR0 bit flipped",
                mutatePayload(b) { pairs in
                    let i = pairs.firstIndex { $0.key == .text("pcrs") }!
                    guard case .map(var pcrs) = pairs[i].value, case .bytes(var v) = pcrs[0].value else { fatalError() }
                    v[0] ^= 1
                    pcrs[0].value = .bytes(v)
                    pairs[i].value = .map(pcrs)
                }, .signatureInvalid
            ),
            ("unknown extra key", mutatePayload(b, setField("extra", .null)), .unexpectedField),
            ("integer key", mutatePayload(b) { $0.append((.unsigned(1), .null)) }, .unexpectedField),
            ("certificate empty", mutatePayload(b, setField("certificate", .bytes([]))), .invalidCertificateSize),
            (
                "certificate over 1024 bytes", mutatePayload(b, setField("certificate", bigBytes)),
                .invalidCertificateSize
            ),
            ("certificate null", mutatePayload(b, setField("certificate", .null)), .wrongFieldType),
            ("certificate garbled", mutatePayload(b, setField("certificate", .bytes(garbled))), .malformedCertificate),
            (
                "certificate of another document",
                mutatePayload(b, setField("certificate", field(other, "certificate"))), .signatureInvalid
            ),
            ("cabundle empty", mutatePayload(b, setField("cabundle", .array([]))), .invalidCABundle),
            ("cabundle entry empty", mutatePayload(b, setField("cabundle", .array([.bytes([])]))), .invalidCABundle),
            ("cabundle entry as text", mutatePayload(b, setField("cabundle", .array([.text("x")]))), .wrongFieldType),
            (
                "cabundle entry garbage", mutatePayload(b, setField("cabundle", .array([.bytes([0x30, 0x00])]))),
                .malformedCertificate
            ),
            (
                "cabundle without the instance CA",
                mutatePayload(b) { pairs in
                    let i = pairs.firstIndex { $0.key == .text("cabundle") }!
                    guard case .array(var list) = pairs[i].value else { fatalError() }
                    list.removeLast()
                    pairs[i].value = .array(list)
                }, .signatureInvalid
            ),
            ("public_key empty", mutatePayload(b, setField("public_key", .bytes([]))), .invalidPublicKeySize),
            ("public_key over 1024 bytes", mutatePayload(b, setField("public_key", bigBytes)), .invalidPublicKeySize),
            ("public_key added", mutatePayload(b, setField("public_key", .bytes([1, 2, 3]))), .signatureInvalid),
            ("public_key as text", mutatePayload(b, setField("public_key", .text("k"))), .wrongFieldType),
            ("user_data over 1024 bytes", mutatePayload(b, setField("user_data", bigBytes)), .invalidUserDataSize),
            ("user_data added", mutatePayload(b, setField("user_data", .bytes([0]))), .signatureInvalid),
            ("user_data missing", mutatePayload(b, setField("user_data", nil)), .missingField),
            ("nonce over 1024 bytes", mutatePayload(b, setField("nonce", bigBytes)), .invalidNonceSize),
            (
                "nonce changed", mutatePayload(b, setField("nonce", .bytes([UInt8](repeating: 7, count: 256)))),
                .signatureInvalid
            ),
            ("nonce as integer", mutatePayload(b, setField("nonce", .unsigned(7))), .wrongFieldType),
        ]
    }()

    @Test func atLeastThirtyMutationsAreListed() {
        #expect(Self.mutations.count >= 30)
        #expect(Set(Self.mutations.map(\.2)).count >= 20, "mutations exercise many different codes")
    }

    @Test(arguments: 0..<mutations.count)
    func eachMutationIsRejectedWithItsCode(index: Int) {
        let (name, bytes, code) = Self.mutations[index]
        #expect(failure(bytes, at: Self.time) == code, "\(name)")
    }

    @Test func theUnmutatedDocumentVerifies() {
        #expect(failure(Self.doc.bytes, at: Self.time) == nil)
    }

    @Test func verificationTimesOutsideTheLeafValidityAreRejected() {
        // Leaf valid 2022-10-13T08:57:59Z ... 11:58:02Z.
        #expect(failure(Self.doc.bytes, at: UnixTime(seconds: 1_665_651_479)) == nil)
        #expect(failure(Self.doc.bytes, at: UnixTime(seconds: 1_665_651_478)) == .certificateNotYetValid)
        #expect(failure(Self.doc.bytes, at: UnixTime(seconds: 1_665_662_281)) == nil)
        #expect(failure(Self.doc.bytes, at: UnixTime(seconds: 1_665_662_282)) == .certificateExpired)
        #expect(failure(Self.doc.bytes, at: UnixTime(seconds: 1_900_000_000)) == .certificateExpired)
        #expect(failure(Self.doc.bytes, at: UnixTime(seconds: 1_500_000_000)) == .certificateNotYetValid)
    }

    @Test func aDifferentRootIsRejected() throws {
        // The regional CA as the only "root": not self-signed, so the path cannot be anchored.
        guard case .array(let bundle) = field(Self.doc.bytes, "cabundle"), case .bytes(let regional) = bundle[1] else {
            fatalError()
        }
        let notAnchor = TrustedRoot(
            certificate: try Certificate(derEncoded: regional),
            name: "regional",
            isDevelopment: false
        )
        #expect(failure(Self.doc.bytes, roots: [notAnchor], at: Self.time) == .untrustedChain)
        #expect(failure(Self.doc.bytes, roots: [], at: Self.time) == .untrustedChain)
    }

    @Test func chainFaultsHaveTheirOwnCodesWhenTheChainPolicyRunsAlone() throws {
        let document = try AttestationDocument(bytes: Self.doc.bytes)
        let policy = CertificateChainPolicy(roots: [NitroVector.awsRoot])
        let context = AttestationPolicyContext(verificationTime: Self.time)
        #expect(policy.evaluate(document, context: context) == .meetsPolicy)

        func evaluate(cabundle: [[UInt8]]) throws -> AttestationError.Code? {
            let bytes = mutatePayload(Self.doc.bytes, setField("cabundle", .array(cabundle.map { .bytes($0) })))
            let mutated = try AttestationDocument(bytes: bytes)
            if case .failsToMeetPolicy(let error) = policy.evaluate(mutated, context: context) { return error.code }
            return nil
        }
        var bundle = document.cabundle
        #expect(try evaluate(cabundle: bundle) == nil)
        // The instance CA's signature (last bytes of its DER) altered: the chain's signature check fails.
        var instance = bundle[3]
        instance[instance.count - 1] ^= 0x01
        bundle[3] = instance
        #expect(try evaluate(cabundle: bundle) == .chainSignatureInvalid)
        // The zonal CA missing: no path.
        #expect(
            try evaluate(cabundle: [document.cabundle[0], document.cabundle[1], document.cabundle[3]])
                == .untrustedChain
        )
        // Another document's intermediates (made a year later): not valid yet at this time.
        let other = try AttestationDocument(bytes: NitroVector.debug.bytes)
        #expect(try evaluate(cabundle: other.cabundle) == .certificateNotYetValid)
        // The root alone: no path from the leaf.
        #expect(try evaluate(cabundle: [document.cabundle[0]]) == .untrustedChain)
    }

    @Test func callerExpectationsAreEnforced() throws {
        let b = Self.doc.bytes, t = Self.time
        let pcrs = Self.doc.expectedPCRs
        let right = PCRSet([0: pcrs[0]!, 1: pcrs[1]!, 2: pcrs[2]!])
        let wrong = PCRSet([0: pcrs[0]!, 1: pcrs[2]!])
        #expect(failure(b, at: t, AttestationExpectations(allowedPCRSets: [right])) == nil)
        #expect(failure(b, at: t, AttestationExpectations(allowedPCRSets: [wrong, right])) == nil)
        #expect(failure(b, at: t, AttestationExpectations(allowedPCRSets: [wrong])) == .pcrMismatch)
        #expect(failure(b, at: t, AttestationExpectations(allowedPCRSets: [])) == .pcrMismatch)
        #expect(failure(b, at: t, AttestationExpectations(allowedPCRSets: [PCRSet([31: pcrs[0]!])])) == .pcrMismatch)

        let debug = NitroVector.debug
        #expect(failure(debug.bytes, at: debug.verifyAt) == .debugModeRefused)
        #expect(
            failure(debug.bytes, at: debug.verifyAt, AttestationExpectations(allowDebug: true, maxAgeMilliseconds: nil))
                == nil
        )

        // Freshness: the document is 136 ms ahead of its truncated verify-at second.
        #expect(failure(b, at: t, AttestationExpectations(maxAgeMilliseconds: 0)) == nil)
        #expect(
            failure(b, at: UnixTime(seconds: t.seconds + 61), AttestationExpectations(maxAgeMilliseconds: 60_000))
                == .documentTooOld
        )
        #expect(
            failure(b, at: UnixTime(seconds: t.seconds + 59), AttestationExpectations(maxAgeMilliseconds: 60_000))
                == nil
        )
        #expect(
            failure(
                b,
                at: UnixTime(seconds: t.seconds - 2),
                AttestationExpectations(maxAgeMilliseconds: 60_000, maxFutureSkewMilliseconds: 1000)
            ) == .documentFromFuture
        )

        let nonce = Hex.decode(Self.doc.expected.nonce_hex!)!
        #expect(failure(b, at: t, AttestationExpectations(maxAgeMilliseconds: nil, nonce: nonce)) == nil)
        #expect(
            failure(b, at: t, AttestationExpectations(maxAgeMilliseconds: nil, nonce: Array(nonce.dropLast())))
                == .nonceMismatch
        )
        #expect(failure(b, at: t, AttestationExpectations(maxAgeMilliseconds: nil, userData: [1])) == .userDataMismatch)
        #expect(
            failure(
                NitroVector.indefinite.bytes,
                at: NitroVector.indefinite.verifyAt,
                AttestationExpectations(maxAgeMilliseconds: nil, nonce: [1])
            ) == .nonceMismatch
        )
        let userData = Hex.decode(NitroVector.indefinite.expected.user_data_hex!)!
        #expect(
            failure(
                NitroVector.indefinite.bytes,
                at: NitroVector.indefinite.verifyAt,
                AttestationExpectations(maxAgeMilliseconds: nil, userData: userData)
            ) == nil
        )
        #expect(
            failure(b, at: t, AttestationExpectations(maxAgeMilliseconds: nil, requirePublicKey: true))
                == .publicKeyMismatch
        )
        #expect(
            failure(b, at: t, AttestationExpectations(maxAgeMilliseconds: nil, publicKey: [1])) == .publicKeyMismatch
        )
    }

    @Test func everyPrefixOfARealDocumentIsRejectedWithoutCrashing() {
        let b = NitroVector.indefinite.bytes
        for cut in stride(from: 0, to: b.count, by: 7) {
            #expect(failure(Array(b[..<cut]), at: NitroVector.indefinite.verifyAt) == .malformedCBOR)
        }
    }
}

extension CBOR {
    fileprivate func arrayElement(_ i: Int) -> CBOR {
        guard case .array(let items) = self else { fatalError() }
        return items[i]
    }
}

@Suite struct AttestationCacheTests {
    @Test func oneCacheServesConcurrentVerificationsOnManyThreads() throws {
        // The local KMS endpoint and the job runner verify documents on several threads at once
        // with one shared verifier; this used to trap in the cache's lock.
        let v = NitroVector.production
        let cache = AttestationCache()
        let verifier = AttestationVerifier(trustedRoots: [NitroVector.awsRoot], at: v.verifyAt, cache: cache)
        let expectations = AttestationExpectations(maxAgeMilliseconds: nil)
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 64) { _ in
            do {
                let verified = try verifier.verify(v.bytes, expectations: expectations)
                if verified.chain.certificates.count != 5 { failures.add(1, ordering: .relaxed) }
            } catch {
                failures.add(1, ordering: .relaxed)
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        #expect(cache.chainHits > 0)
    }

    @Test func aSeenChainIsReusedOnlyForTheSameCertificatesRootsAndValidTimes() throws {
        let v = NitroVector.production
        let cache = AttestationCache()
        let expectations = AttestationExpectations(maxAgeMilliseconds: nil)
        let verifier = AttestationVerifier(trustedRoots: [NitroVector.awsRoot], at: v.verifyAt, cache: cache)
        _ = try verifier.verify(v.bytes, expectations: expectations)
        #expect(cache.chainHits == 0)
        let second = try verifier.verify(v.bytes, expectations: expectations)
        #expect(cache.chainHits == 1)
        #expect(second.chain.certificates.count == 5)
        // The same cache at a time after the leaf expired: refused, not served from the cache.
        let later = AttestationVerifier(
            trustedRoots: [NitroVector.awsRoot],
            at: UnixTime(seconds: 1_665_662_282),
            cache: cache
        )
        do {
            _ = try later.verify(v.bytes, expectations: expectations)
            Issue.record("an expired chain was served from the cache")
        } catch {
            #expect(error.code == .certificateExpired)
        }
        // The same cache under other roots: a different question, validated afresh (and refused).
        guard case .array(let bundle) = field(v.bytes, "cabundle"), case .bytes(let regional) = bundle[1] else {
            fatalError()
        }
        let otherRoot = TrustedRoot(
            certificate: try Certificate(derEncoded: regional),
            name: "regional",
            isDevelopment: false
        )
        let other = AttestationVerifier(trustedRoots: [otherRoot], at: v.verifyAt, cache: cache)
        do {
            _ = try other.verify(v.bytes, expectations: expectations)
            Issue.record("a chain cached under the AWS root was served for another root")
        } catch {
            #expect(error.code == .untrustedChain)
        }
        // A mutated document still fails its signature even though its chain is cached.
        var tampered = v.bytes
        tampered[tampered.count - 3] ^= 1
        do {
            _ = try verifier.verify(tampered, expectations: expectations)
            Issue.record("a tampered document verified")
        } catch {
            #expect(error.code == .signatureInvalid)
        }
    }
}
