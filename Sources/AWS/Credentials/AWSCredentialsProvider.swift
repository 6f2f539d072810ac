import Foundation

/// Something that yields AWS credentials, refreshing temporary ones as needed.
public protocol AWSCredentialsProvider: Sendable {
    func credentials() async throws -> AWSCredentials
}

/// Why credentials or configuration could not be found.
public struct AWSConfigurationError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "AWS configuration: \(message)" }
}

/// Fixed credentials.
public struct StaticCredentialsProvider: AWSCredentialsProvider {
    public let value: AWSCredentials
    public init(_ value: AWSCredentials) { self.value = value }
    public func credentials() async throws -> AWSCredentials { value }
}

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optional `AWS_SESSION_TOKEN`.
public struct EnvironmentCredentialsProvider: AWSCredentialsProvider {
    public let environment: [String: String]
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) { self.environment = environment }
    public func credentials() async throws -> AWSCredentials {
        guard let id = environment["AWS_ACCESS_KEY_ID"], !id.isEmpty,
            let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty
        else { throw AWSConfigurationError("AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set") }
        let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        return AWSCredentials(accessKeyId: id, secretAccessKey: secret, sessionToken: token)
    }
}

/// Static keys of a profile in the shared credentials file, else the config file.
public struct ProfileCredentialsProvider: AWSCredentialsProvider {
    public let profile: String
    public let credentialsFile: SharedConfigFile
    public let configFile: SharedConfigFile

    public init(profile: String, credentialsFile: SharedConfigFile, configFile: SharedConfigFile) {
        self.profile = profile
        self.credentialsFile = credentialsFile
        self.configFile = configFile
    }

    public func credentials() async throws -> AWSCredentials {
        for file in [credentialsFile, configFile] {
            if let p = file.profiles[profile], let id = p["aws_access_key_id"], let secret = p["aws_secret_access_key"] {
                return AWSCredentials(accessKeyId: id, secretAccessKey: secret, sessionToken: p["aws_session_token"])
            }
        }
        throw AWSConfigurationError("profile \(profile) has no aws_access_key_id / aws_secret_access_key")
    }
}

/// Tries providers in order and keeps the first that works (the SDKs' default chain).
public final class CredentialsProviderChain: AWSCredentialsProvider {
    public let providers: [any AWSCredentialsProvider]
    private let chosen = LockedBox<Int?>(nil)

    public init(_ providers: [any AWSCredentialsProvider]) { self.providers = providers }

    public func credentials() async throws -> AWSCredentials {
        if let i = chosen.withLock({ $0 }) { return try await providers[i].credentials() }
        var reasons: [String] = []
        for (i, provider) in providers.enumerated() {
            do {
                let c = try await provider.credentials()
                chosen.withLock { $0 = i }
                return c
            } catch {
                reasons.append("\(error)")
            }
        }
        throw AWSConfigurationError("no credentials found: " + reasons.joined(separator: "; "))
    }
}
