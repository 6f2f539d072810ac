import AWS
import Attestation
import Envelope
import Foundation
import LocalServices
import Logging

/// Where `cleanroomd` keeps objects and which KMS it uses (`cleanroomd serve` options):
///
/// - `--object-store file:DIR` (default: `DATA/objects`) or `s3://BUCKET/PREFIX`, with
///   `--s3-endpoint URL` for S3-compatible servers; region and credentials from the usual AWS
///   sources (environment, shared files, instance role).
/// - `--kms local` (default: the embedded KMS, also served at `POST /` over the KMS JSON
///   protocol) or `--kms aws`, with `--kms-endpoint URL` to override the AWS endpoint.
public struct StorageConfiguration: Sendable, Equatable {
    public enum ObjectStoreChoice: Sendable, Equatable {
        case file(path: String?)
        case s3(bucket: String, prefix: String)
    }
    public enum KMSChoice: String, Sendable, Equatable {
        case local, aws
    }

    public var objectStore: ObjectStoreChoice = .file(path: nil)
    public var s3Endpoint: String?
    public var kms: KMSChoice = .local
    public var kmsEndpoint: String?

    public init() {}

    /// Parses the option values (nil = not given); errors name the option.
    public init(objectStore: String?, s3Endpoint: String?, kms: String?, kmsEndpoint: String?) throws {
        if let spec = objectStore {
            if spec.hasPrefix("file:") {
                let path = String(spec.dropFirst(5))
                guard !path.isEmpty else { throw ConfigurationError("--object-store file: needs a directory, e.g. file:/srv/objects") }
                self.objectStore = .file(path: path)
            } else if spec.hasPrefix("s3://") {
                let rest = spec.dropFirst(5)
                let bucket = String(rest.prefix { $0 != "/" })
                var prefix = String(rest.dropFirst(bucket.count)).drop { $0 == "/" }.description
                if !prefix.isEmpty && !prefix.hasSuffix("/") { prefix += "/" }
                guard !bucket.isEmpty else { throw ConfigurationError("--object-store s3:// needs a bucket: s3://BUCKET/PREFIX") }
                self.objectStore = .s3(bucket: bucket, prefix: prefix)
            } else {
                throw ConfigurationError("--object-store must be file:DIR or s3://BUCKET/PREFIX, not \(spec)")
            }
        }
        if let s3Endpoint {
            guard case .s3 = self.objectStore else { throw ConfigurationError("--s3-endpoint needs --object-store s3://…") }
            guard s3Endpoint.hasPrefix("http://") || s3Endpoint.hasPrefix("https://") else {
                throw ConfigurationError("--s3-endpoint must be an http(s) URL")
            }
            self.s3Endpoint = s3Endpoint
        }
        if let kms {
            guard let choice = KMSChoice(rawValue: kms) else { throw ConfigurationError("--kms must be local or aws, not \(kms)") }
            self.kms = choice
        }
        if let kmsEndpoint {
            guard self.kms == .aws else { throw ConfigurationError("--kms-endpoint needs --kms aws") }
            guard kmsEndpoint.hasPrefix("http://") || kmsEndpoint.hasPrefix("https://") else {
                throw ConfigurationError("--kms-endpoint must be an http(s) URL")
            }
            self.kmsEndpoint = kmsEndpoint
        }
    }
}

/// The storage and key services built from a `StorageConfiguration`.
public struct StorageServices: Sendable {
    public let objectStore: any ObjectStore
    public let kms: any KeyManagementService
    /// The embedded KMS when `--kms local`; its endpoint is served at `POST /`.
    public let localKMS: LocalKMS?

    /// Builds the services. The local KMS lives in `DATA/kms`, trusts the development
    /// attestation CA of `DATA` for `Recipient`, and accepts the operator's SigV4 key pair.
    public static func make(_ c: StorageConfiguration, dataDirectory: DataDirectory) throws -> StorageServices {
        let aws = AWSConfiguration.resolve()
        let store: any ObjectStore
        switch c.objectStore {
        case .file(let path):
            store = try FileObjectStore(root: path.map { URL(fileURLWithPath: $0) } ?? dataDirectory.file("objects"))
        case .s3(let bucket, let prefix):
            store = try S3ObjectStore(bucket: bucket, prefix: prefix, configuration: aws, endpoint: c.s3Endpoint)
        }
        switch c.kms {
        case .local:
            let ca = try DevelopmentCA.openOrCreate(dataDirectory: dataDirectory.path)
            let local = try LocalKMS(
                directory: dataDirectory.file("kms"), region: aws.region,
                attestationVerifier: AttestationVerifier(trustedRoots: [ca.trustedRoot]))
            return StorageServices(objectStore: store, kms: local, localKMS: local)
        case .aws:
            return StorageServices(objectStore: store, kms: try AWSKMSClient(configuration: aws, endpoint: c.kmsEndpoint), localKMS: nil)
        }
    }
}

extension StorageServices {
    /// Logs what opening the file object store swept (`FileObjectStore.OpenSweep`): leftovers of
    /// interrupted puts and deletes it removed, versions whose metadata is missing (an error: reads
    /// of them fail), or that another process held the store so nothing was swept.
    public static func logOpening(of objectStore: any ObjectStore, to logger: Logger) {
        guard let files = objectStore as? FileObjectStore else { return }
        let sweep = files.openSweep
        let store: Logger.MetadataValue = "\(files.root.path)"
        if sweep.skipped {
            logger.warning(
                "another process has the object store open: leftovers of interrupted puts were not removed",
                metadata: ["store": store])
        }
        if !sweep.temporaryFiles.isEmpty || !sweep.orphanedMetadata.isEmpty || !sweep.emptyObjects.isEmpty {
            logger.notice(
                "removed what interrupted puts and deletes left in the object store",
                metadata: [
                    "store": store, "temporaryFiles": "\(sweep.temporaryFiles.count)",
                    "orphanedMetadata": "\(sweep.orphanedMetadata)", "emptyObjects": "\(sweep.emptyObjects.count)",
                ])
        }
        if !sweep.dataWithoutMetadata.isEmpty {
            logger.error(
                "object versions without their metadata (reads of them fail): restore the .meta files from a backup, or delete the versions",
                metadata: ["store": store, "versions": "\(sweep.dataWithoutMetadata)"])
        }
    }
}
