import Foundation
import SextantKernels
import SextantStorage
#if canImport(Glibc)
import Glibc
#endif

/// Figures about a store, for `sextant stat`.
public struct StoreStatistics: Sendable, Codable {
    /// One collection's figures.
    public struct CollectionStatistics: Sendable, Codable {
        /// The collection's name.
        public var name: String
        /// Its vector dimension.
        public var dimension: Int
        /// Its metric (`l2`, `ip` or `cosine`).
        public var metric: String
        /// Its index recipe, canonical form.
        public var indexRecipe: String
        /// Its schema, in the `name:type` syntax.
        public var schema: String
        /// Live rows.
        public var rows: Int
        /// Freed slots waiting for reuse.
        public var freeSlots: Int
        /// Slots ever allocated (rows + free slots).
        public var slots: Int
    }
    /// The store's directory.
    public var path: String
    /// The on-disk format version.
    public var formatVersion: Int
    /// Bytes of the data file on disk.
    public var fileBytes: Int
    /// Bytes of the map in use (the rest of the file is free pages).
    public var usedBytes: Int
    /// The map's current size (address space).
    public var mapBytes: Int
    /// LMDB's page size.
    public var pageSize: Int
    /// Reader slots in use, across processes.
    public var readersInUse: Int
    /// Reader slots available.
    public var maxReaders: Int
    /// The id of the last committed transaction.
    public var lastTransaction: Int
    /// Per collection, by name.
    public var collections: [CollectionStatistics]
}

/// The outcome of `Store.check(deep:)`.
public struct CheckReport: Sendable, Codable {
    /// Invariant violations found; empty means the store is consistent.
    public var problems: [String]
    /// How many rows, records and keys were verified.
    public var rowsChecked: Int
    /// Collections checked.
    public var collectionsChecked: Int
    /// Whether no problem was found.
    public var isConsistent: Bool { problems.isEmpty }
}

extension Store {
    /// Sizes, counters and reader slots.
    ///
    /// - Throws: `closed`, storage errors (`mapFull`, `io`, `storage`, ...).
    public func statistics() throws -> StoreStatistics {
        let i = try env.info()
        let infos = try collections()
        let cs: [StoreStatistics.CollectionStatistics] = try env.read { txn in
            try infos.map { c in
                guard let st = try CollectionState.read(txn, db.state, cid: c.id) else {
                    throw SextantError(.corrupted, "collection '\(c.name)' has no state record")
                }
                var free = 0
                try txn.scan(db.free, prefix: Keys.prefix(c.id)) { _, _ in free += 1; return true }
                return .init(name: c.name, dimension: c.dimension, metric: c.metric.rawValue, indexRecipe: c.indexRecipe,
                             schema: c.schema.spelling, rows: Int(st.count), freeSlots: free, slots: Int(st.nextSlot))
            }
        }
        return StoreStatistics(path: path, formatVersion: Store.formatVersion, fileBytes: i.fileSize, usedBytes: i.usedBytes,
                               mapBytes: i.mapSize, pageSize: i.pageSize, readersInUse: i.readersInUse,
                               maxReaders: i.maxReaders, lastTransaction: i.lastTransactionID, collections: cs)
    }

    /// LMDB's reader table (one line per slot: pid, thread, transaction id).
    ///
    /// - Throws: `closed`, storage errors (`mapFull`, `io`, `storage`, ...).
    public func readers() throws -> [String] { try env.readerTable() }

    /// Clears reader slots held by dead processes; returns how many.
    ///
    /// - Throws: `closed`, storage errors (`mapFull`, `io`, `storage`, ...).
    @discardableResult
    public func clearStaleReaders() throws -> Int { try env.clearStaleReaders() }

    /// Writes a consistent hot backup into `destination` (a new or empty directory) while
    /// writers go on; free pages are left out, so the copy is compact.
    ///
    /// - Throws: `alreadyExists` when `destination` holds a store, `io`, storage errors (`mapFull`,
    ///   `io`, `storage`, ...).
    public func copy(to destination: String) throws {
        try env.copy(to: destination, compact: true)
    }

