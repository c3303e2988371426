#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SextantCore

/// An advisory `flock` on `<store>/sextant.lock`.
///
/// Every open handle holds it shared; operations that need the store to themselves (compact's
/// atomic swap) upgrade to exclusive without waiting, which fails while any other process
/// (or handle) has the store open. LMDB's own lock file cannot tell us that.
final class ProcessLock: @unchecked Sendable {
    private var fd: Int32
    let path: String

    init(directory: String, create: Bool) throws(SextantError) {
        path = directory + "/sextant.lock"
        let flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0)
        var f = open(path, flags, 0o644)
        if f < 0 && (errno == EACCES || errno == EROFS) {
            f = open(path, O_RDONLY | O_CLOEXEC)
        }
        guard f >= 0 else {
            throw SextantError(errno == ENOENT ? .notFound : .io, "cannot open lock file: \(String(cString: strerror(errno)))", context: ["path": path], underlying: errno)
        }
        fd = f
        if flock(fd, LOCK_SH | LOCK_NB) != 0 {
            let e = errno
            close(fd)
            throw SextantError(.locked, "the store is locked exclusively by another process (compaction in progress?)", context: ["path": path], underlying: e)
        }
    }

    /// Tries to become the only holder. Returns false when another handle holds it.
    func tryExclusive() -> Bool { fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 }

    /// Goes back to shared after ``tryExclusive()``.
    func downgrade() { _ = flock(fd, LOCK_SH | LOCK_NB) }

    /// Gives the lock up (at close; idempotent).
    func release() {
        guard fd >= 0 else { return }
        _ = flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
