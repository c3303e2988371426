import CLMDB
import Foundation
import SextantCore
#if canImport(Glibc)
import Glibc
#endif

extension Environment {
    /// Compacts the store at `path`: a compacting copy into a sibling directory, fsync, then an
    /// atomic swap of the two directories. Refuses (``SextantError/Code/locked``) while any other
    /// process or handle has the store open. Returns the data file's size before and after.
    package static func compact(path: String) throws -> (before: Int, after: Int) {
        var config = StorageConfiguration(path: path)
        config.createIfMissing = false
        let env = try Environment(config)
        defer { env.close() }
        let canonical = env.path
        let tmp = canonical + compactionSuffix + String(getpid())
        let before = try env.info().fileSize
        return try env.withExclusiveAccess {
            // The store is ours alone: any compaction directory beside it is a killed one's.
            Environment.removeCompactionLeftovers(of: canonical)
            try env.copy(to: tmp, compact: true)
            // Give the new directory its own lock file so that later openers lock the live store.
            let fd = open(tmp + "/sextant.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
            if fd >= 0 { _ = Glibc.close(fd) }
            if sextant_rename_exchange(tmp, canonical) != 0 {
                // No RENAME_EXCHANGE here: fall back to two renames (a crash between them leaves
                // the store at the `.old` path, never a half-written one).
                let old = canonical + ".old-\(getpid())"
                guard rename(canonical, old) == 0 else {
                    throw SextantError(.io, "cannot move the store aside: \(String(cString: strerror(errno)))", context: ["path": canonical], underlying: errno)
                }
                guard rename(tmp, canonical) == 0 else {
                    let e = errno
                    _ = rename(old, canonical)
                    throw SextantError(.io, "cannot move the compacted copy in place", context: ["path": canonical], underlying: e)
                }
                try? Environment.removeStoreDirectory(old)
            } else {
                try? Environment.removeStoreDirectory(tmp)
            }
            let dirfd = open((canonical as NSString).deletingLastPathComponent, O_RDONLY | O_CLOEXEC)
            if dirfd >= 0 { _ = fsync(dirfd); _ = Glibc.close(dirfd) }
            var st = stat()
            let after = stat(canonical + "/data.mdb", &st) == 0 ? Int(st.st_size) : 0
            return (before, after)
        }
    }

    /// What a compaction appends to the store's path for its copy (then the pid).
    static let compactionSuffix = ".compact-"

    /// Removes the copies that killed compactions of the store at `canonical` left beside it
    /// (`<store>.compact-<pid>`: a directory of at most `data.mdb`, `lock.mdb` and
    /// `sextant.lock`). Only safe while no compaction of this store can be running: under its
    /// exclusive lock, or holding its shared lock (a running compaction holds it exclusively
    /// until its copy is in place). A directory holding anything else is left alone.
    static func removeCompactionLeftovers(of canonical: String) {
        let parent = (canonical as NSString).deletingLastPathComponent
        let prefix = (canonical as NSString).lastPathComponent + compactionSuffix
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: parent.isEmpty ? "." : parent) else { return }
        for name in names where name.hasPrefix(prefix) && !name.dropFirst(prefix.count).isEmpty
            && name.dropFirst(prefix.count).allSatisfy(\.isNumber) {
            let path = (parent as NSString).appendingPathComponent(name)
            guard let inside = try? FileManager.default.contentsOfDirectory(atPath: path),
                  Set(inside).isSubset(of: ["data.mdb", "lock.mdb", "sextant.lock"]) else { continue }
            try? removeStoreDirectory(path)
        }
    }

    package static func removeStoreDirectory(_ p: String) throws {
        for f in ["data.mdb", "lock.mdb", "sextant.lock"] { unlink(p + "/" + f) }
        guard rmdir(p) == 0 || errno == ENOENT else {
            throw SextantError(.io, "cannot remove '\(p)'", context: ["path": p], underlying: errno)
        }
    }
}
