import CLMDB
import Foundation
import SextantCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sizes and counters of an environment, for `stat`.
package struct EnvironmentInfo: Sendable {
    package var mapSize: Int
    package var pageSize: Int
    /// Pages in use (the high-water mark of the data file).
    package var usedPages: Int
    package var usedBytes: Int { usedPages * pageSize }
    package var maxReaders: Int
    package var readersInUse: Int
    package var lastTransactionID: Int
    /// Bytes of `data.mdb` on disk.
    package var fileSize: Int
}

extension Environment {
    // MARK: Maintenance

    /// Map, page and reader figures.
    package func info() throws(SextantError) -> EnvironmentInfo {
        let env = try handle()
        var i = MDB_envinfo()
        var s = MDB_stat()
        try lmdb.check(.envInfo) { mdb_env_info(env, &i) }
        try lmdb.check(.envStat) { mdb_env_stat(env, &s) }
        var st = stat()
        let size = stat(path + "/data.mdb", &st) == 0 ? Int(st.st_size) : 0
        return EnvironmentInfo(
            mapSize: i.me_mapsize, pageSize: Int(s.ms_psize), usedPages: i.me_last_pgno + 1,
            maxReaders: Int(i.me_maxreaders), readersInUse: Int(i.me_numreaders),
            lastTransactionID: i.me_last_txnid, fileSize: size)
    }

    /// Drops this process's mappings of the data file's pages. The map is read-only and
    /// shared (no `MDB_WRITEMAP`), so the pages stay in the page cache and fault back in on the
    /// next read, and pointers into the map stay valid. Long operations call it between
    /// phases, so that the resident size counts the pages a phase reads, not every page the
    /// process has read since it opened the store.
    package func releaseMappedPages() {
        #if os(Linux)
        withDataFileMapping { base, bytes in _ = madvise(base, bytes, MADV_DONTNEED) }
        #endif
    }

    /// Maps every page of the data file into this process now (`MADV_POPULATE_READ`, Linux 5.14
    /// and later; elsewhere nothing), so that later reads take no page faults: a fresh process
    /// would otherwise fault each 64 KiB of the map it first touches, and threads faulting on
    /// one map at once slow each other down. Reads the file from disk where it is not cached.
    /// Returns whether the kernel did it.
    @discardableResult
    package func populateMappedPages() -> Bool {
        #if os(Linux)
        var done = false
        // MADV_POPULATE_READ (glibc headers may predate it).
        withDataFileMapping { base, bytes in done = madvise(base, bytes, 22) == 0 }
        return done
        #else
        return false
        #endif
    }

    #if os(Linux)
    /// `body(base, bytes)` for this process's mapping of the data file, up to the file's end
    /// (the rest of the map holds no pages).
    private func withDataFileMapping(_ body: (UnsafeMutableRawPointer, Int) -> Void) {
        guard let env = try? handle() else { return }
        var fd: Int32 = -1
        guard mdb_env_get_fd(env, &fd) == 0 else { return }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { return }
        // LMDB reports the map's address only with MDB_FIXEDMAP: find the data file's mapping
        // (same device and inode) among this process's mappings.
        // Read to the end: procfs reports a size of 0, and `String(contentsOfFile:)` then returns
        // only the first page (about 40 mappings; a process with more would never find its map).
        guard let handle = FileHandle(forReadingAtPath: "/proc/self/maps") else { return }
        defer { try? handle.close() }
        guard let bytes = try? handle.readToEnd() else { return }
        let maps = String(decoding: bytes, as: UTF8.self)
        for line in maps.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 6, let inode = UInt64(f[4]), inode == UInt64(st.st_ino) else { continue }
            let dev = f[3].split(separator: ":")
            guard dev.count == 2, let major = UInt32(dev[0], radix: 16), let minor = UInt32(dev[1], radix: 16),
                  major == Self.deviceMajor(UInt64(st.st_dev)), minor == Self.deviceMinor(UInt64(st.st_dev)) else { continue }
            let range = f[0].split(separator: "-")
            guard range.count == 2, let lo = UInt(range[0], radix: 16), let hi = UInt(range[1], radix: 16), hi > lo,
                  let base = UnsafeMutableRawPointer(bitPattern: lo) else { continue }
            body(base, min(Int(hi - lo), Int(st.st_size)))
        }
    }
    #endif

    /// glibc's encoding of a device number (`gnu_dev_major` / `gnu_dev_minor`, macros Swift
    /// does not import).
    private static func deviceMajor(_ d: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: ((d >> 8) & 0xFFF) | ((d >> 32) & ~0xFFF)) }
    private static func deviceMinor(_ d: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: (d & 0xFF) | ((d >> 12) & ~0xFF)) }

    /// The reader table as LMDB prints it (pid, thread, txnid per slot).
    package func readerTable() throws(SextantError) -> [String] {
        let env = try handle()
        final class Lines { var items: [String] = [] }
        let lines = Lines()
        let ctx = Unmanaged.passUnretained(lines).toOpaque()
        _ = lmdb.call(.readerList) {
            mdb_reader_list(env, { msg, ctx in
                guard let msg, let ctx else { return 0 }
                Unmanaged<Lines>.fromOpaque(ctx).takeUnretainedValue().items.append(String(cString: msg).trimmingTrailingNewline())
                return 0
            }, ctx)
        }
        return lines.items
    }

    /// Clears reader slots of dead processes; returns how many were cleared.
    @discardableResult
    package func clearStaleReaders() throws(SextantError) -> Int {
        let env = try handle()
        var dead: Int32 = 0
        try lmdb.check(.readerCheck) { mdb_reader_check(env, &dead) }
        return Int(dead)
    }

    /// Writes a consistent copy (a hot backup) into the empty or new directory `destination`.
    /// Runs in a read transaction, so writers go on meanwhile. With `compact`, free pages are
    /// omitted and the copy is as small as the live data allows.
    package func copy(to destination: String, compact: Bool) throws {
        let env = try handle()
        if mkdir(destination, 0o755) != 0 && errno != EEXIST {
            throw SextantError(.io, "cannot create '\(destination)': \(String(cString: strerror(errno)))", context: ["path": destination], underlying: errno)
        }
        if access(destination + "/data.mdb", F_OK) == 0 {
            throw SextantError(.alreadyExists, "'\(destination)' already holds a store", context: ["path": destination])
        }
        try gate.withShared { () throws in
            try lmdb.check(.envCopy) { mdb_env_copy2(env, destination, compact ? UInt32(MDB_CP_COMPACT) : 0) }
        }
        try Environment.fsyncFile(destination + "/data.mdb")
        try Environment.fsyncFile(destination)
    }

    /// Forces a flush to disk (useful after writes in ``StorageConfiguration/SyncMode/noSync`` mode).
    package func sync() throws(SextantError) {
        let env = try handle()
        try lmdb.check(.envSync) { mdb_env_sync(env, 1) }
    }

    static func fsyncFile(_ p: String) throws(SextantError) {
        let fd = open(p, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SextantError(.io, "cannot open '\(p)' to sync", context: ["path": p], underlying: errno) }
        defer { _ = Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw SextantError(.io, "fsync failed for '\(p)'", context: ["path": p], underlying: errno) }
    }
}

extension String {
    func trimmingTrailingNewline() -> String {
        var s = self
        while s.hasSuffix("\n") { s.removeLast() }
        return s
    }
}
