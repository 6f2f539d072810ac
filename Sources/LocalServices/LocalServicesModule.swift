/// Embedded defaults: the local KMS and the file-backed object store.
public enum LocalServicesModule {}
