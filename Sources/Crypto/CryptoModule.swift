/// Thin safe Swift over OpenSSL 3: hashes, HMAC, HKDF, AES-GCM, ECDSA, RSA-OAEP, X.509, CMS.
public enum CryptoModule {}
