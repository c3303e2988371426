import CLMDB
import SextantCore
#if canImport(Glibc)
import Glibc
#endif

/// A transaction, handed to the closures of ``Environment/read(_:)`` and ``Environment/write(_:)``.
///
/// It is valid only inside that closure; using it afterwards throws ``SextantError/Code/closed``.
/// Byte buffers given to closures point into the memory map: read them there, never keep them.
package final class Transaction {
    let txn: OpaquePointer
    private let lmdb: LMDB
    /// Whether this transaction may write.
    package let isWritable: Bool
    // Read on every call; a transaction is used by one thread at a time (LMDB's rule), so
    // the runtime exclusivity check is skipped.
    @exclusivity(unchecked) private(set) var isLive = true

    init(txn: OpaquePointer, lmdb: LMDB, writable: Bool) {
        self.txn = txn
        self.lmdb = lmdb
        self.isWritable = writable
    }

    func invalidate() { isLive = false }

    /// The snapshot this transaction sees (LMDB's transaction id): two read transactions with
    /// the same id see the same data, so work derived in one is valid in the other.
    package var snapshotID: Int { mdb_txn_id(txn) }

    /// How many times the map had been resized when this read transaction began (-1 for write
    /// transactions). Pointers into the map taken in another read transaction of the same
    /// snapshot stay valid in this one only if no resize happened in between.
    package internal(set) var mapGeneration = -1

    @inline(__always)
    private func live() throws(SextantError) {
        guard isLive else { throw SextantError(.closed, "transaction used outside its closure") }
    }

    @inline(__always)
    private func writable() throws(SextantError) {
        try live()
        guard isWritable else { throw SextantError(.readOnly, "write in a read transaction") }
    }

    // MARK: Point access

    /// Calls `body` with the value stored under `key`, or returns nil when there is none.
    @inline(__always)
    package func withValue<R>(
        _ db: Database, key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R? {
        try live()
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val()
        let rc = lmdb.call(.get) { mdb_get(txn, db.dbi, &k, &v) }
        if rc == MDB_NOTFOUND { return nil }
        if rc != 0 { throw LMDB.error(rc, .get) }
        return try body(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }

    /// Convenience over ``withValue(_:key:_:)`` for array keys.
    package func withValue<R>(_ db: Database, key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        try key.withUnsafeBytes { k in try withValue(db, key: k, body) }
    }

    /// A copy of the value under `key`.
    package func value(_ db: Database, key: [UInt8]) throws -> [UInt8]? {
        try withValue(db, key: key) { Array($0) }
    }

    /// Stores `value` under `key`, replacing any previous value.
    @inline(__always)
    package func put(_ db: Database, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws(SextantError) {
        try writable()
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try lmdb.check(.put) { mdb_put(txn, db.dbi, &k, &v, 0) }
    }

    package func put(_ db: Database, key: [UInt8], value: [UInt8]) throws {
        try key.withUnsafeBytes { k in
            try value.withUnsafeBytes { v in try put(db, key: k, value: v) }
        }
    }

    /// Reserves `count` bytes under `key` and lets `body` fill them in place (no intermediate copy).
    ///
    /// With `appending`, the key is expected to sort after every key of `db`; LMDB then fills
    /// pages instead of splitting them in half (large values would otherwise sit one per page).
    /// When the key does not sort last, the put falls back to an ordinary one.
    package func reserve(
        _ db: Database, key: UnsafeRawBufferPointer, count: Int, appending: Bool = false,
        _ body: (UnsafeMutableRawBufferPointer) throws -> Void
    ) throws {
        try writable()
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: count, mv_data: nil)
        var rc: Int32 = MDB_KEYEXIST
        if appending {
            rc = lmdb.call(.put) { mdb_put(txn, db.dbi, &k, &v, UInt32(MDB_RESERVE | MDB_APPEND)) }
            if rc != 0 && rc != MDB_KEYEXIST { throw LMDB.error(rc, .put) }
        }
        if rc == MDB_KEYEXIST {
            v = MDB_val(mv_size: count, mv_data: nil)
            try lmdb.check(.put) { mdb_put(txn, db.dbi, &k, &v, UInt32(MDB_RESERVE)) }
        }
        try body(UnsafeMutableRawBufferPointer(start: v.mv_data, count: count))
    }

    /// Deletes `key`; returns whether it existed.
    @discardableResult
    package func delete(_ db: Database, key: UnsafeRawBufferPointer) throws(SextantError) -> Bool {
        try writable()
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        let rc = lmdb.call(.del) { mdb_del(txn, db.dbi, &k, nil) }
        if rc == MDB_NOTFOUND { return false }
        if rc != 0 { throw LMDB.error(rc, .del) }
        return true
    }

    @discardableResult
    package func delete(_ db: Database, key: [UInt8]) throws -> Bool {
        try key.withUnsafeBytes { k in try delete(db, key: k) }
    }

    /// Removes every entry of `db` (the database itself stays).
    package func clear(_ db: Database) throws(SextantError) {
        try writable()
        try lmdb.check(.drop) { mdb_drop(txn, db.dbi, 0) }
    }

    /// Number of entries in `db`.
    package func count(_ db: Database) throws(SextantError) -> Int {
        try live()
        var s = MDB_stat()
        try lmdb.check(.stat) { mdb_stat(txn, db.dbi, &s) }
        return s.ms_entries
    }

    /// B-tree figures of `db`: (entries, pages).
    package func pages(_ db: Database) throws(SextantError) -> (entries: Int, pages: Int) {
        try live()
        var s = MDB_stat()
        try lmdb.check(.stat) { mdb_stat(txn, db.dbi, &s) }
        return (s.ms_entries, s.ms_branch_pages + s.ms_leaf_pages + s.ms_overflow_pages)
    }

    // MARK: Cursors

    /// Opens a cursor on `db` for the duration of `body`.
    package func withCursor<R>(_ db: Database, _ body: (Cursor) throws -> R) throws -> R {
        try live()
        var c: OpaquePointer?
        try lmdb.check(.cursorOpen) { mdb_cursor_open(txn, db.dbi, &c) }
        let cursor = Cursor(cursor: c!, lmdb: lmdb, writable: isWritable)
        defer {
            cursor.isLive = false
            lmdb.perform(.cursorClose) { mdb_cursor_close(c) }
        }
        return try body(cursor)
    }

    /// Deletes every entry of `db` whose key starts with `prefix` (a write transaction's).
    package func deleteAll(_ db: Database, prefix: [UInt8]) throws {
        try withCursor(db) { c in
            var more = try c.seek(prefix)
            while more, c.key.starts(with: prefix) {
                try c.deleteCurrent()
                more = try c.seek(prefix)
            }
        }
    }

    /// Visits entries in key order from the first key `>= start` while `body` returns true.
    /// The buffers are valid only during each call.
    package func scan(
        _ db: Database, from start: UnsafeRawBufferPointer? = nil,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try withCursor(db) { c in
            var more = try (start.map { try c.seek($0) } ?? c.first())
            while more {
                guard try body(c.key, c.value) else { return }
                more = try c.next()
            }
        }
    }

    /// ``scan(_:from:_:)`` over the keys that start with `prefix`.
    package func scan(
        _ db: Database, prefix: [UInt8],
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try prefix.withUnsafeBytes { p in
            try scan(db, from: p) { k, v in
                guard k.count >= p.count, memcmp(k.baseAddress!, p.baseAddress!, p.count) == 0 else { return false }
                return try body(k, v)
            }
        }
    }
}

/// A position in a database, valid inside ``Transaction/withCursor(_:_:)``.
package final class Cursor {
    private let cursor: OpaquePointer
    private let lmdb: LMDB
    private let writable: Bool
    // Touched on every step; a cursor lives on one thread inside one closure.
    @exclusivity(unchecked) fileprivate(set) var isLive = true
    @exclusivity(unchecked) private var k = MDB_val()
    @exclusivity(unchecked) private var v = MDB_val()

    fileprivate init(cursor: OpaquePointer, lmdb: LMDB, writable: Bool) {
        self.cursor = cursor
        self.lmdb = lmdb
        self.writable = writable
    }

    /// The current key (valid until the cursor moves or the transaction ends).
    package var key: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size) }
    /// The current value (valid until the cursor moves or the transaction ends).
    package var value: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size) }

    @inline(__always)
    private func move(_ op: MDB_cursor_op) throws(SextantError) -> Bool {
        guard isLive else { throw SextantError(.closed, "cursor used outside its closure") }
        let rc = lmdb.call(.cursorGet) { mdb_cursor_get(cursor, &k, &v, op) }
        if rc == MDB_NOTFOUND { return false }
        if rc != 0 { throw LMDB.error(rc, .cursorGet) }
        return true
    }

    /// Moves to the first entry; false when the database is empty.
    package func first() throws(SextantError) -> Bool { try move(MDB_FIRST) }
    /// Moves to the last entry.
    package func last() throws(SextantError) -> Bool { try move(MDB_LAST) }
    /// Moves to the next entry; false at the end.
    @inline(__always)
    package func next() throws(SextantError) -> Bool { try move(MDB_NEXT) }
    /// Moves to the previous entry; false at the start.
    package func previous() throws(SextantError) -> Bool { try move(MDB_PREV) }

    /// Moves to the first key `>= key`; false when there is none.
    package func seek(_ key: UnsafeRawBufferPointer) throws(SextantError) -> Bool {
        k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        return try move(MDB_SET_RANGE)
    }

    package func seek(_ key: [UInt8]) throws -> Bool {
        try key.withUnsafeBytes { p in try seek(p) }
    }

    /// Deletes the current entry.
    package func deleteCurrent() throws(SextantError) {
        guard isLive, writable else { throw SextantError(.readOnly, "cursor delete outside a write transaction") }
        try lmdb.check(.cursorDel) { mdb_cursor_del(cursor, 0) }
    }
}