    /// Verifies the invariants of the format (see SPEC.md, "Invariants"). The structural pass
    /// checks every key, count and id mapping; `deep` also decodes every attribute and vector
    /// record and checks every component is finite.
    ///
    /// - Throws: `closed`, storage errors (`mapFull`, `io`, `storage`, ...); inconsistencies are
    ///   reported in the result, not thrown.
    public func check(deep: Bool = true) throws -> CheckReport {
        // LMDB follows page headers as written: a damaged page could crash the walk below, so
        // every reachable page is first checked straight from the file.
        let pageProblems = try env.verifyPages()
        if !pageProblems.isEmpty {
            return CheckReport(problems: pageProblems.map { "corrupted: " + $0 }, rowsChecked: 0, collectionsChecked: 0)
        }
        var problems: [String] = []
        var rows = 0
        let infos = try collections()
        try env.read { txn in
            func note(_ s: String) { if problems.count < 1000 { problems.append(s) } }
            var known = Set<UInt32>()
            for c in infos {
                known.insert(c.id)
                let coll = VectorCollection(store: self, info: c)
                guard let st = try CollectionState.read(txn, db.state, cid: c.id) else {
                    note("collection '\(c.name)': no state record"); continue
                }
                let prefix = Keys.prefix(c.id)
                let vectors = SlotBlocks.Reader(coll.vectorBlocks, txn: txn, slotBound: st.nextSlot)
                var live = Set<UInt32>()
                var idCount = 0
                try txn.scan(db.ids, prefix: prefix) { k, v in
                    idCount += 1
                    guard let (_, ext) = Keys.decodeExternal(k), v.count == 4 else { note("'\(c.name)': malformed id-map entry"); return true }
                    let slot = UInt32(littleEndian: v.loadUnaligned(as: UInt32.self))
                    if slot >= st.nextSlot { note("'\(c.name)': id \(ext) maps to slot \(slot) past nextSlot \(st.nextSlot)") }
                    if !live.insert(slot).inserted { note("'\(c.name)': slot \(slot) mapped twice") }
                    // The row and vector records must exist and name this id.
                    try Keys.withRowKey(c.id, slot) { rk in
                        let rowID: UInt64? = try txn.withValue(db.rows, key: rk) { rv in
                            if !deep {
                                return rv.count >= 9 ? UInt64(littleEndian: rv.loadUnaligned(as: UInt64.self)) : nil
                            }
                            do { return try coll.decodeRowRecord(rv).0 } catch { note("'\(c.name)': slot \(slot): \(error)"); return nil }
                        } ?? nil
                        if rowID == nil { note("'\(c.name)': id \(ext) (slot \(slot)) has no readable row record") }
                        else if rowID != ext { note("'\(c.name)': slot \(slot) row record names id \(rowID!), id map says \(ext)") }
                        do {
                            let (vid, x) = try coll.vectorEntry(vectors, slot)
                            if vid != ext { note("'\(c.name)': slot \(slot): vector block names id \(vid), id map says \(ext)") }
                            if deep {
                                let xs = UnsafeBufferPointer(start: x.assumingMemoryBound(to: Float.self), count: c.dimension)
                                if xs.contains(where: { !$0.isFinite }) { note("'\(c.name)': id \(ext) has a non-finite component") }
                                if try coll.storedNorm(vectors, slot) != Distance.norm(x, dimension: c.dimension) {
                                    note("'\(c.name)': id \(ext): stored norm differs from its vector's")
                                }
                            }
                        } catch { note("'\(c.name)': slot \(slot): \(error)") }
                    }
                    rows += 1
                    return true
                }
                var rowCount = 0, freeCount = 0
                try txn.scan(db.rows, prefix: prefix) { k, _ in
                    rowCount += 1
                    if let (_, s) = Keys.decodeRow(k), !live.contains(s) { note("'\(c.name)': orphan row record at slot \(s)") }
                    return true
                }
                let vecCount = try checkVectorBlocks(txn, coll, nextSlot: st.nextSlot, live: live, deep: deep, note: note)
                try txn.scan(db.free, prefix: prefix) { k, _ in
                    freeCount += 1
                    guard let (_, s) = Keys.decodeRow(k) else { note("'\(c.name)': malformed free-slot key"); return true }
                    if live.contains(s) { note("'\(c.name)': slot \(s) is both free and live") }
                    if s >= st.nextSlot { note("'\(c.name)': free slot \(s) past nextSlot \(st.nextSlot)") }
                    return true
                }
                if idCount != Int(st.count) { note("'\(c.name)': state counts \(st.count) rows, id map has \(idCount)") }
                if rowCount != idCount { note("'\(c.name)': \(rowCount) row records for \(idCount) ids") }
                if vecCount != idCount { note("'\(c.name)': \(vecCount) of \(idCount) live slots lie in vector blocks") }
                if idCount + freeCount != Int(st.nextSlot) {
                    note("'\(c.name)': \(idCount) live + \(freeCount) free slots != \(st.nextSlot) allocated")
                }
                try checkPostings(txn, coll, live: live, deep: deep, note: note)
                try checkCodes(txn, coll, live: live, deep: deep, note: note)
                try checkGraph(txn, coll, live: live, note: note)
                try coll.checkTokens(txn, deep: deep, note: note)
            }
            // No record may belong to a collection the catalog does not know.
            for d in [db.state, db.ids, db.rows, db.vectors, db.free, db.postings, db.codes, db.index, db.graph, db.links] + (db.tokens.map { [$0] } ?? []) {
                try txn.scan(d) { k, _ in
                    if k.count >= 4 {
                        let cid = UInt32(bigEndian: k.loadUnaligned(as: UInt32.self))
                        if !known.contains(cid) { note("\(d.name): record of unknown collection id \(cid)") }
                    } else { note("\(d.name): short key") }
                    return true
                }
            }
        }
        return CheckReport(problems: problems, rowsChecked: rows, collectionsChecked: infos.count)
    }

