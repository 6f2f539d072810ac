/// SigV4, an HTTP client over libcurl, and the S3 and KMS clients.
public enum AWSModule {}
