/// The raw RSA keyring names outputs are encrypted under: namespace `cleanroom-result`, key name
/// = the recipient party id. A partner decrypts with the same names and its result private key
/// (our CLI, or AWS's SDKs with a raw RSA keyring, OAEP-SHA256).
public enum ResultKeyring {
    public static let keyNamespace = "cleanroom-result"
}
