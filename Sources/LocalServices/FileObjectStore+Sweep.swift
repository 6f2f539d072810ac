import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension FileObjectStore {
    /// What opening a store removed (leftovers of puts and deletes a crash interrupted) and found.
    ///
    /// Removed: everything in `tmp/` (unfinished data files, metadata being written, objects being
    /// deleted); a version's `.meta` without its `.data` (a crash between a put's two renames, or
    /// during a version's delete: never listed or served); an object folder with no version left
    /// (only its `key`). Never removed: a `.data` file, or a folder holding anything else. A version
    /// whose `.data` has no `.meta` (which the put's order rules out; damage from outside) is kept
    /// and only reported.
    public struct OpenSweep: Sendable, Equatable {
        /// Another open store held the root, so nothing was swept (its puts may be in flight).
        public var skipped = false
        /// Entries removed from `tmp/`.
        public var temporaryFiles: [String] = []
        /// `.meta` files removed, as `objects/<folder>/<version>.meta`.
        public var orphanedMetadata: [String] = []
        /// Object folders removed because no version was left in them, as `objects/<folder>`.
        public var emptyObjects: [String] = []
        /// Data files kept that have no metadata (the object's reads fail): `objects/<folder>/<version>.data`.
        public var dataWithoutMetadata: [String] = []

        public init(skipped: Bool = false) { self.skipped = skipped }

        /// Whether there is anything to tell the operator.
        public var isEmpty: Bool {
            temporaryFiles.isEmpty && orphanedMetadata.isEmpty && emptyObjects.isEmpty && dataWithoutMetadata.isEmpty
        }
    }

    /// Removes what interrupted puts and deletes left. Only while no put can be in flight (the
    /// caller holds the root's lock exclusively). Best effort: a file that cannot be removed stays
    /// for the next open.
    static func sweep(objects: URL, tmp: URL) -> OpenSweep {
        var result = OpenSweep()
        let files = FileManager.default
        for leftover in ((try? files.contentsOfDirectory(atPath: tmp.path)) ?? []).sorted() {
            if (try? files.removeItem(at: tmp.appendingPathComponent(leftover))) != nil {
                result.temporaryFiles.append(leftover)
            }
        }
        for folder in ((try? files.contentsOfDirectory(atPath: objects.path)) ?? []).sorted() {
            let dir = objects.appendingPathComponent(folder)
            var info = stat()
            guard lstat(dir.path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { continue }
            let names = Set((try? files.contentsOfDirectory(atPath: dir.path)) ?? [])
            func versions(_ suffix: String) -> Set<String> {
                Set(names.filter { $0.hasSuffix(suffix) }.map { String($0.dropLast(suffix.count)) }.filter(validVersionId))
            }
            let data = versions(".data"), meta = versions(".meta")
            var removed: Set<String> = []
            for version in meta.subtracting(data).sorted() where unlink(dir.appendingPathComponent("\(version).meta").path) == 0 {
                result.orphanedMetadata.append("objects/\(folder)/\(version).meta")
                removed.insert("\(version).meta")
            }
            for version in data.subtracting(meta).sorted() {
                result.dataWithoutMetadata.append("objects/\(folder)/\(version).data")
            }
            // No version left, nothing but the key: an object a crash left before its first version
            // (or whose versions were all deleted one by one).
            if data.isEmpty && names.subtracting(removed).isSubset(of: ["key"]) {
                unlink(dir.appendingPathComponent("key").path)
                if rmdir(dir.path) == 0 { result.emptyObjects.append("objects/\(folder)") }
            }
        }
        return result
    }
}
