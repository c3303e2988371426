import CSextantSIMD
import SextantKernels
import SextantStorage

/// The HNSW graph of a collection, stored in LMDB and read in place from the map.
///
/// Level 0 (every node, degree ≤ 2M) lives in slot blocks of `sextant.graph`, one fixed-size
/// entry per slot: `count u16 ‖ level+1 u8 (0 = not in the graph) ‖ 0 u8 ‖ 2M × slot u32`.
/// Upper levels (about one node in M) are records of `sextant.links`:
/// `cid u32 ‖ slot u32 ‖ level u8 → count u16 ‖ 0 u16 ‖ M × slot u32`. The entry point and
/// parameters are `sextant.index` `cid ‖ "hnsw"`: `entry u32 ‖ level i32 (−1: empty) ‖ M u32 ‖
/// efConstruction u32`.
///
/// Inside a write transaction every change is buffered here and written once by ``flush(_:)``,
/// so the map pointers handed out while linking stay valid (LMDB invalidates them on a write).
final class LMDBGraph: MutableGraphStorage {
    let txn: Transaction
    let cid: UInt32
    let links: Database
    let indexDB: Database
    let parameters: HNSWParameters
    let blocks: SlotBlocks
    let reader: SlotBlocks.Reader
    let nodeIDBound: UInt32
    // Read on every hop; a graph handle belongs to one transaction on one thread, so the
    // runtime exclusivity check (a TLS lookup per access) is skipped.
    @exclusivity(unchecked) private var pendingBlocks: [UInt32: [UInt8]] = [:]
    @exclusivity(unchecked) private var pendingUpper: [UInt64: [UInt32]?] = [:]
    @exclusivity(unchecked) private var entry: GraphEntryPoint?
    @exclusivity(unchecked) private var entryDirty = false
    @exclusivity(unchecked) private var scratch: [UInt32] = []

    static func entrySize(m: Int) -> Int { 4 + 8 * m }

    /// `shared`: the store's block addresses, shared by the read transactions of one snapshot
    /// (a search opens a graph per call; without it every call looked its blocks up again).
    init(txn: Transaction, db: Store.Databases, cid: UInt32, parameters: HNSWParameters, nodeIDBound: UInt32,
         shared: BlockPointerCache? = nil) throws {
        self.txn = txn
        self.cid = cid
        self.links = db.links
        self.indexDB = db.index
        self.parameters = parameters
        self.nodeIDBound = nodeIDBound
        blocks = SlotBlocks(db: db.graph, cid: cid, stride: LMDBGraph.entrySize(m: parameters.m))
        reader = SlotBlocks.Reader(blocks, txn: txn, slotBound: nodeIDBound, shared: shared)
        entry = try LMDBGraph.readHeader(txn, db.index, cid: cid)?.entry
    }

    static func headerKey(_ cid: UInt32) -> [UInt8] { Keys.prefix(cid) + Array("hnsw".utf8) }

    /// The stored header: entry point (nil for an empty graph), M, efConstruction; nil when
    /// the graph was never built.
    static func readHeader(_ txn: Transaction, _ db: Database, cid: UInt32) throws -> (entry: GraphEntryPoint?, m: Int, efConstruction: Int)? {
        try txn.withValue(db, key: headerKey(cid)) { v in
            guard v.count == 16 else { throw SextantError(.corrupted, "graph header has \(v.count) bytes") }
            let node = UInt32(littleEndian: v.loadUnaligned(as: UInt32.self))
            let level = Int32(littleEndian: v.loadUnaligned(fromByteOffset: 4, as: Int32.self))
            let m = Int(UInt32(littleEndian: v.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
            let ef = Int(UInt32(littleEndian: v.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
            guard level >= -1, level <= 64, m >= 2, m <= 256 else { throw SextantError(.corrupted, "graph header is out of range") }
            return (level < 0 ? nil : GraphEntryPoint(node: node, level: Int(level)), m, ef)
        }
    }

    static func upperKey(_ cid: UInt32, _ node: UInt32, _ level: Int) -> UInt64 {
        UInt64(node) << 8 | UInt64(level)
    }

    private func withUpperKey<R>(_ node: UInt32, _ level: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var k: (UInt32, UInt32, UInt8) = (cid.bigEndian, node.bigEndian, UInt8(level))
        return try withUnsafeBytes(of: &k) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<9])) }
    }

