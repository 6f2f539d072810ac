import AWS
import ArgumentParser
import Foundation

/// The party's KMS key, as its profile names it: a KMS client signed with the access key the
/// party got at registration, and the key's policy (`DatasetKeyPolicy`, DESIGN §2.4): the party
/// administers and uses the key; the clean room may only `Decrypt` for an attested enclave image
/// the party allowed.
struct PartyKMS {
    let client: AWSKMSClient
    let partyId: String
    /// The KMS is the server's embedded one (not AWS KMS).
    let embedded: Bool
    let endpoint: String
    /// The principal the clean room calls KMS as, when the profile names one (AWS KMS).
    let profileReleaser: String?

    init(profile: Profile, server: String, endpoint: String?, region: String) throws {
        guard let partyId = profile.partyId, let accessKeyId = profile.accessKeyId, let secret = profile.secretAccessKey else {
            throw CLIError("the profile has no party or access key: register first", exitCode: 2)
        }
        let endpoint = endpoint ?? profile.kmsEndpoint ?? server
        let configuration = AWSConfiguration(
            region: region, credentials: StaticCredentialsProvider(AWSCredentials(accessKeyId: accessKeyId, secretAccessKey: secret)))
        client = try AWSKMSClient(configuration: configuration, endpoint: endpoint)
        self.partyId = partyId
        embedded = Self.sameService(endpoint, server)
        self.endpoint = endpoint
        profileReleaser = profile.kmsKeyReleasePrincipal
    }

    /// Who may release keys when a policy does not say (it names nobody while it allows no
    /// image): the profile's principal, else in the embedded KMS the server (the account root).
    func defaultReleaser(forKey key: String) -> String? {
        if let profileReleaser { return profileReleaser }
        guard embedded, let account = DatasetKeyPolicy.account(ofKeyARN: key) else { return nil }
        return DatasetKeyPolicy.accountRoot(account)
    }

    /// Whether two URLs reach the same service: the same scheme, port (the scheme's default when
    /// none is given) and path up to a trailing slash, and the same host, where `localhost` and the
    /// loopback addresses are one host. (`--kms-endpoint http://localhost:8080/` is the embedded
    /// KMS of a server reached as `http://127.0.0.1:8080`.)
    static func sameService(_ a: String, _ b: String) -> Bool {
        func key(_ text: String) -> String? {
            guard let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(), var host = url.host?.lowercased()
            else { return nil }
            if ["localhost", "127.0.0.1", "::1", "[::1]"].contains(host) { host = "loopback" }
            let port = url.port ?? (scheme == "https" ? 443 : 80)
            let path = url.path.hasSuffix("/") ? String(url.path.dropLast()) : url.path
            return "\(scheme)://\(host):\(port)\(path)"
        }
        guard let left = key(a), let right = key(b) else { return a == b }
        return left == right
    }

    /// The key's region from its ARN, else `fallback`.
    static func region(ofKey key: String?, else fallback: String) -> String {
        guard let key, key.hasPrefix("arn:") else { return fallback }
        let parts = key.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 6 && !parts[3].isEmpty ? String(parts[3]) : fallback
    }

    /// `images` as PCR0s, or a usage error (exit 2) naming the bad one.
    static func images(_ images: [String]) throws -> [String] {
        do {
            return try images.map(DatasetKeyPolicy.normalizedImage)
        } catch let error as KMSError {
            throw CLIError(error.message, exitCode: 2)
        }
    }

    /// Creates a key for the party's datasets and gives it its policy: the party owns it (in the
    /// embedded KMS the party's own principal, since the operator is that account's root; in AWS
    /// the key's account), and `keyReleasePrincipal` (in the embedded KMS, the server) may decrypt
    /// only for `enclaveImages`.
    func createKey(enclaveImages: [String], keyReleasePrincipal: String?) async throws -> (arn: String, policy: DatasetKeyPolicy) {
        let enclaveImages = try Self.images(enclaveImages)
        let created = try await client.createKey(description: "cleanroom datasets of \(partyId)")
        guard let account = DatasetKeyPolicy.account(ofKeyARN: created.arn) else {
            throw CLIError("KMS answered CreateKey with an ARN that names no account: \(created.arn)")
        }
        let owner = embedded ? DatasetKeyPolicy.localPartyPrincipal(accountId: account, partyId: partyId) : DatasetKeyPolicy.accountRoot(account)
        let policy = try DatasetKeyPolicy(
            owner: owner, keyReleasePrincipal: keyReleasePrincipal ?? defaultReleaser(forKey: created.arn), enclaveImages: enclaveImages)
        do {
            try await client.putKeyPolicy(keyID: created.arn, policy: policy.document)
        } catch {
            throw CLIError("created KMS key \(created.arn) but could not set its policy (\(error)); it is not used")
        }
        return (created.arn, policy)
    }