    /// Vector blocks: the right size, none past `nextSlot`, free slots zeroed (deep). Returns how
    /// many live slots lie in blocks.
    private func checkVectorBlocks(_ txn: Transaction, _ coll: VectorCollection, nextSlot: UInt32, live: Set<UInt32>, deep: Bool,
                                   note: (String) -> Void) throws -> Int {
        var vecCount = 0
        let blocks = coll.vectorBlocks
        try txn.scan(db.vectors, prefix: Keys.prefix(coll.cid)) { k, v in
            guard let (_, b) = Keys.decodeRow(k) else { note("'\(coll.name)': malformed vector block key"); return true }
            guard v.count == blocks.blockBytes else {
                note("'\(coll.name)': vector block \(b) has \(v.count) bytes, expected \(blocks.blockBytes)"); return true
            }
            let first = b * UInt32(blocks.slotsPerBlock)
            if first >= nextSlot { note("'\(coll.name)': vector block \(b) past nextSlot \(nextSlot)") }
            for i in 0..<blocks.slotsPerBlock {
                let slot = first + UInt32(i)
                vecCount += live.contains(slot) ? 1 : 0
                if deep && !live.contains(slot) {
                    let entry = UnsafeRawBufferPointer(start: v.baseAddress! + blocks.offset(slot, region: 1), count: 4 * coll.dimension)
                    let idBytes = UnsafeRawBufferPointer(start: v.baseAddress! + blocks.offset(slot, region: 0), count: 8)
                    if entry.contains(where: { $0 != 0 }) || idBytes.contains(where: { $0 != 0 }) {
                        note("'\(coll.name)': free slot \(slot) holds a vector")
                    }
                }
            }
            return true
        }
        return vecCount
    }

