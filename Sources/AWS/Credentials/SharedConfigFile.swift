import Foundation

/// The AWS shared `config` and `credentials` files (INI), as AWS's SDKs read them.
///
/// `[default]` and `[name]` sections in the credentials file; `[default]` and
/// `[profile name]` in the config file; `#`/`;` comments; indented lines below a key with an
/// empty value are sub-properties (`s3 =` / `  endpoint_url = …`), stored as `s3.endpoint_url`.
public struct SharedConfigFile: Sendable, Equatable {
    /// Profile name → properties.
    public var profiles: [String: [String: String]]

    public init(profiles: [String: [String: String]] = [:]) { self.profiles = profiles }

    /// Parses file text; `isConfigFile` strips the `profile ` prefix of config-file sections.
    public static func parse(_ text: String, isConfigFile: Bool) -> SharedConfigFile {
        var profiles: [String: [String: String]] = [:]
        var current: String?
        var parentKey: String?
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = String(rawLine)
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { continue }
            if trimmed.hasPrefix("[") {
                guard let end = trimmed.firstIndex(of: "]") else { current = nil; continue }
                var name = trimmed[trimmed.index(after: trimmed.startIndex)..<end].trimmingCharacters(in: .whitespaces)
                if isConfigFile {
                    if name.hasPrefix("profile ") {
                        name = String(name.dropFirst("profile ".count)).trimmingCharacters(in: .whitespaces)
                    } else if name != "default" {
                        current = nil  // [services …], [sso-session …]: not profiles
                        continue
                    }
                }
                current = name
                parentKey = nil
                if profiles[name] == nil { profiles[name] = [:] }
                continue
            }
            guard let profile = current, let eq = trimmed.firstIndex(of: "=") else { continue }
            let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            var value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if let hash = value.range(of: " #") ?? value.range(of: " ;") { value = String(value[..<hash.lowerBound]).trimmingCharacters(in: .whitespaces) }
            let indented = line.first == " " || line.first == "\t"
            if indented, let parent = parentKey {
                profiles[profile]?["\(parent).\(key)"] = value
            } else {
                profiles[profile]?[key] = value
                parentKey = value.isEmpty ? key : nil
            }
        }
        return SharedConfigFile(profiles: profiles)
    }

    /// Reads a file; a missing file is an empty configuration.
    public static func load(path: String, isConfigFile: Bool) -> SharedConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else { return SharedConfigFile() }
        return parse(String(decoding: data, as: UTF8.self), isConfigFile: isConfigFile)
    }
}
