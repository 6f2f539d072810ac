import Attestation
import Foundation

/// The parts of a collaboration policy (policies/policy.schema.json) that the enclave acts on,
/// decoded from the policy bytes it received. The enclave recomputes the policy digest itself
/// from the same bytes; nothing here is trusted before that digest matches the one it attested.
public struct JobPolicy: Decodable, Sendable, Equatable {
    public struct Party: Decodable, Sendable, Equatable {
        public var id: String
        /// Approval-signing key (ECDSA P-256, SPKI PEM), filled by the server.
        public var signingKey: String?
        /// SHA-256 of the signing key's DER SPKI, lowercase hex.
        public var signingKeyFingerprint: String?
        /// Result-encryption key (RSA ≥ 3072, SPKI PEM).
        public var resultKey: String?
    }

    /// A declared column: its name, type and whether empty cells are allowed.
    public struct Column: Decodable, Sendable, Equatable {
        public enum Kind: String, Decodable, Sendable { case string, integer, float, boolean }
        public var name: String
        public var type: Kind
        public var nullable: Bool?
        public var isNullable: Bool { nullable ?? false }
    }

    public struct Dataset: Decodable, Sendable, Equatable {
        public var id: String
        public var owner: String
        public var sha256: String?
        public var objectVersion: String?
        public var columns: [Column]
    }

    public struct Join: Decodable, Sendable, Equatable {
        public enum Kind: String, Decodable, Sendable { case union, inner }
        public var type: Kind
        public var key: String?
    }

    /// A value of the free-form hyperparameter map.
    public enum Hyperparameter: Decodable, Sendable, Equatable {
        case number(Double), string(String), bool(Bool)

        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(Bool.self) {
                self = .bool(value)
            } else if let value = try? container.decode(Double.self) {
                self = .number(value)
            } else {
                self = .string(try container.decode(String.self))
            }
        }

        public var number: Double? {
            if case .number(let value) = self { return value }
            return nil
        }
    }

    public struct Training: Decodable, Sendable, Equatable {
        public enum Algorithm: String, Decodable, Sendable {
            case logisticRegression = "logistic_regression"
            case linearRegression = "linear_regression"
            case gradientBoostedTrees = "gradient_boosted_trees"
        }
        public struct Validation: Decodable, Sendable, Equatable {
            public var fraction: Double
            public var seed: UInt64
        }
        public var algorithm: Algorithm
        public var objective: String?
        public var label: String
        public var features: [String]
        public var hyperparameters: [String: Hyperparameter]?
        public var validation: Validation
    }

    public struct Measurement: Decodable, Sendable, Equatable, Hashable {
        public var pcr0: String
        public var pcr1: String
        public var pcr2: String
        public var pcr3: String?
        public var pcr8: String?
    }

    public struct EnclaveRules: Decodable, Sendable, Equatable {
        public var measurements: [Measurement]
        public var allowDebug: Bool

        /// The measurement sets as PCR sets (PCR0–2, and PCR3/PCR8 when named), the one mapping the
        /// server's key-release gate and the parties' offline `verify` both use; nil if a value is not hex.
        public var pcrSets: [PCRSet]? {
            var sets: [PCRSet] = []
            for measurement in measurements {
                var hex = [0: measurement.pcr0, 1: measurement.pcr1, 2: measurement.pcr2]
                if let pcr3 = measurement.pcr3 { hex[3] = pcr3 }
                if let pcr8 = measurement.pcr8 { hex[8] = pcr8 }
                guard let set = PCRSet(hex: hex) else { return nil }
                sets.append(set)
            }
            return sets
        }
    }

    public struct Output: Decodable, Sendable, Equatable {
        public var recipient: String
        public var artifacts: [String]
    }

    public struct Constraints: Decodable, Sendable, Equatable {
        public var minRowsPerParty: Int?
        public var minJoinedRows: Int?
        public var expiresAt: String
        public var maxRuns: Int
    }

    public var version: Int
    public var name: String
    public var parties: [Party]
    public var datasets: [Dataset]
    public var join: Join
    public var training: Training
    public var enclave: EnclaveRules
    public var outputs: [Output]
    public var constraints: Constraints

    /// Largest policy document accepted.
    public static let maxBytes = 1024 * 1024

    /// Decodes policy bytes, with a precise error on failure.
    public init(bytes: [UInt8]) throws(EnclaveError) {
        guard bytes.count <= Self.maxBytes else {
            throw EnclaveError(.policyInvalid, "the policy is \(bytes.count) bytes; the limit is \(Self.maxBytes)")
        }
        do {
            self = try JSONDecoder().decode(JobPolicy.self, from: Data(bytes))
        } catch let DecodingError.keyNotFound(key, context) {
            throw EnclaveError(.policyInvalid, "the policy lacks \(Self.path(context.codingPath + [key]))")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw EnclaveError(.policyInvalid, "the policy's \(Self.path(context.codingPath)) has the wrong type")
        } catch let DecodingError.dataCorrupted(context) {
            throw EnclaveError(.policyInvalid, "the policy's \(Self.path(context.codingPath)) is invalid")
        } catch {
            throw EnclaveError(.policyInvalid, "the policy is not valid JSON")
        }
        try validate()
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.isEmpty ? "document" : keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    }

    /// Cross-field rules the enclave relies on.
    func validate() throws(EnclaveError) {
        guard version == 1 else { throw EnclaveError(.policyInvalid, "policy version \(version) is not supported") }
        let partyIDs = Set(parties.map(\.id))
        guard partyIDs.count == parties.count else { throw EnclaveError(.policyInvalid, "a party is listed twice") }
        guard Set(datasets.map(\.id)).count == datasets.count else {
            throw EnclaveError(.policyInvalid, "a dataset is listed twice")
        }
        for dataset in datasets where !partyIDs.contains(dataset.owner) {
            throw EnclaveError(.policyInvalid, "dataset \(dataset.id) is owned by \(dataset.owner), who is not a party")
        }
        for output in outputs where !partyIDs.contains(output.recipient) {
            throw EnclaveError(.policyInvalid, "output recipient \(output.recipient) is not a party")
        }
        for output in outputs {
            for artifact in output.artifacts where !["model", "metrics", "scores:own"].contains(artifact) {
                throw EnclaveError(.policyInvalid, "unknown output artifact \(artifact)")
            }
        }
        if join.type == .inner && (join.key ?? "").isEmpty {
            throw EnclaveError(.policyInvalid, "an inner join needs a key column")
        }
    }

    /// The party entry for `id`.
    public func party(_ id: String) -> Party? { parties.first { $0.id == id } }
}
