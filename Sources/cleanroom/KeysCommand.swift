import ArgumentParser
import CleanRoom
import Crypto
import Foundation

/// `cleanroom keys`: the party's own key pairs, generated and kept on its machine.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "The party's approval-signing and result-encryption keys.",
        subcommands: [KeysInitCommand.self, KeysShowCommand.self])
}

/// `cleanroom keys init`: a P-256 approval-signing key and an RSA result key (4096 bits), written 0600.
struct KeysInitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Generate the party's P-256 signing key and RSA-4096 result key locally.",
        discussion: "Refuses to overwrite existing keys. Exit codes: 0 created, 1 keys exist or cannot be written, 2 usage.")

    @OptionGroup var options: GovernanceOptions

    @Option(name: .customLong("result-key-bits"), help: "RSA modulus size of the result key (3072 or 4096).")
    var resultKeyBits = 4096

    func validate() throws {
        guard [3072, 4096].contains(resultKeyBits) else { throw ValidationError("--result-key-bits must be 3072 or 4096") }
    }

    func run() async throws {
        try await runReporting(json: options.json) {
            let fm = FileManager.default
            if fm.fileExists(atPath: options.signingKeyURL.path) || fm.fileExists(atPath: options.resultKeyURL.path) {
                throw CLIError("keys already exist in \(options.keysURL.path); refusing to overwrite them")
            }
            let signing = try P256.Signing.PrivateKey()
            let result = try RSA.PrivateKey(bits: resultKeyBits)
            try SecureFile.write(Data(try signing.pemRepresentation.copyBytes()), to: options.signingKeyURL)
            try SecureFile.write(Data(try result.pemRepresentation.copyBytes()), to: options.resultKeyURL)
            let fingerprint = Hex.encode(SHA256.hash(try signing.publicKey.derRepresentation))
            try options.output(
                "signing key (P-256): \(options.signingKeyURL.path)\n  fingerprint \(fingerprint)\nresult key (RSA-\(resultKeyBits)): \(options.resultKeyURL.path)",
                json: [
                    "signingKey": options.signingKeyURL.path, "resultKey": options.resultKeyURL.path,
                    "signingKeyFingerprint": fingerprint, "resultKeyBits": resultKeyBits,
                ])
        }
    }
}

/// `cleanroom keys show`: the public halves and the signing key's fingerprint.
struct KeysShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Print the public keys and their fingerprints (compare them with the ones policy summaries show).")

    @OptionGroup var options: GovernanceOptions

    func run() async throws {
        try await runReporting(json: options.json) {
            let keys = try LocalKeys(options)
            try options.output(
                "signing key fingerprint \(keys.fingerprint)\nresult key fingerprint \(keys.resultFingerprint)\n"
                    + "\(keys.signingPublicPEM)\(keys.resultPublicPEM)",
                json: [
                    "signingKeyFingerprint": keys.fingerprint, "resultKeyFingerprint": keys.resultFingerprint,
                    "signingKey": keys.signingPublicPEM, "resultKey": keys.resultPublicPEM,
                ])
        }
    }
}

/// The party's keys as loaded from the profile's key folder.
struct LocalKeys {
    let signing: P256.Signing.PrivateKey
    let signingPublicPEM: String
    let resultPublicPEM: String
    /// SHA-256 of the signing key's DER SubjectPublicKeyInfo (the policy's `signingKeyFingerprint`).
    let fingerprint: String
    /// SHA-256 of the result key's DER SubjectPublicKeyInfo.
    let resultFingerprint: String

    init(_ options: GovernanceOptions) throws {
        guard let signingPEM = try? String(contentsOf: options.signingKeyURL, encoding: .utf8),
            let resultPEM = try? String(contentsOf: options.resultKeyURL, encoding: .utf8)
        else { throw CLIError("no keys in \(options.keysURL.path): run `cleanroom keys init` first", exitCode: 2) }
        signing = try P256.Signing.PrivateKey(pemRepresentation: signingPEM)
        signingPublicPEM = try signing.publicKey.pemRepresentation
        resultPublicPEM = try RSA.PrivateKey(pemRepresentation: resultPEM).publicKey.pemRepresentation
        fingerprint = Hex.encode(SHA256.hash(try signing.publicKey.derRepresentation))
        resultFingerprint = try Self.resultFingerprint(ofPEM: resultPublicPEM)
    }

    /// SHA-256 of an RSA public key's DER SubjectPublicKeyInfo, as `keys show` and policy summaries print it.
    static func resultFingerprint(ofPEM pem: String) throws -> String {
        Hex.encode(SHA256.hash(try RSA.PublicKey(pemRepresentation: pem).derRepresentation))
    }

