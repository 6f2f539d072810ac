import Crypto

/// A root certificate the verifier trusts, with a name for outputs and whether it is a
/// development root (documents under it are marked development everywhere they appear).
public struct TrustedRoot: Sendable {
    /// The root certificate.
    public let certificate: Certificate
    /// A short name, e.g. `aws-nitro-enclaves-root-g1` or `cleanroom-development`.
    public let name: String
    /// True for the development CA of ``DevelopmentAttestor``: never a production root.
    public let isDevelopment: Bool

    public init(certificate: Certificate, name: String, isDevelopment: Bool) {
        self.certificate = certificate
        self.name = name
        self.isDevelopment = isDevelopment
    }

    /// A root from PEM. Unless told otherwise, a root whose subject carries the development
    /// attestor's organisation is treated as a development root.
    public init(pem: String, name: String? = nil, isDevelopment: Bool? = nil) throws(AttestationError) {
        let certificate: Certificate
        do {
            certificate = try Certificate(pemEncoded: pem)
        } catch {
            throw AttestationError(.malformedCertificate, "the root is not a PEM certificate: \(error)")
        }
        let development = isDevelopment ?? DevelopmentCA.isDevelopmentName(certificate.subject)
        self.init(
            certificate: certificate,
            name: name ?? certificate.subject.commonName ?? "root",
            isDevelopment: development
        )
    }

    /// SHA-256 of the DER certificate, lowercase hex (AWS publishes this value for its root).
    public var sha256Fingerprint: String { Hex.encode(HashFunction.sha256.hash(certificate.derRepresentation)) }

    /// The AWS Nitro Enclaves Root-G1 certificate (valid 2019-10-28 to 2049-10-28), as published by AWS
    /// in "Verifying the root of trust"; its DER SHA-256 is
    /// 641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b.
    public static let awsNitroEnclavesRootG1: TrustedRoot = {
        guard let certificate = try? Certificate(pemEncoded: awsNitroEnclavesRootG1PEM) else {
            fatalError("the embedded AWS Nitro Enclaves root certificate does not parse")
        }
        return TrustedRoot(certificate: certificate, name: "aws-nitro-enclaves-root-g1", isDevelopment: false)
    }()

    /// SHA-256 of the AWS root's DER, pinned.
    public static let awsNitroEnclavesRootG1SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"

    static let awsNitroEnclavesRootG1PEM = """
        -----BEGIN CERTIFICATE-----
        MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
        MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
        VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
        MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
        DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
        BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
        48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
        h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
        R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
        MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
        rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
        IwLz3/Y=
        -----END CERTIFICATE-----
        """
}