    // MARK: GraphStorage

    func entryPoint() throws -> GraphEntryPoint? { entry }

    /// The level-0 entry of `node`, from the buffered block or the map.
    @inline(__always)
    private func withEntry<R>(_ node: UInt32, _ body: (UnsafeRawPointer?) throws -> R) throws -> R {
        let b = blocks.block(of: node)
        if !pendingBlocks.isEmpty, let p = pendingBlocks[b] {
            return try p.withUnsafeBytes { try body($0.baseAddress! + blocks.offset(node, region: 0)) }
        }
        guard let base = try reader.blockPointer(b) else { return try body(nil) }
        return try body(base + blocks.offset(node, region: 0))
    }

    func level(of node: UInt32) throws -> Int? {
        guard node < nodeIDBound else { return nil }
        return try withEntry(node) { p in
            guard let p else { return nil }
            let l = Int(p.load(fromByteOffset: 2, as: UInt8.self))
            return l == 0 ? nil : l - 1
        }
    }

    /// The level-0 list of `node` (its count and `2M` slots), fetched ahead of its expansion.
    /// Upper levels are few and small; pending (written) blocks are already in memory.
    @inline(__always)
    func prefetchNeighbors(of node: UInt32, level: Int) {
        guard level == 0, pendingBlocks.isEmpty, node < nodeIDBound, let base = try? reader.blockPointer(blocks.block(of: node)) else { return }
        sextant_prefetch(base + blocks.offset(node, region: 0), 4 + 8 * parameters.m)
    }

    @inline(__always)
    func withNeighbors<R>(of node: UInt32, level: Int, _ body: (UnsafeBufferPointer<UInt32>) throws -> R) throws -> R {
        if level == 0 {
            return try withEntry(node) { p in
                guard let p else { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
                let n = min(Int(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self))), 2 * parameters.m)
                return try body(UnsafeBufferPointer(start: (p + 4).assumingMemoryBound(to: UInt32.self), count: n))
            }
        }
        // Readers never hold pending lists: skip hashing the key on every upper-level hop.
        if !pendingUpper.isEmpty, let pending = pendingUpper[LMDBGraph.upperKey(cid, node, level)] {
            guard let list = pending else { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
            return try list.withUnsafeBufferPointer { try body($0) }
        }
        let r: R? = try withUpperKey(node, level) { k in
            try txn.withValue(links, key: k) { v -> R in
                guard v.count == 4 + 4 * parameters.m else {
                    throw SextantError(.corrupted, "graph links of slot \(node) level \(level) have \(v.count) bytes")
                }
                let n = min(Int(UInt16(littleEndian: v.loadUnaligned(as: UInt16.self))), parameters.m)
                // Little-endian slots, 4-byte aligned within the record.
                return try body(UnsafeBufferPointer(start: (v.baseAddress! + 4).assumingMemoryBound(to: UInt32.self), count: n))
            }
        }
        if let r { return r }
        return try body(UnsafeBufferPointer(start: nil, count: 0))
    }

    // MARK: MutableGraphStorage (buffered)

    private func mutateEntry(_ node: UInt32, _ body: (UnsafeMutableRawPointer) -> Void) throws {
        let b = blocks.block(of: node)
        var data: [UInt8]
        if let p = pendingBlocks[b] {
            data = p
        } else if let base = try reader.blockPointer(b) {
            data = Array(UnsafeRawBufferPointer(start: base, count: blocks.blockBytes))
        } else {
            data = [UInt8](repeating: 0, count: blocks.blockBytes)
        }
        data.withUnsafeMutableBytes { body($0.baseAddress! + blocks.offset(node, region: 0)) }
        pendingBlocks[b] = data
    }

    func setLevel(_ level: Int, of node: UInt32) throws {
        let old = try self.level(of: node)
        try mutateEntry(node) { p in
            p.storeBytes(of: UInt16(0), toByteOffset: 0, as: UInt16.self)
            p.storeBytes(of: UInt8(level + 1), toByteOffset: 2, as: UInt8.self)
        }
        if level >= 1 { for l in 1...level { pendingUpper[LMDBGraph.upperKey(cid, node, l)] = .some([]) } }
        if let old, old > level { for l in (level + 1)...old { pendingUpper[LMDBGraph.upperKey(cid, node, l)] = .some(nil) } }
    }

