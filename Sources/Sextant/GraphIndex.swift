import CSextantSIMD
import Foundation
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

    init(txn: Transaction, db: Store.Databases, cid: UInt32, parameters: HNSWParameters, nodeIDBound: UInt32) throws {
        self.txn = txn
        self.cid = cid
        self.links = db.links
        self.indexDB = db.index
        self.parameters = parameters
        self.nodeIDBound = nodeIDBound
        blocks = SlotBlocks(db: db.graph, cid: cid, stride: LMDBGraph.entrySize(m: parameters.m))
        reader = SlotBlocks.Reader(blocks, txn: txn, slotBound: nodeIDBound)
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

    @inline(__always)
    func withNeighbors<R>(of node: UInt32, level: Int, _ body: (UnsafeBufferPointer<UInt32>) throws -> R) throws -> R {
        if level == 0 {
            return try withEntry(node) { p in
                guard let p else { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
                let n = min(Int(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self))), 2 * parameters.m)
                return try body(UnsafeBufferPointer(start: (p + 4).assumingMemoryBound(to: UInt32.self), count: n))
            }
        }
        if let pending = pendingUpper[LMDBGraph.upperKey(cid, node, level)] {
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

/// Distances between a query and stored vectors, read in place from the vector blocks. For
/// cosine the query is normalised and a node scores `1 − q̂·x / ‖x‖`, the exact plan's formula.
struct BlockVectors: GraphDistanceSource {
    let reader: SlotBlocks.Reader
    let kind: DistanceKind
    let cosine: Bool
    let dimension: Int
    let vectorOffset: Int
    let normOffset: Int

    init(reader: SlotBlocks.Reader, kind: DistanceKind, cosine: Bool, dimension: Int) {
        self.reader = reader
        self.kind = kind
        self.cosine = cosine
        self.dimension = dimension
        vectorOffset = reader.blocks.regionOffsets[1]
        normOffset = reader.blocks.regionOffsets[2]
    }

    struct Query {
        let pointer: UnsafeRawPointer
        /// `1/‖q‖` for cosine (1 for a normalised search query), unused otherwise.
        let inverseNorm: Float
    }

    /// The node's vector and, for cosine only, its stored norm (the norms sit on other cache
    /// lines than the vector: l2 and ip must not pay that miss).
    @inline(__always)
    func vector(_ node: UInt32) throws -> (UnsafeRawPointer, Float) {
        let (x, n) = try locate(node)
        return (x, cosine ? n.loadUnaligned(as: Float.self) : 0)
    }

    /// Where the node's vector and stored norm are, without reading either.
    @inline(__always)
    func locate(_ node: UInt32) throws -> (vector: UnsafeRawPointer, norm: UnsafeRawPointer) {
        let blocks = reader.blocks
        guard let base = try reader.blockPointer(blocks.block(of: node)) else {
            throw SextantError(.corrupted, "graph node \(node) has no vector block", context: ["slot": String(node)])
        }
        let i = Int(node % UInt32(blocks.slotsPerBlock))
        return (base + vectorOffset + i * 4 * dimension, base + normOffset + 4 * i)
    }

    func query(for node: UInt32) throws -> Query {
        let (p, n) = try vector(node)
        return Query(pointer: p, inverseNorm: n > 0 ? 1 / n : 0)
    }

    /// The exact plan's arithmetic: cosine is `1 + (−q̂·x) · (1/‖x‖)` with the stored norm.
    @inline(__always)
    func score(_ q: Query, _ x: UnsafeRawPointer, _ norm: Float) -> Float {
        if cosine {
            let d = Distance.dot(q.pointer, x, dimension: dimension)
            return 1 + (-d * q.inverseNorm) * (norm > 0 ? 1 / norm : 0)
        }
        return Distance.distance(kind, query: q.pointer, vector: x, dimension: dimension)
    }

    /// The traversal's score: ``TraversalDistance`` (AVX2 + FMA when the CPU has them).
    @inline(__always)
    func fastScore(_ q: Query, _ x: UnsafeRawPointer, _ norm: Float) -> Float {
        if cosine {
            let d = TraversalDistance.dot(q.pointer, x, dimension: dimension)
            return 1 + (-d * q.inverseNorm) * (norm > 0 ? 1 / norm : 0)
        }
        return kind == .l2 ? TraversalDistance.squaredL2(q.pointer, x, dimension: dimension)
            : -TraversalDistance.dot(q.pointer, x, dimension: dimension)
    }

    @inline(__always)
    func distance(_ query: Query, to node: UInt32) throws -> Float {
        let (x, n) = try vector(node)
        return fastScore(query, x, n)
    }

    /// Results are reported with the exact plan's arithmetic, so a graph hit carries the
    /// distance an exact scan gives the same row.
    func resultDistance(_ query: Query, to node: UInt32) throws -> Float? {
        let (x, n) = try vector(node)
        return score(query, x, n)
    }

    /// Scores neighbours in chunks through the batch kernels, which prefetch the vectors
    /// ahead of the ones being scored (their addresses are known up front). Cosine norms are
    /// only prefetched while gathering and read after the kernel: each is another cache
    /// miss, and reading it up front would serialize those misses before any scoring.
    func distances(_ query: Query, to nodes: UnsafeBufferPointer<UInt32>, into out: UnsafeMutablePointer<Float>) throws {
        let chunk = 64
        try withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: 2 * chunk) { pointers in
            var start = 0
            while start < nodes.count {
                let n = min(chunk, nodes.count - start)
                for j in 0..<n {
                    let (x, norm) = try locate(nodes[start + j])
                    pointers[j] = x
                    pointers[chunk + j] = norm
                    if cosine { sextant_prefetch(norm, 4) }
                }
                let xs = UnsafeBufferPointer(rebasing: pointers[0..<n])
                let o = out + start
                if kind == .l2 && !cosine {
                    TraversalDistance.squaredL2(query.pointer, xs, dimension: dimension, into: o)
                } else {
                    TraversalDistance.dot(query.pointer, xs, dimension: dimension, into: o)
                    for j in 0..<n {
                        if cosine {
                            let norm = pointers[chunk + j].loadUnaligned(as: Float.self)
                            o[j] = 1 + (-o[j] * query.inverseNorm) * (norm > 0 ? 1 / norm : 0)
                        } else {
                            o[j] = -o[j]
                        }
                    }
                }
                start += n
            }
        }
    }

    func distance(between a: UInt32, and b: UInt32) throws -> Float {
        let (x, nx) = try vector(a)
        let (y, ny) = try vector(b)
        if cosine {
            let den = nx * ny
            return den > 0 ? 1 - Distance.dot(x, y, dimension: dimension) / den : 1
        }
        return score(Query(pointer: x, inverseNorm: 1), y, ny)
    }
}

/// A small free list of search contexts shared by a store's searches.
final class ContextPool: @unchecked Sendable {
    private var free: [HNSWSearchContext] = []
    private let lock = NSLock()

    func take() -> HNSWSearchContext {
        lock.lock(); defer { lock.unlock() }
        return free.popLast() ?? HNSWSearchContext()
    }

    func give(_ c: HNSWSearchContext) {
        lock.lock(); if free.count < 16 { free.append(c) }; lock.unlock()
    }
}

extension VectorCollection {
    var hnswComponent: HNSWParameters? {
        for c in recipe.components {
            if case .hnsw(let m, let ef) = c { return HNSWParameters(m: m, efConstruction: ef, seed: 0x5EC7A47 &+ UInt64(cid)) }
        }
        return nil
    }

    func graphSource(_ txn: Transaction) throws -> BlockVectors {
        BlockVectors(reader: try vectorReader(txn), kind: metric == .l2 ? .l2 : .ip, cosine: metric == .cosine, dimension: dimension)
    }

    /// Whether the recipe has a graph and it is built (one header lookup; no graph handle).
    func graphBuilt(_ txn: Transaction) throws -> Bool {
        guard hnswComponent != nil else { return false }
        return try LMDBGraph.readHeader(txn, db.index, cid: cid) != nil
    }

    /// The graph of a collection whose graph is built, else nil.
    func graph(_ txn: Transaction) throws -> LMDBGraph? {
        guard let params = hnswComponent, try graphBuilt(txn) else { return nil }
        return try LMDBGraph(txn: txn, db: db, cid: cid, parameters: params, nodeIDBound: try state(txn).nextSlot)
    }

    /// Builds the graph from scratch over every live row, on `threads` threads, inside the
    /// write transaction `txn` (readers go on; other writers wait).
    /// A graph built in memory, not yet stored: node `i` is slot `slots[i]`.
    struct PendingGraph: Sendable {
        var slots: [UInt32]
        var graph: InMemoryGraph
    }

    /// Rebuilds the graph over every live row of `txn` (which must be a write transaction).
    /// Checks `control` for cancellation throughout; stopping aborts nothing by itself, the
    /// caller's transaction does.
    func buildGraph(_ txn: Transaction, threads: Int, control: OperationControl, cancellable: Bool = true) throws {
        guard hnswComponent != nil else { return }
        let slots = try IndexReader(txn: txn, db: db.postings, cid: cid).live().toArray()
        control.begin(.reading, total: slots.count)
        // The build reads the vectors in place, in `txn`'s map (it writes no vector until the
        // graph is linked): a table of addresses, not a copy, so the build's memory is the
        // graph plus 8 bytes a row (12 for cosine) beside the mapped file.
        let rows = MappedRows(count: slots.count, kind: kernelMetric, dimension: dimension)
        let reader = try vectorReader(txn)
        for (i, s) in slots.enumerated() {
            if i & 4095 == 0 {
                if cancellable { try control.checkCancellation("the index build") }
                control.report(i)
            }
            rows.set(i, try vectorEntry(reader, s).vector)
        }
        control.finishPhase()
        guard let pending = try rows.withSource({ try linkGraph(slots: slots, source: $0, threads: threads, control: control, cancellable: cancellable) })
        else { return }
        // The vectors' pages are not needed to store the graph: out of the resident set with them.
        store.env.releaseMappedPages()
        try storeGraph(txn, pending, control: control, cancellable: cancellable)
    }

    /// Builds the graph of `slots` (node `i` of `source` is slot `slots[i]`) in memory on
    /// `threads` threads. The long part of every graph build; reports
    /// ``OperationProgress/Phase/linking`` and stops with `cancelled` when asked.
    func linkGraph(slots: [UInt32], source: FlatVectors, threads: Int, control: OperationControl, cancellable: Bool = true) throws -> PendingGraph? {
        guard let params = hnswComponent else { return nil }
        control.note("building HNSW\(params.m) (efConstruction \(params.efConstruction)) over \(slots.count) rows on \(threads) threads")
        control.begin(.linking, total: slots.count)
        let built: InMemoryGraph
        var stop: (@Sendable () -> Bool)? = nil
        if cancellable { stop = { @Sendable in control.isCancelled } }
        do {
            built = try InMemoryGraph.build(count: slots.count, parameters: params, distances: source, threads: threads,
                                            progress: { done, _ in control.report(done) },
                                            isCancelled: stop)
        } catch is GraphBuildCancelled {
            throw SextantError(.cancelled, "the graph build of '\(name)' was cancelled; nothing was changed", context: ["collection": name])
        }
        control.finishPhase()
        return PendingGraph(slots: slots, graph: built)
    }

    /// Replaces the collection's graph in `txn` with `pending`. With `cancellable`, a
    /// cancellation stops it midway (the caller's transaction must then abort).
    func storeGraph(_ txn: Transaction, _ pending: PendingGraph, control: OperationControl, cancellable: Bool) throws {
        guard let params = hnswComponent else { return }
        let slots = pending.slots, built = pending.graph
        control.begin(.storing, total: slots.count)
        // Replace whatever graph there was.
        for d in [db.graph, db.links] {
            try txn.withCursor(d) { c in
                let prefix = Keys.prefix(cid)
                var more = try c.seek(prefix)
                while more, c.key.starts(with: prefix) {
                    try c.deleteCurrent()
                    more = try c.seek(prefix)
                }
            }
        }
        let g = try LMDBGraph(txn: txn, db: db, cid: cid, parameters: params, nodeIDBound: try state(txn).nextSlot)
        var mapped = [UInt32]()
        for (i, slot) in slots.enumerated() {
            if i & 4095 == 0 {
                if cancellable { try control.checkCancellation("the graph build") }
                control.report(i)
            }
            guard let top = built.level(of: UInt32(i)) else { continue }
            try g.setLevel(top, of: slot)
            for l in 0...top {
                mapped.removeAll(keepingCapacity: true)
                built.withNeighbors(of: UInt32(i), level: l) { for n in $0 { mapped.append(slots[Int(n)]) } }
                try mapped.withUnsafeBufferPointer { try g.setNeighbors(of: slot, level: l, to: $0) }
            }
        }
        try g.setEntryPoint(built.entryPoint().map { GraphEntryPoint(node: slots[Int($0.node)], level: $0.level) })
        try keepReachable(g, try graphSource(txn))
        try g.flush(db)
        if built.entryPoint() == nil { try LMDBGraph.writeHeader(txn, db.index, cid: cid, entry: nil, parameters: params) }
        control.finishPhase()
    }

    /// Links freshly written slots into a built graph (new rows inserted, changed vectors
    /// re-placed). Call after the vectors are written to `txn`.
    func linkIntoGraph(_ txn: Transaction, inserted: [UInt32], moved: [UInt32]) throws {
        guard !inserted.isEmpty || !moved.isEmpty, let g = try graph(txn) else { return }
        let src = try graphSource(txn)
        let context = store.searchContexts.take()
        defer { store.searchContexts.give(context) }
        var storage = g
        for s in moved { try HNSW.update(s, storage: &storage, distances: src, parameters: g.parameters, context: context) }
        for s in inserted { try HNSW.insert(s, storage: &storage, distances: src, parameters: g.parameters, context: context) }
        try keepReachable(g, src)
        try g.flush(db)
    }

    /// Back-link pruning can leave a node without in-edges (more so under inner product);
    /// link such nodes back so every live node stays reachable from the entry point, the
    /// invariant `check` verifies. One level-0 traversal per pass, usually one pass.
    func keepReachable(_ g: LMDBGraph, _ src: BlockVectors) throws {
        let context = store.searchContexts.take()
        defer { store.searchContexts.give(context) }
        var storage = g
        for _ in 0..<4 {
            guard try HNSW.reconnect(storage: &storage, distances: src, parameters: g.parameters, context: context) > 0 else { return }
        }
    }

    /// Unlinks deleted slots and repairs their neighbourhoods. Call before their vectors go.
    func unlinkFromGraph(_ txn: Transaction, deleted: [UInt32]) throws {
        guard !deleted.isEmpty, let g = try graph(txn) else { return }
        let src = try graphSource(txn)
        let context = store.searchContexts.take()
        defer { store.searchContexts.give(context) }
        var storage = g
        _ = try HNSW.repair(deleted: Bitmap(deleted), storage: &storage, distances: src, parameters: g.parameters, context: context)
        try g.flush(db)
    }

    /// Graph search of one prepared query in `txn`. `g` and `src` belong to `txn` and are
    /// shared by the queries of one transaction, so block pointers are resolved once for all.
    ///
    /// Filtered traversal: the best `min(k, matches)` rows of `allowed` (every row when nil).
    /// With at most `exhaustiveBelow` matches the graph scores them all instead.
    func graphSearch(_ q: PreparedQuery, ef: Int, allowed: Bitmap?, bits: DenseBitset? = nil, exhaustiveBelow: Int = 1000, _ txn: Transaction,
                     graph g: LMDBGraph, source src: BlockVectors, context: HNSWSearchContext) throws -> (TopK, String) {
        var detail = "graph"
        let found: [Neighbor] = try q.vector.withUnsafeBytes { qp in
            let query = BlockVectors.Query(pointer: qp.baseAddress!, inverseNorm: 1)
            if let allowed {
                // Two hops only where a level-0 list (2m entries) is expected to hold fewer than
                // two matches: above that, plain traversal keeps enough matching candidates and
                // also crosses regions without matches, which the two-hop beam cannot.
                let twoHop = 1 / Double(max(1, g.parameters.m))
                let r = try HNSW.search(query, k: q.k, ef: ef, filter: HNSWFilter(allowed: allowed, allowedBits: bits ?? DenseBitset(allowed, bound: g.nodeIDBound),
                                                                              twoHopBelowSelectivity: twoHop, exhaustiveBelowMatches: exhaustiveBelow),
                                        storage: g, distances: src, context: context)
                switch r.strategy {
                case .graph: detail = "graph"
                case .graphTwoHop: detail = "graph, two-hop expansion"
                case .exhaustive: detail = "every match scored (few matches, or the traversal came up short)"
                }
                return r.neighbors
            }
            return try HNSW.search(query, k: q.k, ef: ef, storage: g, distances: src, context: context)
        }
        return (try externalIDs(found, k: q.k, src.reader), detail)
    }

    /// Unfiltered traversal with the beam widened by 1/selectivity; results outside `allowed`
    /// are dropped, and the beam doubles until `min(k, matches)` remain (past every row, the
    /// matches are scored exactly).
    func postFilterSearch(_ q: PreparedQuery, ef: Int, allowed: Bitmap?, matches: Int, live: Int, _ txn: Transaction,
                          graph g: LMDBGraph, source src: BlockVectors, context: HNSWSearchContext) throws -> (TopK, String) {
        let wanted = min(q.k, matches)
        guard wanted > 0 else { return (TopK(k: q.k), "no matches") }
        let beam = max(ef, q.k)
        var width = allowed == nil ? beam : min(max(live, 1), Int((Double(beam) * Double(live) / Double(max(matches, 1))).rounded(.up)))
        var rounds = 0
        while true {
            rounds += 1
            let found: [Neighbor] = try q.vector.withUnsafeBytes { qp in
                try HNSW.search(BlockVectors.Query(pointer: qp.baseAddress!, inverseNorm: 1), k: width, ef: width,
                                storage: g, distances: src, context: context)
            }
            let kept = allowed.map { a in found.filter { a.contains(UInt32($0.id)) } } ?? found
            if kept.count >= wanted {
                return (try externalIDs(Array(kept.prefix(q.k)), k: q.k, src.reader), rounds == 1 ? "beam \(width)" : "beam widened to \(width) (\(rounds) rounds)")
            }
            if width >= live {
                // The traversal cannot reach enough matches (disconnected or tiny): score them all.
                let heaps = try scan([q], candidates: allowed ?? IndexReader(txn: txn, db: db.postings, cid: cid).live(), txn)
                return (heaps[0], "beam reached every row; matches scored exactly")
            }
            width = min(live, width * 2)
        }
    }

    private func externalIDs(_ found: [Neighbor], k: Int, _ reader: SlotBlocks.Reader) throws -> TopK {
        var out = TopK(k: k)
        for n in found {
            let (ext, _) = try vectorEntry(reader, UInt32(n.id))
            _ = out.insert(distance: n.distance, id: ext)
        }
        return out
    }
}

/// The state of a collection's graph, for `stat --graph`.
public struct GraphStatistics: Sendable {
    /// Nodes (live rows linked into the graph).
    public var nodes: Int
    /// Live rows level-0 traversal from the entry point does not reach (0 after every write).
    public var unreachable: Int
    /// The entry point of traversals (node and top level); nil for an empty graph.
    public var entryPoint: GraphEntryPoint?
    /// Out-degree statistics per level, level 0 first.
    public var degrees: [GraphDegreeStatistics]
    /// Structural problems found (see `check`).
    public var problems: Int
}

extension VectorCollection {
    /// Walks the graph once (structure, reachability, degrees); nil when it is not built.
    ///
    /// - Throws: `notFound` when the collection was dropped, `corrupted`, storage errors
    ///   (`mapFull`, `io`, `storage`, ...).
    public func graphStatistics() throws -> GraphStatistics? {
        try store.env.read { txn in
            _ = try state(txn)
            guard let g = try graph(txn) else { return nil }
            let r = try HNSW.check(storage: g, parameters: g.parameters, issueLimit: 0)
            return GraphStatistics(nodes: r.nodeCount, unreachable: r.unreachableCount, entryPoint: r.entryPoint,
                                   degrees: r.degrees, problems: r.issueCount)
        }
    }
}

/// The addresses of the vectors an index build links (and, for cosine, their squared norms),
/// pointing into a transaction's map: valid while that transaction lives and writes no vector.
private final class MappedRows {
    private let addresses: UnsafeMutablePointer<UnsafeRawPointer>
    private let norms: UnsafeMutablePointer<Float>?
    private let count: Int
    private let kind: DistanceKind
    private let dimension: Int

    init(count: Int, kind: DistanceKind, dimension: Int) {
        self.count = count
        self.kind = kind
        self.dimension = dimension
        addresses = .allocate(capacity: max(count, 1))
        norms = kind == .cosine ? .allocate(capacity: max(count, 1)) : nil
    }

    deinit {
        addresses.deallocate()
        norms?.deallocate()
    }

    func set(_ i: Int, _ vector: UnsafeRawPointer) {
        precondition(i >= 0 && i < count, "row out of range")
        addresses[i] = vector
        norms?[i] = Distance.normSquared(vector, dimension: dimension)
    }

    /// `body` gets a distance source over the rows; it must not keep it.
    func withSource<R>(_ body: (FlatVectors) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) {
            try body(FlatVectors(kind: kind, addresses: UnsafePointer(addresses), count: count, dimension: dimension,
                                 normsSquared: norms.map { UnsafePointer($0) }))
        }
    }
}