    /// Compacts the store at `path`: a compacting copy into a sibling directory, fsync, then an
    /// atomic swap of the two directories. Refuses (`SextantError.Code.locked`) while any other
    /// process or handle has the store open. Returns the data file's size before and after.
    ///
    /// - Throws: `locked` while the store is open anywhere, `notFound`, `io`, storage errors
    ///   (`mapFull`, `io`, `storage`, ...).
    public static func compact(path: String) throws -> (before: Int, after: Int) {
        try Environment.compact(path: path)
    }
}

extension Store {
    /// Verifies the attribute indexes of one collection: every chunk decodes, and (deep) the
    /// postings equal, entry for entry, those rebuilt from the stored rows.
    func checkPostings(_ txn: Transaction, _ coll: VectorCollection, live: Set<UInt32>, deep: Bool, note: (String) -> Void) throws {
        let name = coll.name
        var stored: [[UInt8]: Bitmap] = [:]
        try txn.scan(db.postings, prefix: Keys.prefix(coll.info.id)) { k, v in
            guard k.count >= 9 else { note("'\(name)': malformed index key"); return true }
            let high = UInt16(bigEndian: k.loadUnaligned(fromByteOffset: k.count - 2, as: UInt16.self))
            do {
                let b = try AttributeIndex.decodeChunk(v, high: high)
                if b.isEmpty { note("'\(name)': empty index chunk") }
                stored[Array(k.dropLast(2)), default: Bitmap()].append(b)
            } catch { note("'\(name)': index chunk: \(error)") }
            return true
        }
        let liveKey = AttributeIndex.fieldPrefix(coll.info.id, AttributeIndex.liveField, AttributeIndex.tagLive)
        if Set(stored[liveKey] ?? Bitmap()) != live { note("'\(name)': live-row index differs from the id map") }
        guard deep else { return }
        var expected = AttributeIndex.Delta()
        for slot in live {
            try Keys.withRowKey(coll.info.id, slot) { k in
                _ = try txn.withValue(db.rows, key: k) { v in
                    if let row = try? coll.decodeRowRecord(v).1 {
                        expected.row(row, slot: slot, schema: coll.schema, cid: coll.info.id, present: true)
                    }
                }
            }
            expected.live(slot, cid: coll.info.id, present: true)
        }
        // Vector cells of a layout with cells: recomputed from the stored vectors.
        if let cq = try coll.coarseQuantizer(txn) {
            let vectors = try coll.vectorReader(txn)
            for slot in live {
                guard let (_, x) = try? coll.vectorEntry(vectors, slot) else { continue }
                expected.cell(coll.cell(cq, of: x), slot, cid: coll.info.id, present: true)
            }
        }
        let rebuilt = expected.changes.mapValues { Bitmap($0.keys) }
        for (key, b) in rebuilt where stored[key] != b {
            note("'\(name)': index entry \(AttributeIndex.describeKey(key, schema: coll.schema)) holds \(stored[key]?.count ?? 0) rows, the rows say \(b.count)")
        }
        for key in stored.keys where rebuilt[key] == nil {
            note("'\(name)': stale index entry \(AttributeIndex.describeKey(key, schema: coll.schema))")
        }
    }
}

extension AttributeIndex {
    /// A readable name for a posting key (without its chunk), for diagnostics.
    static func describeKey(_ key: [UInt8], schema: Schema) -> String {
        guard key.count >= 7 else { return "?" }
        let field = UInt16(key[4]) << 8 | UInt16(key[5])
        let fieldName = field == liveField ? "<live>" : field == cellField ? "<cell>"
            : (Int(field) < schema.count ? schema.fields[Int(field)].name : "field#\(field)")
        let tag = key[6]
        let value = key.dropFirst(7)
        switch tag {
        case tagNull: return "\(fieldName) IS NULL"
        case tagLive: return fieldName
        default: return "\(fieldName) = \(value.map { String($0, radix: 16) }.joined())"
        }
    }
}

