import Crypto
import Foundation
import TestSupport
import Testing

@testable import Attestation

/// One entry of `../shared/vectors/nitro/expected.json`.
struct NitroExpectation: Decodable, Sendable {
    let file: String
    let sha256: String
    let size: Int
    let module_id: String
    let timestamp_ms: UInt64
    let verify_at_epoch_seconds: UInt64
    let cose_tagged: Bool
    let payload_map_encoding: String
    let signature_high_s: Bool
    let debug_mode: Bool
    let null_fields: [String]
    let user_data_hex: String?
    let nonce_hex: String?
    let cabundle_len: Int
    let chain_subjects: [String]
    let pcrs: [String: String]
}

struct NitroExpectedFile: Decodable {
    struct CMS: Decodable {
        let file: String
        let expected_iv_hex: String
        let expected_ciphertext_hex: String
        let expected_encrypted_key_len: Int
        let expected_encrypted_key_prefix_hex: String
    }
    let documents: [NitroExpectation]
    let kms_cms_sample: CMS
}

/// A real Nitro document with its expected values.
struct NitroVector: Sendable, CustomTestStringConvertible {
    let bytes: [UInt8]
    let expected: NitroExpectation

    var testDescription: String { expected.file }
    var verifyAt: UnixTime { UnixTime(seconds: expected.verify_at_epoch_seconds) }
    var expectedPCRs: [Int: [UInt8]] {
        Dictionary(uniqueKeysWithValues: expected.pcrs.map { (Int($0.key)!, Hex.decode($0.value)!) })
    }

    static let file: NitroExpectedFile = {
        let json = try! Data(contentsOf: TestEnvironment.vector("nitro/expected.json"))
        return try! JSONDecoder().decode(NitroExpectedFile.self, from: json)
    }()

    static let all: [NitroVector] = file.documents.map { entry in
        NitroVector(
            bytes: [UInt8](try! Data(contentsOf: TestEnvironment.vector("nitro/\(entry.file)"))),
            expected: entry
        )
    }

    static let awsRootPEM: String = try! String(
        contentsOf: TestEnvironment.vector("nitro/aws-nitro-enclaves-root-g1.pem"),
        encoding: .utf8
    )

    static var awsRoot: TrustedRoot { try! TrustedRoot(pem: awsRootPEM, name: "aws-nitro-enclaves-root-g1") }

    static func named(_ prefix: String) -> NitroVector { all.first { $0.expected.file.hasPrefix(prefix) }! }
    static var production: NitroVector { named("att-2022") }
    static var debug: NitroVector { named("att-2023") }
    static var indefinite: NitroVector { named("att-2026") }
}
