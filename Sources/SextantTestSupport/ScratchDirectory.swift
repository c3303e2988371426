import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where tests put their stores: one directory per test process under the system's temporary
/// directory, removed when the process exits — and, when a run was killed before it could,
/// by the next run — so repeated test runs do not fill the disk.
public enum ScratchDirectory {
    private static let prefix = "sextant-tests-"

    /// This process's directory (created on first use).
    public static let root: String = {
        let tmp = FileManager.default.temporaryDirectory.path
        removeStale(in: tmp)
        let dir = tmp + "/" + prefix + String(getpid())
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: ScratchDirectory.root) }
        return dir
    }()

    /// A fresh path in ``root`` named after `tag` (not created: stores create their own).
    public static func path(_ tag: String) -> String {
        root + "/" + String(tag.filter { $0.isLetter || $0.isNumber }.prefix(40)) + "-" + String(UUID().uuidString.prefix(8))
    }

    /// Directories of earlier runs whose process no longer exists.
    private static func removeStale(in tmp: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: tmp) else { return }
        for name in names where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { try? FileManager.default.removeItem(atPath: tmp + "/" + name) }
        }
    }
}