    func setNeighbors(of node: UInt32, level: Int, to neighbors: UnsafeBufferPointer<UInt32>) throws {
        if level == 0 {
            let n = min(neighbors.count, 2 * parameters.m)
            try mutateEntry(node) { p in
                p.storeBytes(of: UInt16(n).littleEndian, toByteOffset: 0, as: UInt16.self)
                for i in 0..<(2 * parameters.m) {
                    p.storeBytes(of: (i < n ? neighbors[i] : 0).littleEndian, toByteOffset: 4 + 4 * i, as: UInt32.self)
                }
            }
        } else {
            pendingUpper[LMDBGraph.upperKey(cid, node, level)] = .some(Array(neighbors.prefix(parameters.m)))
        }
    }

    func setEntryPoint(_ entry: GraphEntryPoint?) throws {
        self.entry = entry
        entryDirty = true
    }

    func removeNode(_ node: UInt32) throws {
        guard let old = try level(of: node) else { return }
        try mutateEntry(node) { p in p.initializeMemory(as: UInt8.self, repeating: 0, count: LMDBGraph.entrySize(m: parameters.m)) }
        if old >= 1 { for l in 1...old { pendingUpper[LMDBGraph.upperKey(cid, node, l)] = .some(nil) } }
    }

    func updateNeighbors(of node: UInt32, level: Int, _ body: (UnsafeBufferPointer<UInt32>) throws -> UnsafeBufferPointer<UInt32>?) throws {
        scratch.removeAll(keepingCapacity: true)
        try withNeighbors(of: node, level: level) { scratch.append(contentsOf: $0) }
        let current = scratch
        if let new = try current.withUnsafeBufferPointer({ try body($0) }) {
            try setNeighbors(of: node, level: level, to: new)
        }
    }

    /// Writes every buffered change (blocks, upper lists, header) into the transaction.
    func flush(_ db: Store.Databases) throws {
        for b in pendingBlocks.keys.sorted() {
            try blocks.withKey(b) { k in try pendingBlocks[b]!.withUnsafeBytes { try txn.put(blocks.db, key: k, value: $0) } }
        }
        for key in pendingUpper.keys.sorted() {
            let node = UInt32(truncatingIfNeeded: key >> 8), level = Int(key & 0xFF)
            try withUpperKey(node, level) { k in
                if let list = pendingUpper[key]!, true {
                    var v = [UInt8](repeating: 0, count: 4 + 4 * parameters.m)
                    v.withUnsafeMutableBytes { p in
                        p.storeBytes(of: UInt16(list.count).littleEndian, toByteOffset: 0, as: UInt16.self)
                        for (i, x) in list.enumerated() { p.storeBytes(of: x.littleEndian, toByteOffset: 4 + 4 * i, as: UInt32.self) }
                    }
                    try v.withUnsafeBytes { try txn.put(links, key: k, value: $0) }
                } else {
                    _ = try txn.delete(links, key: k)
                }
            }
        }
        if entryDirty { try LMDBGraph.writeHeader(txn, indexDB, cid: cid, entry: entry, parameters: parameters) }
        pendingBlocks.removeAll()
        pendingUpper.removeAll()
        entryDirty = false
    }

    static func writeHeader(_ txn: Transaction, _ db: Database, cid: UInt32, entry: GraphEntryPoint?, parameters: HNSWParameters) throws {
        var v = [UInt8](repeating: 0, count: 16)
        v.withUnsafeMutableBytes { p in
            p.storeBytes(of: (entry?.node ?? 0).littleEndian, toByteOffset: 0, as: UInt32.self)
            p.storeBytes(of: Int32(entry?.level ?? -1).littleEndian, toByteOffset: 4, as: Int32.self)
            p.storeBytes(of: UInt32(parameters.m).littleEndian, toByteOffset: 8, as: UInt32.self)
            p.storeBytes(of: UInt32(parameters.efConstruction).littleEndian, toByteOffset: 12, as: UInt32.self)
        }
        try txn.put(db, key: headerKey(cid), value: v)
    }
}
