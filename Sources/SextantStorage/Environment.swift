import CLMDB
import Foundation
import SextantCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One LMDB environment: a directory holding `data.mdb`, `lock.mdb` and `sextant.lock`.
///
/// - One serialized writer: ``write(_:)`` calls from any threads run one at a time, each on the
///   calling thread from begin to commit, as LMDB requires.
/// - Readers are concurrent and lock-free (MVCC): ``read(_:)`` sees the last committed snapshot.
///   The environment uses `MDB_NOTLS`, so read transactions are not tied to thread-local slots.
/// - Values handed to closures point into the map and are valid only inside the closure.
/// - The map grows by itself on `MDB_MAP_FULL`: the write closure is then run again from the
///   start in a fresh transaction, so it must not have effects outside the transaction that a
///   second run would repeat wrongly.
/// - A directory can be open only once per process; a second open throws ``SextantError/Code/locked``.
package final class Environment: @unchecked Sendable {
    package let configuration: StorageConfiguration
    /// The canonical directory path.
    package let path: String
    private var env: OpaquePointer?
    let lmdb: LMDB
    let gate = RWGate()
    /// Times the map was set to a new size (its address may change then).
    private let remaps = RemapCounter()
    private let writer = PlainLock()
    private let fileID: FileID
    private let processLock: ProcessLock
    private let state = Mutex(State())

    private struct State {
        var closed = false
        var databases: [String: Database] = [:]
    }

    struct FileID: Hashable { var dev: UInt64; var ino: UInt64 }
    private static let openEnvironments = Mutex<Set<FileID>>([])

    /// Opens (and by default creates) the environment at `configuration.path`.
    package init(_ configuration: StorageConfiguration) throws(SextantError) {
        self.configuration = configuration
        self.lmdb = LMDB(injector: configuration.faultInjector)
        let dir = configuration.path
        var st = stat()
        if stat(dir, &st) != 0 {
            guard configuration.createIfMissing, !configuration.readOnly else {
                throw SextantError(.notFound, "no store at '\(dir)'", context: ["path": dir])
            }
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw SextantError(.io, "cannot create directory: \(error.localizedDescription)", context: ["path": dir])
            }
            guard stat(dir, &st) == 0 else {
                throw SextantError(.io, "cannot stat directory", context: ["path": dir], underlying: errno)
            }
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw SextantError(.invalidArgument, "'\(dir)' is not a directory (a store is a directory)", context: ["path": dir])
        }
        if !configuration.createIfMissing || configuration.readOnly {
            guard access(dir + "/data.mdb", F_OK) == 0 else {
                throw SextantError(.notFound, "no store at '\(dir)' (data.mdb missing)", context: ["path": dir])
            }
        }
        let id = FileID(dev: UInt64(st.st_dev), ino: UInt64(st.st_ino))
        let inserted = Environment.openEnvironments.withLock { $0.insert(id).inserted }
        guard inserted else {
            throw SextantError(.locked, "the store is already open in this process", context: ["path": dir])
        }
        fileID = id
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        path = realpath(dir, &resolved) != nil ? String(decoding: resolved.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : dir
        do {
            processLock = try ProcessLock(directory: dir, create: !configuration.readOnly)
            env = try Environment.openEnv(configuration, lmdb)
        } catch {
            Environment.openEnvironments.withLock { _ = $0.remove(id) }
            throw error
        }
        // A killed compaction's copy is removed once no compaction can be running: we hold
        // the store's shared lock, which a compaction holds exclusively until it is done.
        if !configuration.readOnly { Environment.removeCompactionLeftovers(of: path) }
        // Clear reader slots left by processes that died.
        if configuration.clearStaleReadersAtOpen {
            var dead: Int32 = 0
            _ = lmdb.call(.readerCheck) { mdb_reader_check(env, &dead) }
        }
    }

    private static func openEnv(_ c: StorageConfiguration, _ lmdb: LMDB) throws(SextantError) -> OpaquePointer {
        var e: OpaquePointer?
        try lmdb.check(.envCreate) { mdb_env_create(&e) }
        guard let env = e else { throw SextantError(.storage, "mdb_env_create returned no handle") }
        do {
            try lmdb.check(.envSetMaxReaders) { mdb_env_set_maxreaders(env, c.maxReaders) }
            try lmdb.check(.envSetMaxDBs) { mdb_env_set_maxdbs(env, MDB_dbi(c.maxDatabases)) }
            try lmdb.check(.envSetMapsize) { mdb_env_set_mapsize(env, max(c.initialMapSize, 1 << 20)) }
            var flags = UInt32(MDB_NOTLS)
            if c.readOnly { flags |= UInt32(MDB_RDONLY) }
            switch c.syncMode {
            case .durable: break
            case .noMetaSync: flags |= UInt32(MDB_NOMETASYNC)
            case .noSync: flags |= UInt32(MDB_NOSYNC)
            }
            try lmdb.check(.envOpen) { mdb_env_open(env, c.path, flags, 0o644) }
        } catch {
            lmdb.perform(.envClose) { mdb_env_close(env) }
            if error.code == .corrupted || error.underlying == MDB_INVALID {
                throw SextantError(.formatVersion, "'\(c.path)' is not an LMDB environment this build can read", context: ["path": c.path], underlying: error.underlying)
            }
            throw error.adding(["path": c.path])
        }
        return env
    }

    /// Closes the environment. Idempotent. No transaction may be running.
    package func close() {
        let wasOpen = state.withLock { s -> Bool in
            if s.closed { return false }
            s.closed = true
            return true
        }
        guard wasOpen else { return }
        gate.withExclusive {
            if let env { lmdb.perform(.envClose) { mdb_env_close(env) } }
            env = nil
        }
        processLock.release()
        Environment.openEnvironments.withLock { _ = $0.remove(fileID) }
    }

    deinit { close() }

    package var isClosed: Bool { state.withLock { $0.closed } }

    func handle() throws(SextantError) -> OpaquePointer {
        guard let env, !isClosed else { throw SextantError(.closed, "the store is closed", context: ["path": path]) }
        return env
    }

    /// Runs `body` while holding the store exclusively against other processes and handles.
    /// Throws ``SextantError/Code/locked`` when anyone else has the store open.
    package func withExclusiveAccess<R>(_ body: () throws -> R) throws -> R {
        guard processLock.tryExclusive() else {
            throw SextantError(.locked, "another process has the store open", context: ["path": path])
        }
        defer { processLock.downgrade() }
        return try body()
    }

    // MARK: Databases

    /// Opens a named database, creating it when `create` is true and the environment is writable.
    /// Returns nil when it does not exist and was not created.
    package func openDatabase(_ name: String, create: Bool = true, options: DatabaseOptions = []) throws -> Database? {
        try openDatabases([name], create: create, options: options)?.first
    }

    /// Opens several named databases in one write transaction (atomically: all or none),
    /// or, when the environment is read-only or `create` is false, returns nil if any is missing.
    package func openDatabases(_ names: [String], create: Bool, options: DatabaseOptions = []) throws -> [Database]? {
        let missing = names.filter { n in state.withLock { $0.databases[n] == nil } }
        if !missing.isEmpty {
            var opened: [Database] = []
            if create && !configuration.readOnly {
                opened = try write { txn throws -> [Database] in
                    var out: [Database] = []
                    for n in missing {
                        var dbi: MDB_dbi = 0
                        try lmdb.check(.dbiOpen) { mdb_dbi_open(txn.txn, n, options.rawValue | UInt32(MDB_CREATE), &dbi) }
                        out.append(Database(name: n, dbi: dbi))
                    }
                    return out
                }
            } else {
                // Handles opened in a read-only transaction survive only if it commits.
                let found = try readCommitting { txn throws -> [Database]? in
                    var out: [Database] = []
                    for n in missing {
                        var dbi: MDB_dbi = 0
                        let rc = lmdb.call(.dbiOpen) { mdb_dbi_open(txn.txn, n, options.rawValue, &dbi) }
                        if rc == MDB_NOTFOUND { return nil }
                        if rc != 0 { throw LMDB.error(rc, .dbiOpen) }
                        out.append(Database(name: n, dbi: dbi))
                    }
                    return out
                }
                guard let found else { return nil }
                opened = found
            }
            state.withLock { s in for d in opened { s.databases[d.name] = d } }
        }
        return state.withLock { s in names.map { s.databases[$0]! } }
    }

    /// LMDB's unnamed main database.
    package func mainDatabase() throws -> Database {
        try read { txn in
            var dbi: MDB_dbi = 0
            try lmdb.check(.dbiOpen) { mdb_dbi_open(txn.txn, nil, 0, &dbi) }
            return Database(name: "", dbi: dbi)
        }
    }

    /// The names of the named databases in the environment (the keys of LMDB's main database).
    package func databaseNames() throws -> [String] {
        try read { txn in
            var dbi: MDB_dbi = 0
            try lmdb.check(.dbiOpen) { mdb_dbi_open(txn.txn, nil, 0, &dbi) }
            var names: [String] = []
            try txn.scan(Database(name: "", dbi: dbi)) { k, _ in
                names.append(String(decoding: k, as: UTF8.self))
                return true
            }
            return names
        }
    }

    // MARK: Transactions

    /// Runs `body` in a read-only snapshot transaction. Concurrent with writers and other readers.
    package func read<R>(_ body: (Transaction) throws -> R) throws -> R {
        while true {
            let env = try handle()
            let outcome: R? = try gate.withShared { () throws -> R? in
                var t: OpaquePointer?
                let rc = lmdb.call(.txnBegin) { mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &t) }
                if rc == MDB_MAP_RESIZED { return nil }
                if rc != 0 { throw LMDB.error(rc, .txnBegin) }
                let txn = Transaction(txn: t!, lmdb: lmdb, writable: false)
                // Under the shared gate the map cannot be resized until this transaction ends.
                txn.mapGeneration = remaps.value
                defer {
                    txn.invalidate()
                    lmdb.perform(.txnAbort) { mdb_txn_abort(t) }
                }
                return try body(txn)
            }
            if let outcome { return outcome }
            try adoptForeignMapSize()
        }
    }

    /// Runs `body` with `count` read-only transactions that all see the same snapshot, so work
    /// split across threads reads one consistent state (SPEC §1: a batch sees one snapshot).
    ///
    /// The transactions are begun on the calling thread; because the environment uses
    /// `MDB_NOTLS`, `body` may hand each of them to a different thread, but each must be used by
    /// one thread at a time and not after `body` returns. LMDB cannot begin a transaction at an
    /// older snapshot, so when a commit lands between two begins the older transactions are
    /// begun again until every one sees the newest snapshot (a commit takes far longer than a
    /// begin, so this settles in a round or two).
    package func readSnapshot<R>(count: Int, _ body: ([Transaction]) throws -> R) throws -> R {
        precondition(count >= 1, "readSnapshot needs at least one transaction")
        while true {
            let env = try handle()
            let outcome: R? = try gate.withShared { () throws -> R? in
                var handles: [OpaquePointer?] = []
                defer { for t in handles { lmdb.perform(.txnAbort) { mdb_txn_abort(t) } } }
                // Begins one transaction, or reports that the map was resized (nil).
                func begin() throws -> OpaquePointer? {
                    var t: OpaquePointer?
                    let rc = lmdb.call(.txnBegin) { mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &t) }
                    if rc == MDB_MAP_RESIZED { return nil }
                    if rc != 0 { throw LMDB.error(rc, .txnBegin) }
                    return t
                }
                for _ in 0..<count {
                    guard let t = try begin() else { return nil }
                    handles.append(t)
                }
                var rounds = 0
                while true {
                    let ids = handles.map { mdb_txn_id($0) }
                    let newest = ids.max()!
                    if ids.allSatisfy({ $0 == newest }) { break }
                    rounds += 1
                    if rounds > 10_000 {
                        throw SextantError(.storage, "commits arrive too fast to open \(count) read transactions on one snapshot", context: ["path": path])
                    }
                    for i in handles.indices where ids[i] != newest {
                        lmdb.perform(.txnAbort) { mdb_txn_abort(handles[i]) }
                        handles[i] = nil
                        guard let t = try begin() else { return nil }
                        handles[i] = t
                    }
                }
                let generation = remaps.value
                let txns = handles.map { t -> Transaction in
                    let txn = Transaction(txn: t!, lmdb: lmdb, writable: false)
                    txn.mapGeneration = generation
                    return txn
                }
                defer { for txn in txns { txn.invalidate() } }
                return try body(txns)
            }
            if let outcome { return outcome }
            try adoptForeignMapSize()
        }
    }

    /// A read-only transaction that ends with `mdb_txn_commit` (needed to keep database handles).
    private func readCommitting<R>(_ body: (Transaction) throws -> R) throws -> R {
        let env = try handle()
        return try gate.withShared { () throws -> R in
            var t: OpaquePointer?
            try lmdb.check(.txnBegin) { mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &t) }
            let txn = Transaction(txn: t!, lmdb: lmdb, writable: false)
            do {
                let r = try body(txn)
                txn.invalidate()
                var committed = false
                let rc = lmdb.call(.txnCommit) { committed = true; return mdb_txn_commit(t) }
                if !committed { lmdb.perform(.txnAbort) { mdb_txn_abort(t) } }
                if rc != 0 { throw LMDB.error(rc, .txnCommit) }
                return r
            } catch {
                if txn.isLive { txn.invalidate(); lmdb.perform(.txnAbort) { mdb_txn_abort(t) } }
                throw error
            }
        }
    }

    /// Runs `body` in the write transaction: commits when it returns, aborts when it throws.
    ///
    /// Writers are serialized. When the map fills, it is grown and `body` runs again from the start.
    package func write<R>(_ body: (Transaction) throws -> R) throws -> R {
        guard !configuration.readOnly else {
            throw SextantError(.readOnly, "the store was opened read-only", context: ["path": path])
        }
        return try writer.withLock { () throws -> R in
            while true {
                let env = try handle()
                let step: WriteStep<R> = try gate.withShared { () throws -> WriteStep<R> in
                    var t: OpaquePointer?
                    let rc = lmdb.call(.txnBegin) { mdb_txn_begin(env, nil, 0, &t) }
                    if rc == MDB_MAP_RESIZED { return .resized }
                    if rc == MDB_MAP_FULL { return .grow }
                    if rc != 0 { throw LMDB.error(rc, .txnBegin) }
                    let txn = Transaction(txn: t!, lmdb: lmdb, writable: true)
                    do {
                        let r = try body(txn)
                        txn.invalidate()
                        // mdb_txn_commit frees the transaction even when it fails; an injected
                        // failure must do the same, or the writer lock would stay held.
                        var committed = false
                        let crc = lmdb.call(.txnCommit) { committed = true; return mdb_txn_commit(t) }
                        if !committed { lmdb.perform(.txnAbort) { mdb_txn_abort(t) } }
                        if crc == MDB_MAP_FULL { return .grow }
                        if crc != 0 { throw LMDB.error(crc, .txnCommit) }
                        return .done(r)
                    } catch let e as SextantError where e.code == .mapFull && e.underlying == MDB_MAP_FULL {
                        if txn.isLive { txn.invalidate(); lmdb.perform(.txnAbort) { mdb_txn_abort(t) } }
                        return .grow
                    } catch {
                        if txn.isLive { txn.invalidate(); lmdb.perform(.txnAbort) { mdb_txn_abort(t) } }
                        throw diskFullError(error) ?? error
                    }
                }
                switch step {
                case .done(let r): return r
                case .resized: try adoptForeignMapSize()
                case .grow: try growMap()
                }
            }
        }
    }

    /// A failed write on a full filesystem as `mapFull` naming the store, or nil for any other
    /// error. LMDB reports a full disk as `ENOSPC`, or as `EIO` when `pwrite` wrote only part of
    /// its pages (a short write); EIO counts as a full disk only when the store's filesystem has
    /// less than 1 MiB left for this process.
    private func diskFullError(_ error: any Error) -> SextantError? {
        guard let e = error as? SextantError, e.underlying == ENOSPC || (e.code == .io && e.underlying == EIO) else { return nil }
        var fs = statvfs()
        guard statvfs(path, &fs) == 0 else { return nil }
        let blocks = geteuid() == 0 ? UInt64(fs.f_bfree) : UInt64(fs.f_bavail)
        let free = blocks * UInt64(fs.f_frsize)
        guard e.underlying == ENOSPC || free < 1 << 20 else { return nil }
        var context = e.context
        context["path"] = path
        context["freeBytes"] = String(free)
        return SextantError(.mapFull, "the disk holding the store '\(path)' is full (\(free) bytes free); the transaction was rolled back and nothing committed is lost",
                            context: context, underlying: e.underlying)
    }

    /// Doubles the map (up to ``StorageConfiguration/maxMapSize``).
    private func growMap() throws {
        let current = try info().mapSize
        let limit = configuration.maxMapSize
        guard current < limit else {
            throw SextantError(.mapFull, "the store reached its maximum map size (\(limit) bytes)", context: ["path": path, "mapSize": String(current)], underlying: MDB_MAP_FULL)
        }
        guard gate.sharedDepth == 0 else {
            throw SextantError(.mapFull, "the map is full and cannot grow while this thread holds a read transaction", context: ["path": path], underlying: MDB_MAP_FULL)
        }
        let target = min(limit, max(current * 2, current + (64 << 20)))
        try gate.withExclusive { () throws in
            let env = try handle()
            try lmdb.check(.envSetMapsize) { mdb_env_set_mapsize(env, target) }
            remaps.increment()
        }
    }

    /// Another process grew the map: adopt its size.
    private func adoptForeignMapSize() throws {
        guard gate.sharedDepth == 0 else {
            throw SextantError(.storage, "the map was resized by another process while this thread holds a transaction", context: ["path": path])
        }
        try gate.withExclusive { () throws in
            let env = try handle()
            try lmdb.check(.envSetMapsize) { mdb_env_set_mapsize(env, 0) }
            remaps.increment()
        }
    }
}

private enum WriteStep<R> { case done(R), grow, resized }

/// A counter read and written under a lock (remaps are rare; reads happen once per transaction).
final class RemapCounter: @unchecked Sendable {
    private var count = 0
    private let lock = NSLock()
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
    func increment() { lock.lock(); count += 1; lock.unlock() }
}