extension Store {
    /// With a trained quantizer (PQ or SQ8): every live row's codes exist; with `deep`, each
    /// row's codes equal its vector encoded again (encoding is deterministic).
    func checkCodes(_ txn: Transaction, _ coll: VectorCollection, live: Set<UInt32>, deep: Bool, note: (String) -> Void) throws {
        let pq: ProductQuantizer?
        let sq: ScalarQuantizer?
        do { (pq, sq) = (try coll.quantizer(txn), try coll.scalarQuantizer(txn)) } catch { note("'\(coll.name)': \(error)"); return }
        let blocks: SlotBlocks
        var codes: [UInt8]
        let encode: (UnsafeRawPointer, inout [UInt8]) throws -> Void
        if let sq {
            (blocks, codes) = (coll.scalarCodeBlocks, [UInt8](repeating: 0, count: coll.dimension))
            encode = { x, out in out.withUnsafeMutableBytes { sq.encode(x.assumingMemoryBound(to: Float.self), into: $0.baseAddress!.assumingMemoryBound(to: Int8.self)) } }
        } else if let pq {
            (blocks, codes) = (coll.codeBlocks(pq), [UInt8](repeating: 0, count: pq.codeSize))
            encode = { x, out in try coll.encode(pq, VectorCollection.floats(x, coll.dimension), into: &out) }
        } else {
            var stray = 0
            try txn.scan(db.codes, prefix: Keys.prefix(coll.info.id)) { _, _ in stray += 1; return true }
            if stray > 0 { note("'\(coll.name)': \(stray) code blocks but no codebook") }
            return
        }
        let reader = SlotBlocks.Reader(blocks, txn: txn, slotBound: (live.max() ?? 0) + 1)
        let vectors = SlotBlocks.Reader(coll.vectorBlocks, txn: txn, slotBound: (live.max() ?? 0) + 1)
        var wrong = 0
        for slot in live.sorted() {
            let p: UnsafeRawPointer?
            do { p = try reader.pointer(slot) } catch { note("'\(coll.name)': \(error)"); return }
            guard let p else { note("'\(coll.name)': slot \(slot) has no codes"); continue }
            guard deep, let (_, x) = try? coll.vectorEntry(vectors, slot) else { continue }
            try encode(x, &codes)
            if !codes.withUnsafeBytes({ memcmp($0.baseAddress!, p, codes.count) == 0 }) { wrong += 1 }
        }
        if wrong > 0 { note("'\(coll.name)': \(wrong) rows' codes differ from their vectors' encoding") }
    }
}

extension Store {
    /// With a built graph: the structural check of the HNSW kernels (entry point, edges to
    /// missing nodes, degree bounds, reachability), and graph nodes = live rows.
    func checkGraph(_ txn: Transaction, _ coll: VectorCollection, live: Set<UInt32>, note: (String) -> Void) throws {
        let g: LMDBGraph?
        do { g = try coll.graph(txn) } catch { note("'\(coll.name)': graph: \(error)"); return }
        guard let g else {
            var stray = 0
            for d in [db.graph, db.links] { try txn.scan(d, prefix: Keys.prefix(coll.info.id)) { _, _ in stray += 1; return true } }
            if stray > 0 && coll.hnswComponent != nil { note("'\(coll.name)': \(stray) graph records but no graph header") }
            return
        }
        do {
            let report = try HNSW.check(storage: g, parameters: g.parameters)
            for issue in report.issues { note("'\(coll.name)': graph: \(issue)") }
            if report.issueCount > report.issues.count { note("'\(coll.name)': graph: \(report.issueCount - report.issues.count) more problems") }
            if report.nodeCount != live.count { note("'\(coll.name)': graph has \(report.nodeCount) nodes for \(live.count) live rows") }
            for slot in live where try g.level(of: slot) == nil {
                note("'\(coll.name)': live slot \(slot) is not in the graph")
                break
            }
        } catch { note("'\(coll.name)': graph: \(error)") }
    }
}
