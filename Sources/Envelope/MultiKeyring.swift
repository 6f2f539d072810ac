/// A keyring made of others: the generator makes (and wraps) the data key, every child wraps it
/// too, so any one of them can decrypt. On decrypt the generator and children are tried in order
/// until one succeeds; their failures are reported together when none does.
public struct MultiKeyring: Keyring {
    public let generator: (any Keyring)?
    public let children: [any Keyring]

    /// At least one of `generator` and `children` is required; encryption needs a generator,
    /// or materials that already carry a data key.
    public init(generator: (any Keyring)?, children: [any Keyring] = []) throws {
        guard generator != nil || !children.isEmpty else {
            throw EnvelopeError(.keyringConfiguration, "a multi-keyring needs a generator or at least one child")
        }
        self.generator = generator
        self.children = children
    }

    public func onEncrypt(_ materials: EncryptionMaterials) async throws -> EncryptionMaterials {
        var current = materials
        if let generator {
            current = try await generator.onEncrypt(current)
        }
        guard current.plaintextDataKey != nil else {
            throw EnvelopeError(
                .keyringConfiguration, "a multi-keyring without a generator cannot encrypt without a data key")
        }
        for child in children { current = try await child.onEncrypt(current) }
        return current
    }

    public func onDecrypt(_ materials: DecryptionMaterials, encryptedDataKeys: [EncryptedDataKey]) async throws
        -> DecryptionMaterials
    {
        try requireNoDataKey(materials)
        var failures: [String] = []
        for keyring in (generator.map { [$0] } ?? []) + children {
            do {
                let result = try await keyring.onDecrypt(materials, encryptedDataKeys: encryptedDataKeys)
                if result.plaintextDataKey != nil { return result }
            } catch let error as EnvelopeError {
                failures.append(error.message)
            } catch {
                failures.append("\(error)")
            }
        }
        throw EnvelopeError(
            .noDecryptableDataKey, "no keyring of the multi-keyring could decrypt a data key: " + failures.joined(separator: "; "))
    }
}
