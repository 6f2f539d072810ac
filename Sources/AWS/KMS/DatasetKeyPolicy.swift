import Foundation

/// The key policy of a party's dataset key (DESIGN §2.4, §4). The owner administers and uses the
/// key. The clean room's key-release principal may only call `Decrypt`, and only with an attested
/// `Recipient` whose enclave image (PCR0, `kms:RecipientAttestation:ImageSha384`) the owner
/// allowed. KMS enforces this itself, so an operator who controls `cleanroomd` gets a data key
/// only inside an enclave the owner trusts, and never in plaintext.
///
/// The release statement has the shape of AWS's own Nitro Enclaves example (`StringEqualsIgnoreCase`
/// on `kms:RecipientAttestation:ImageSha384`); the local KMS enforces it and moto stores it, but it
/// has not been put to AWS KMS itself. The CloudFormation template `infrastructure/dataset-key.json`
/// writes the same statements. `init?(document:)` reads back
/// only documents this type wrote, so a policy the owner wrote by hand is never rewritten.
public struct DatasetKeyPolicy: Equatable, Sendable {
    /// Who administers and uses the key: an IAM principal ARN (or an account root).
    public var owner: String
    /// The principal `cleanroomd` calls KMS as; nil while no enclave may receive keys.
    public var keyReleasePrincipal: String?
    /// The enclave images (PCR0, 96 lowercase hex digits) that may receive data keys, sorted.
    public private(set) var enclaveImages: [String]

    static let ownerSid = "OwnerAdministersAndUsesTheKey"
    static let releaseSid = "CleanRoomReleasesOnlyToAttestedEnclaves"
    static let imageCondition = "kms:RecipientAttestation:ImageSha384"

    public init(owner: String, keyReleasePrincipal: String?, enclaveImages: [String] = []) throws {
        self.owner = owner
        self.keyReleasePrincipal = keyReleasePrincipal
        self.enclaveImages = []
        try allow(enclaveImages)
    }

    /// In the embedded KMS of `cleanroomd` a party acts as this principal (SigV4 with the access
    /// key it got at registration).
    public static func localPartyPrincipal(accountId: String, partyId: String) -> String {
        "arn:aws:iam::\(accountId):user/cleanroom/\(partyId)"
    }

    /// An account's root principal: in the embedded KMS, `cleanroomd` itself (the operator).
    public static func accountRoot(_ accountId: String) -> String { "arn:aws:iam::\(accountId):root" }

    /// The account of a key ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`), if it is one.
    public static func account(ofKeyARN arn: String) -> String? {
        let parts = arn.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "arn", parts[2] == "kms", !parts[4].isEmpty else { return nil }
        return String(parts[4])
    }

    /// A PCR0 in the form the condition compares: 96 lowercase hex digits. An all-zero PCR0 is
    /// refused: it is what a debug-mode enclave reports whatever code it runs.
    public static func normalizedImage(_ text: String) throws -> String {
        let image = text.lowercased()
        guard image.count == 96, image.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            throw KMSError("ValidationException", "an enclave image is a PCR0: 96 hex digits (SHA-384), not \"\(text.prefix(100))\"")
        }
        guard image.contains(where: { $0 != "0" }) else {
            throw KMSError(
                "ValidationException",
                "an all-zero PCR0 is a debug-mode enclave, which runs any code: a data key must not be released to it")
        }
        return image
    }

    /// Adds images (duplicates are ignored); returns those that were new.
    @discardableResult public mutating func allow(_ images: [String]) throws -> [String] {
        let normalized = try images.map(Self.normalizedImage)
        let added = Set(normalized).subtracting(enclaveImages).sorted()
        enclaveImages = (enclaveImages + added).sorted()
        return added
    }

    /// Removes images; returns those that were there.
    @discardableResult public mutating func disallow(_ images: [String]) throws -> [String] {
        let normalized = Set(try images.map(Self.normalizedImage))
        let removed = enclaveImages.filter(normalized.contains)
        enclaveImages.removeAll(where: normalized.contains)
        return removed
    }

    /// The policy document (JSON). Without a key-release principal or any image there is no
    /// release statement at all: no enclave may receive a data key yet.
    public var document: String {
        var statements: [[String: Any]] = [
            [
                "Sid": Self.ownerSid, "Effect": "Allow", "Principal": ["AWS": owner], "Action": "kms:*", "Resource": "*",
            ]
        ]
        if let keyReleasePrincipal, !enclaveImages.isEmpty {
            statements.append([
                "Sid": Self.releaseSid, "Effect": "Allow", "Principal": ["AWS": keyReleasePrincipal],
                "Action": "kms:Decrypt", "Resource": "*",
                "Condition": ["StringEqualsIgnoreCase": [Self.imageCondition: enclaveImages]],
            ])
        }
        let object: [String: Any] = ["Version": "2012-10-17", "Id": "cleanroom-dataset-key", "Statement": statements]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    /// Reads a document `document` wrote; nil for any other policy (one the owner wrote by hand,
    /// or KMS's default), which the CLI then leaves alone.
    public init?(document: String) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(document.utf8)) as? [String: Any],
            object["Id"] as? String == "cleanroom-dataset-key",
            let statements = object["Statement"] as? [[String: Any]]
        else { return nil }
        func principal(_ statement: [String: Any]) -> String? {
            (statement["Principal"] as? [String: Any])?["AWS"] as? String
        }
        var owner: String?, releaser: String?, images: [String] = []
        for statement in statements {
            guard statement["Effect"] as? String == "Allow" else { return nil }
            switch statement["Sid"] as? String {
            case Self.ownerSid? where statement["Action"] as? String == "kms:*" && statement["Condition"] == nil:
                owner = principal(statement)
            case Self.releaseSid? where statement["Action"] as? String == "kms:Decrypt":
                guard let condition = statement["Condition"] as? [String: Any], condition.count == 1,
                    let equals = condition["StringEqualsIgnoreCase"] as? [String: Any], equals.count == 1,
                    let listed = equals[Self.imageCondition] as? [String]
                else { return nil }
                releaser = principal(statement)
                images = listed
            default:
                return nil
            }
        }
        guard let owner, let policy = try? DatasetKeyPolicy(owner: owner, keyReleasePrincipal: releaser, enclaveImages: images)
        else { return nil }
        self = policy
    }
}
