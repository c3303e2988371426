import CLMDB
import SextantCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Environment {
    /// Walks every B-tree page of the current snapshot straight from `data.mdb`, with bounds
    /// checks, before anything trusts them: LMDB keeps no page checksums and follows a page's
    /// header and node offsets as written, so a damaged page can make `mdb_cursor_get` read
    /// outside the map and crash the process. Returns the problems found (at most `limit`);
    /// empty means every reachable page is well formed, which makes it safe to walk the store
    /// with LMDB.
    ///
    /// Checked for each page reachable from the snapshot's meta page (the free-page database,
    /// the main database and every named database in it): its number is within the file and
    /// the snapshot's last page, it is read once (no cycle, no page shared by two parents), its
    /// header names it and its kind (branch, leaf or overflow), the free-space bounds and every
    /// node offset lie inside the page, every node's key and inline data fit the page, children
    /// and overflow runs lie within the last page, and the tree depth matches the database record.
    ///
    /// - Throws: `closed`, `io` when the file cannot be read, storage errors of the read transaction.
    package func verifyPages(limit: Int = 100) throws -> [String] {
        try read { txn in
            let fd = open(path + "/data.mdb", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw SextantError(.io, "cannot open data.mdb to verify its pages", context: ["path": path], underlying: errno)
            }
            defer { _ = Glibc.close(fd) }
            var walker = PageWalker(fd: fd, snapshot: txn.snapshotID, limit: limit)
            try walker.run()
            return walker.problems
        }
    }
}

/// The page format of LMDB 0.9 (64-bit): see `mdb.c` (MDB_page, MDB_meta, MDB_db, MDB_node).
private struct PageWalker {
    let fd: Int32
    let snapshot: Int
    let limit: Int
    var problems: [String] = []
    var pageSize = 4096
    var lastPage: UInt64 = 0
    var fileBytes: UInt64 = 0
    var seen = Set<UInt64>()
    private var buffer: [UInt8] = []

    static let headerSize = 16
    static let nodeSize = 8
    static let pBranch: UInt16 = 0x01, pLeaf: UInt16 = 0x02, pOverflow: UInt16 = 0x04, pMeta: UInt16 = 0x08, pLeaf2: UInt16 = 0x20
    static let fBigData: UInt16 = 0x01, fSubData: UInt16 = 0x02, fDupData: UInt16 = 0x04
    static let magic: UInt32 = 0xBEEF_C0DE

    init(fd: Int32, snapshot: Int, limit: Int) {
        self.fd = fd
        self.snapshot = snapshot
        self.limit = limit
    }

    mutating func note(_ s: String) { if problems.count < limit { problems.append(s) } }

    /// A database record (MDB_db) at `o` in the buffer.
    struct DB { var flags: UInt16; var depth: UInt16; var root: UInt64; var entries: UInt64 }

