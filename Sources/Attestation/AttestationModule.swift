/// CBOR, COSE_Sign1, Nitro attestation documents, their verifier, the NSM client and the development attestor.
public enum AttestationModule {}
