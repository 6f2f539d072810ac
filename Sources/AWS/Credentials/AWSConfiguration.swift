import Foundation

/// Region, credentials and endpoints resolved the way AWS's SDKs do.
///
/// Region: `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's `region`.
/// Credentials: environment, then the profile (`AWS_PROFILE`, else `default`) in the shared
/// credentials and config files (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`, else
/// `~/.aws/…`), then the EC2 instance role over IMDSv2 (unless `AWS_EC2_METADATA_DISABLED`).
/// Endpoints: `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`, the profile's
/// `<service>.endpoint_url` or `endpoint_url`, else the public AWS endpoint.
public struct AWSConfiguration: Sendable {
    public var region: String
    public var credentials: any AWSCredentialsProvider
    /// Explicit endpoint overrides by service id (`s3`, `kms`), plus `""` for the global override.
    public var endpointOverrides: [String: String]

    public init(region: String, credentials: any AWSCredentialsProvider, endpointOverrides: [String: String] = [:]) {
        self.region = region
        self.credentials = credentials
        self.endpointOverrides = endpointOverrides
    }

    /// Resolves from the environment and the shared files.
    public static func resolve(
        environment env: [String: String] = ProcessInfo.processInfo.environment, profile explicitProfile: String? = nil,
        httpClient: HTTPClient = .shared
    ) -> AWSConfiguration {
        let home = env["HOME"] ?? NSHomeDirectory()
        let profile = explicitProfile ?? env["AWS_PROFILE"] ?? env["AWS_DEFAULT_PROFILE"] ?? "default"
        let credentialsFile = SharedConfigFile.load(
            path: env["AWS_SHARED_CREDENTIALS_FILE"] ?? "\(home)/.aws/credentials", isConfigFile: false)
        let configFile = SharedConfigFile.load(path: env["AWS_CONFIG_FILE"] ?? "\(home)/.aws/config", isConfigFile: true)
        let props = configFile.profiles[profile] ?? [:]
        let region = env["AWS_REGION"] ?? env["AWS_DEFAULT_REGION"] ?? props["region"] ?? "us-east-1"

        var providers: [any AWSCredentialsProvider] = [
            EnvironmentCredentialsProvider(environment: env),
            ProfileCredentialsProvider(profile: profile, credentialsFile: credentialsFile, configFile: configFile),
        ]
        if env["AWS_EC2_METADATA_DISABLED"]?.lowercased() != "true" {
            providers.append(
                InstanceMetadataCredentialsProvider(endpoint: env["AWS_EC2_METADATA_SERVICE_ENDPOINT"], client: httpClient))
        }

        var overrides: [String: String] = [:]
        if let url = props["endpoint_url"] { overrides[""] = url }
        for (key, value) in props where key.hasSuffix(".endpoint_url") {
            overrides[String(key.dropLast(".endpoint_url".count))] = value
        }
        if let url = env["AWS_ENDPOINT_URL"] {
            // The global environment override outranks everything in the shared config file.
            overrides = ["": url]
        }
        for (key, value) in env where key.hasPrefix("AWS_ENDPOINT_URL_") {
            overrides[key.dropFirst("AWS_ENDPOINT_URL_".count).lowercased()] = value
        }
        return AWSConfiguration(region: region, credentials: CredentialsProviderChain(providers), endpointOverrides: overrides)
    }

    /// The endpoint for a service (`s3`, `kms`): an override, else AWS's public regional endpoint.
    public func endpoint(for service: String) -> String {
        if let e = endpointOverrides[service] ?? endpointOverrides[""] { return e }
        return "https://\(service).\(region).amazonaws.com"
    }

    /// Whether the endpoint of `service` was overridden (S3-compatible servers want path-style URLs).
    public func hasEndpointOverride(for service: String) -> Bool {
        endpointOverrides[service] != nil || endpointOverrides[""] != nil
    }
}
