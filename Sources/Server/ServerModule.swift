/// REST handlers, job orchestration, the key-release gate and the enclave launcher.
public enum ServerModule {}