    /// The key's policy document, and the policy it describes when `cleanroom` wrote it.
    func policy(of key: String) async throws -> (document: String, managed: DatasetKeyPolicy?) {
        let document = try await client.keyPolicy(keyID: key)
        return (document, DatasetKeyPolicy(document: document))
    }

    /// Changes a policy `cleanroom` wrote and puts it back (an unchanged policy is not put); nil,
    /// and nothing changed, when the key's policy is one the party wrote itself.
    func update(_ key: String, _ change: (inout DatasetKeyPolicy) throws -> Void) async throws -> DatasetKeyPolicy? {
        guard var policy = try await policy(of: key).managed else { return nil }
        let before = policy
        if policy.keyReleasePrincipal == nil { policy.keyReleasePrincipal = defaultReleaser(forKey: key) }
        try change(&policy)
        if policy != before { try await client.putKeyPolicy(keyID: key, policy: policy.document) }
        return policy
    }

    /// Changes the policy of the profile's key `key` (see `update`) and describes the outcome for
    /// `--json`: the key, whether cleanroom manages its policy, and the policy after the change.
    static func change(
        _ key: String, profile: Profile, server: String, _ change: (inout DatasetKeyPolicy) throws -> Void
    ) async throws -> (policy: DatasetKeyPolicy?, json: [String: Any]) {
        let kms = try PartyKMS(profile: profile, server: server, endpoint: nil, region: region(ofKey: key, else: "us-east-1"))
        let updated = try await kms.update(key, change)
        var json: [String: Any] = ["keyId": key, "managed": updated != nil]
        if let updated { json.merge(describe(updated)) { a, _ in a } }
        return (updated, json)
    }

    static func notWrittenByCleanroom(_ key: String) -> CLIError {
        CLIError(
            "the policy of KMS key \(key) was not written by cleanroom: edit it yourself (`cleanroom kms show --json` prints it; infrastructure/dataset-key.json shows the statements)")
    }

    static func describe(_ policy: DatasetKeyPolicy) -> [String: Any] {
        ["owner": policy.owner, "keyReleasePrincipal": policy.keyReleasePrincipal ?? NSNull(), "enclaveImages": policy.enclaveImages]
    }
}

/// Options of the `cleanroom kms` commands: which key, and where its KMS is.
struct PartyKMSOptions: ParsableArguments {
    @OptionGroup var options: GovernanceOptions

    @Option(name: .customLong("kms-key-id"), help: "The KMS key (ARN; default: the profile's).")
    var kmsKeyId: String?

    @Option(name: .customLong("kms-endpoint"), help: "KMS endpoint URL (default: the profile's, else the server's).")
    var kmsEndpoint: String?

    @Option(name: .customLong("region"), help: "KMS region (default: the key ARN's, else us-east-1).")
    var region: String?

    func open() throws -> (PartyKMS, key: String) {
        let profile = try options.loadProfile()
        guard let key = kmsKeyId ?? profile.kmsKeyId else {
            throw CLIError("no KMS key: the profile has none until your first `cleanroom dataset upload` (or pass --kms-key-id)", exitCode: 2)
        }
        let kms = try PartyKMS(
            profile: profile, server: try options.serverURL(profile), endpoint: kmsEndpoint,
            region: region ?? PartyKMS.region(ofKey: key, else: "us-east-1"))
        return (kms, key)
    }
}

/// `cleanroom kms …`: the key policy of the party's dataset key.
struct KMSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kms",
        abstract: "Your dataset key's policy: which enclave images may receive your data keys.",
        discussion: """
            KMS itself enforces the policy: the clean room server may decrypt a data key only with a \
            Recipient attestation whose image (PCR0) is listed, and then only the enclave can open the answer. \
            `cleanroom dataset upload` creates the key with such a policy; `cleanroom policy approve` adds the \
            enclave images of each policy you approve that uses your data.
            """,
        subcommands: [KMSShowCommand.self, KMSAllowImageCommand.self, KMSRemoveImageCommand.self])
}

