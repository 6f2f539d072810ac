/// The enclave program's logic and its channel protocol; see DESIGN §7.
public enum EnclaveModule {}