    /// Checks that `policy` names `partyId` with exactly these keys: the approval key (its PEM and
    /// its fingerprint) and the result key. The server fills both in from its party records, so a
    /// policy naming another result key would have this party's outputs encrypted to a key it does
    /// not hold, and its approval would vouch for that.
    /// What to do about a policy or registration that names other keys, before approving.
    static let beforeApproving = "ask the operator why, and do not approve it"

    /// `advice` ends a refusal: what to do about it.
    func checkNamed(in policy: JSONValue, as partyId: String, advice: String = Self.beforeApproving) throws {
        guard let me = policy["parties"]?.arrayValue?.first(where: { $0["id"]?.stringValue == partyId }) else {
            throw CLIError("the policy does not name your party \(partyId)")
        }
        try check(
            signingKey: me["signingKey"]?.stringValue, fingerprint: me["signingKeyFingerprint"]?.stringValue,
            resultKey: me["resultKey"]?.stringValue, of: partyId, in: "the policy", advice: advice)
    }

    /// The same check against the server's record of the party (`GET /v1/parties/me`), from which
    /// it fills in policies.
    func checkRegistration(_ party: [String: Any], as partyId: String) throws {
        try check(
            signingKey: party["signingKey"] as? String, fingerprint: party["signingKeyFingerprint"] as? String,
            resultKey: party["resultKey"] as? String, of: partyId, in: "the server's registration")
    }

    private func check(
        signingKey: String?, fingerprint named: String?, resultKey: String?, of partyId: String, in source: String,
        advice: String = Self.beforeApproving
    ) throws {
        let signingDER = try? signingKey.map { try P256.Signing.PublicKey(pemRepresentation: $0).derRepresentation }
        guard named == fingerprint, let signingDER, Hex.encode(SHA256.hash(signingDER)) == fingerprint else {
            throw CLIError(
                "\(source) names a different approval key for \(partyId) than this machine's (yours: \(fingerprint.prefix(16))…); "
                    + "it was not built from your registration: \(advice)")
        }
        let result = resultKey.flatMap { try? Self.resultFingerprint(ofPEM: $0) }
        guard result == resultFingerprint else {
            throw CLIError(
                "\(source) names a different result key for \(partyId) than this machine's "
                    + "(\(source == "the policy" ? "policy" : "server"): \(result.map { "\($0.prefix(16))…" } ?? "none readable"), yours: \(resultFingerprint.prefix(16))…): "
                    + "your outputs would be encrypted to a key you do not hold; \(advice)")
        }
    }
}

/// `cleanroom register`: registers the party with an operator-issued enrollment token.
struct RegisterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "register",
        abstract: "Register the party with an enrollment token and save its credentials to the profile (0600).",
        discussion: "Exit codes: 0 registered, 1 refused by the server, 2 usage (no keys, no server), 3 server unreachable.")

    @OptionGroup var options: GovernanceOptions

    @Option(name: .customLong("token"), help: "The enrollment token from the operator (`cleanroomd admin enroll`).")
    var token: String

    @Option(name: .customLong("name"), help: "The party's name.")
    var name: String

    @Option(name: .customLong("party-id"), help: "The party id (default: derived from the name).")
    var partyId: String?

    func run() async throws {
        try await runReporting(json: options.json) {
            let keys = try LocalKeys(options)
            var profile = try options.loadProfile()
            let server = try options.serverURL(profile)
            var body: [String: Any] = ["name": name, "signingKey": keys.signingPublicPEM, "resultKey": keys.resultPublicPEM]
            if let partyId { body["partyId"] = partyId }
            let reply = try await GovernanceClient(baseURL: server, token: token).call("POST", "/v1/register", json: body)
            let party = reply["party"] as? [String: Any] ?? [:]
            let principal = reply["principal"] as? [String: Any] ?? [:]
            let access = reply["accessKey"] as? [String: Any] ?? [:]
            profile.server = server
            profile.partyId = party["id"] as? String
            profile.principalId = principal["id"] as? String
            profile.credential = (reply["credential"] as? [String: Any])?["token"] as? String
            profile.accessKeyId = access["accessKeyId"] as? String
            profile.secretAccessKey = access["secretAccessKey"] as? String
            try options.saveProfile(profile)
            try options.output(
                "registered party \(profile.partyId ?? "?") (\(name)); credentials saved to \(options.profileURL.path)",
                json: ["party": party, "principal": principal, "profile": options.profileURL.path])
        }
    }
}