struct KMSShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show who may use your KMS key, and the enclave images it releases data keys to.")

    @OptionGroup var kmsOptions: PartyKMSOptions

    func run() async throws {
        try await runReporting(json: kmsOptions.options.json) {
            let (kms, key) = try kmsOptions.open()
            let (document, managed) = try await kms.policy(of: key)
            var value: [String: Any] = ["keyId": key, "policy": document, "managed": managed != nil]
            if let managed { value.merge(PartyKMS.describe(managed)) { a, _ in a } }
            let text: String
            if let managed {
                let images = managed.enclaveImages.isEmpty ? "  (none: no enclave can receive a data key)" : managed.enclaveImages.map { "  \($0)" }.joined(separator: "\n")
                text = """
                    KMS key \(key)
                    owner (administers and uses it): \(managed.owner)
                    decrypts for enclaves only: \(managed.enclaveImages.isEmpty ? "(nobody while no image is allowed)" : managed.keyReleasePrincipal ?? "(nobody)")
                    enclave images (PCR0):
                    \(images)
                    """
            } else {
                text = "KMS key \(key) has a policy cleanroom did not write:\n\(document)"
            }
            try kmsOptions.options.output(text, json: value)
        }
    }
}

struct KMSAllowImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allow-image",
        abstract: "Let enclaves of these images (PCR0) receive your data keys.",
        discussion: """
            An image is the PCR0 of an enclave you trust: `cleanroom enclave measure` prints it for an \
            executable, enclave-image/build.sh writes it to measurements.json for an EIF. An all-zero PCR0 \
            (a debug-mode enclave) is refused.
            """)

    @OptionGroup var kmsOptions: PartyKMSOptions

    @Argument(help: "Enclave images: PCR0 as 96 hex digits.") var images: [String]

    @Option(name: .customLong("key-release-principal"), help: "The principal the clean room server calls KMS as (AWS: its role ARN).")
    var keyReleasePrincipal: String?

    func run() async throws {
        try await runReporting(json: kmsOptions.options.json) {
            let (kms, key) = try kmsOptions.open()
            var added: [String] = []
            guard
                let policy = try await kms.update(key, { policy in
                    added = try policy.allow(PartyKMS.images(images))
                    if let keyReleasePrincipal { policy.keyReleasePrincipal = keyReleasePrincipal }
                })
            else { throw PartyKMS.notWrittenByCleanroom(key) }
            if let keyReleasePrincipal {
                var profile = try kmsOptions.options.loadProfile()
                profile.kmsKeyReleasePrincipal = keyReleasePrincipal
                try kmsOptions.options.saveProfile(profile)
            }
            var text = added.isEmpty ? "KMS key \(key) already allows \(images.count == 1 ? "this image" : "these images")" : "KMS key \(key) now releases data keys to \(added.joined(separator: ", "))"
            if policy.keyReleasePrincipal == nil {
                text += "\nno key-release principal yet: pass --key-release-principal with the clean room server's role ARN"
            }
            var value = PartyKMS.describe(policy)
            value["keyId"] = key
            value["added"] = added
            try kmsOptions.options.output(text, json: value)
        }
    }
}

struct KMSRemoveImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove-image", abstract: "Stop releasing your data keys to enclaves of these images.")

    @OptionGroup var kmsOptions: PartyKMSOptions

    @Argument(help: "Enclave images: PCR0 as 96 hex digits.") var images: [String]

    func run() async throws {
        try await runReporting(json: kmsOptions.options.json) {
            let (kms, key) = try kmsOptions.open()
            var removed: [String] = []
            guard let policy = try await kms.update(key, { removed = try $0.disallow(PartyKMS.images(images)) }) else {
                throw PartyKMS.notWrittenByCleanroom(key)
            }
            var value = PartyKMS.describe(policy)
            value["keyId"] = key
            value["removed"] = removed
            try kmsOptions.options.output(
                removed.isEmpty ? "KMS key \(key) did not list \(images.count == 1 ? "this image" : "these images")" : "KMS key \(key) no longer releases data keys to \(removed.joined(separator: ", "))",
                json: value)
        }
    }
}
