import Crypto

extension DevelopmentCA {
    /// The organisation every development certificate names (`O=`), which is how a development
    /// root is recognised when it is loaded from PEM without further context.
    public static let organization = "cleanroom development attestation"

    /// True if `name` carries the development organisation.
    public static func isDevelopmentName(_ name: DistinguishedName) -> Bool {
        name.attributes.contains { $0.type == "O" && $0.value == organization }
    }
}
