import Foundation

/// The folder `cleanroom output download` writes and `cleanroom verify` checks offline:
///
///     manifest.json          which job, collaboration, party, and the outputs below
///     policy.json            the policy's canonical text (its SHA-256 is the policy digest)
///     approval-bundle.json   the signed approvals exactly as the enclave received them
///     receipt.json           the enclave's signed receipt with its attestation document
///     model.esdk …           each output's ciphertext as delivered (an Encryption SDK message)
///     model.json …           each output decrypted with the party's result key
struct VerificationBundle {
    static let format = "cleanroom-verification-bundle-v1"
    static let manifestFile = "manifest.json"
    static let policyFile = "policy.json"
    static let approvalBundleFile = "approval-bundle.json"
    static let receiptFile = "receipt.json"

    /// One output of the party.
    struct Output: Codable, Equatable {
        var id: String
        var name: String
        var recipient: String
        var sha256: String
        var size: Int64
        /// The ciphertext's file name in the bundle.
        var ciphertext: String
        /// The decrypted file's name in the bundle.
        var plaintext: String
    }

    /// `manifest.json`.
    struct Manifest: Codable, Equatable {
        var format: String = VerificationBundle.format
        var job: String
        var collaboration: String
        var party: String
        var policyDigest: String
        var outputs: [Output]
    }

    /// File names for an artifact: `model` → model.json, `metrics` → metrics.json, `scores:own` → scores-own.csv.
    static func fileNames(artifact: String) -> (ciphertext: String, plaintext: String) {
        let base = artifact.replacingOccurrences(of: ":", with: "-").filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
        let safe = base.isEmpty ? "output" : base
        let ext = artifact.hasPrefix("scores") ? "csv" : "json"
        return ("\(safe).esdk", "\(safe).\(ext)")
    }

    static func readManifest(_ folder: URL) throws -> Manifest {
        let data = try read(folder, manifestFile, limit: 1 << 20)
        do {
            let manifest = try JSONDecoder().decode(Manifest.self, from: Data(data))
            guard manifest.format == format else {
                throw CLIError("\(folder.path)/\(manifestFile) has format \(manifest.format), not \(format)", exitCode: 2)
            }
            for output in manifest.outputs {
                for name in [output.ciphertext, output.plaintext] where name.contains("/") || name.hasPrefix(".") || name.isEmpty {
                    throw CLIError("\(manifestFile) names a file outside the bundle: \(name)")
                }
                if output.plaintext == output.ciphertext {
                    throw CLIError("\(manifestFile) names \(output.ciphertext) as both the ciphertext and the plaintext of \(output.name)")
                }
            }
            return manifest
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError("\(folder.path)/\(manifestFile) is not a verification bundle manifest", exitCode: 2)
        }
    }

    static func writeManifest(_ manifest: Manifest, to folder: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try write(Array(try encoder.encode(manifest)), to: folder.appendingPathComponent(manifestFile))
    }

    /// Reads a bundle file (bounded), with a usage error naming what is missing.
    static func read(_ folder: URL, _ name: String, limit: Int) throws -> [UInt8] {
        let url = folder.appendingPathComponent(name)
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw CLIError("the bundle has no \(name) (\(url.path)): download it with `cleanroom output download`", exitCode: 2)
        }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: limit + 1)) ?? Data()
        guard data.count <= limit else { throw CLIError("\(url.path) is larger than \(limit) bytes") }
        return Array(data)
    }

    /// Writes a file atomically (temporary file, then rename), mode 0644.
    static func write(_ bytes: [UInt8], to url: URL) throws {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: Data(bytes), attributes: [.posixPermissions: 0o644]),
            rename(temporary.path, url.path) == 0
        else {
            try? FileManager.default.removeItem(at: temporary)
            throw CLIError("cannot write \(url.path)")
        }
    }
}
