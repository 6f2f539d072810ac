/// The AWS Encryption SDK message format (streaming) and its keyrings; see DESIGN §4.
public enum EnvelopeModule {}