    private func u16(_ o: Int) -> UInt16 { UInt16(buffer[o]) | UInt16(buffer[o + 1]) << 8 }
    private func u32(_ o: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(buffer[o + $1]) << (8 * $1) } }
    private func u64(_ o: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(buffer[o + $1]) << (8 * UInt64($1)) } }
    private func db(at o: Int) -> DB { DB(flags: u16(o + 4), depth: u16(o + 6), root: u64(o + 40), entries: u64(o + 32)) }

    /// Reads `count` bytes at `offset` into the buffer; false when the file is shorter.
    private mutating func load(_ offset: UInt64, _ count: Int) throws -> Bool {
        if buffer.count != count { buffer = [UInt8](repeating: 0, count: count) }
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        if n < 0 { throw SextantError(.io, "cannot read data.mdb", underlying: errno) }
        return n == count
    }

    mutating func run() throws {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SextantError(.io, "cannot stat data.mdb", underlying: errno) }
        fileBytes = UInt64(st.st_size)
        // The meta page of this snapshot: pages 0 and 1 hold the two latest; the page size is
        // kept in the free database's md_pad.
        var chosen: (free: DB, main: DB, last: UInt64)?
        var size = 4096
        for attempt in 0..<2 {
            for metaPage in 0..<2 {
                guard try load(UInt64(metaPage * size), min(size, 4096)) else { continue }
                guard u32(Self.headerSize) == Self.magic, u16(10) & Self.pMeta != 0 else { continue }
                let psize = Int(u32(Self.headerSize + 24))
                if attempt == 0 { size = psize }
                guard psize == size, u64(Self.headerSize + 128) == UInt64(snapshot) else { continue }
                chosen = (db(at: Self.headerSize + 24), db(at: Self.headerSize + 72), u64(Self.headerSize + 120))
            }
            if chosen != nil { break }
        }
        guard let meta = chosen, size >= 512, size <= 65536, size & (size - 1) == 0 else {
            note("no meta page of the current snapshot (transaction \(snapshot)) is readable")
            return
        }
        pageSize = size
        lastPage = meta.last
        if (lastPage + 1) * UInt64(pageSize) > fileBytes {
            note("the meta page names page \(lastPage) as the last; data.mdb holds \(fileBytes / UInt64(pageSize)) pages")
            lastPage = fileBytes / UInt64(pageSize) - 1
        }
        try walk(meta.free, name: "free pages", named: false)
        try walk(meta.main, name: "main", named: true)
    }

    /// Walks one database's tree; in the main database, leaves with F_SUBDATA are named
    /// databases, walked in turn.
    mutating func walk(_ d: DB, name: String, named: Bool) throws {
        guard d.root != UInt64.max else { return }  // P_INVALID: an empty database
        var subdatabases: [(String, DB)] = []
        var stack: [(page: UInt64, level: Int)] = [(d.root, 1)]
        while let (pgno, level) = stack.popLast() {
            if problems.count >= limit { return }
            guard pgno >= 2, pgno <= lastPage else {
                note("database '\(name)': page \(pgno) is outside the snapshot's pages (2…\(lastPage))"); continue
            }
            guard seen.insert(pgno).inserted else { note("database '\(name)': page \(pgno) is reached twice"); continue }
            guard try load(pgno * UInt64(pageSize), pageSize) else { note("database '\(name)': page \(pgno) is past the end of data.mdb"); continue }
            let where_ = "database '\(name)', page \(pgno)"
            guard u64(0) == pgno else { note("\(where_): header names page \(u64(0))"); continue }
            let flags = u16(10)
            let isBranch = flags & Self.pBranch != 0, isLeaf = flags & Self.pLeaf != 0
            guard isBranch != isLeaf, flags & (Self.pOverflow | Self.pMeta | Self.pLeaf2) == 0 else {
                note("\(where_): flags 0x\(String(flags, radix: 16)) are not a branch or leaf page"); continue
            }
            if isLeaf && level != Int(d.depth) { note("\(where_): leaf at depth \(level), the database records depth \(d.depth)") }
            if isBranch && level >= Int(d.depth) { note("\(where_): branch at depth \(level), the database records depth \(d.depth)"); continue }
            let lower = Int(u16(12)), upper = Int(u16(14))
            guard lower >= Self.headerSize, lower <= upper, upper <= pageSize, (lower - Self.headerSize) % 2 == 0 else {
                note("\(where_): free-space bounds \(lower)…\(upper) do not fit a \(pageSize)-byte page"); continue
            }
            let count = (lower - Self.headerSize) / 2
            if isBranch && count == 0 { note("\(where_): a branch page with no children"); continue }
            for i in 0..<count {
                let off = Int(u16(Self.headerSize + 2 * i))
                guard off >= upper, off + Self.nodeSize <= pageSize else {
                    note("\(where_): node \(i) at offset \(off) lies outside the page's nodes (\(upper)…\(pageSize))"); break
                }
                let lo = UInt64(u16(off)), hi = UInt64(u16(off + 2)), nflags = u16(off + 4), ksize = Int(u16(off + 6))
                guard off + Self.nodeSize + ksize <= pageSize else { note("\(where_): key of node \(i) runs past the page"); break }
                if isBranch {
                    let child = lo | hi << 16 | UInt64(nflags) << 32
                    stack.append((child, level + 1))
                    continue
                }
                let dataSize = Int(lo | hi << 16)
                let dataOffset = off + Self.nodeSize + ksize
                if nflags & Self.fBigData != 0 {
                    guard dataOffset + 8 <= pageSize else { note("\(where_): overflow reference of node \(i) runs past the page"); break }
                    try overflow(u64(dataOffset), bytes: dataSize, where_: where_)
                    try load(pgno * UInt64(pageSize), pageSize).ignored()
                    continue
                }
                guard dataOffset + dataSize <= pageSize else { note("\(where_): data of node \(i) runs past the page"); break }
                if nflags & Self.fSubData != 0 {
                    guard dataSize == 48 else { note("\(where_): database record of node \(i) has \(dataSize) bytes"); continue }
                    let sub = db(at: dataOffset)
                    let key = String(decoding: buffer[(off + Self.nodeSize)..<(off + Self.nodeSize + ksize)], as: UTF8.self)
                    if named { subdatabases.append((key, sub)) } else if nflags & Self.fDupData == 0 {
                        note("\(where_): a database record outside the main database")
                    } else {
                        subdatabases.append(("\(name) duplicates", sub))
                    }
                }
            }
        }
        for (subName, sub) in subdatabases { try walk(sub, name: subName, named: false) }
    }

    /// An overflow run: its first page names itself and counts enough pages for the value.
    mutating func overflow(_ first: UInt64, bytes: Int, where_: String) throws {
        guard first >= 2, first <= lastPage else { note("\(where_): overflow page \(first) is outside the snapshot's pages"); return }
        guard seen.insert(first).inserted else { note("\(where_): overflow page \(first) is reached twice"); return }
        guard try load(first * UInt64(pageSize), Self.headerSize) else { note("\(where_): overflow page \(first) is past the end of data.mdb"); return }
        let pages = UInt64(u32(12))
        guard u64(0) == first, u16(10) & Self.pOverflow != 0 else { note("\(where_): page \(first) is not an overflow page"); return }
        let needed = UInt64((Self.headerSize + bytes + pageSize - 1) / pageSize)
        guard pages >= needed, first + pages - 1 <= lastPage else {
            note("\(where_): overflow run of \(pages) pages at \(first) does not hold \(bytes) bytes within the snapshot"); return
        }
    }
}

private extension Bool {
    func ignored() {}
}
