import SextantKernels
import SextantStorage

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
        return try LMDBGraph(txn: txn, db: db, cid: cid, parameters: params, nodeIDBound: try state(txn).nextSlot,
                             shared: store.blockPointers)
    }

    /// A graph built in memory, not yet stored: node `i` is slot `slots[i]`.
    struct PendingGraph: Sendable {
        var slots: [UInt32]
        var graph: InMemoryGraph
    }

    /// Rebuilds the graph from scratch over every live row of `txn` (which must be a write
    /// transaction; readers go on, other writers wait) on `threads` threads. Checks `control`
    /// for cancellation throughout; stopping aborts nothing by itself, the caller's
    /// transaction does.
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
        for d in [db.graph, db.links] { try txn.deleteAll(d, prefix: Keys.prefix(cid)) }
        let g = try LMDBGraph(txn: txn, db: db, cid: cid, parameters: params, nodeIDBound: try state(txn).nextSlot,
                             shared: store.blockPointers)
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
