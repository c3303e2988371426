import CSextantSIMD
import Foundation
import SextantKernels
import SextantStorage

// What the search threads run: a group's plan over its queries (GroupRunner), the exact plan's
// shared pass (GroupScanner), and the shared state of one batch's threads.

/// Results of work items claimed by concurrent threads, each index set exactly once.
final class ClaimedResults<T>: @unchecked Sendable {
    private var storage: [T?]
    private var next = 0
    private let lock = NSLock()
    init(count: Int) { storage = Array(repeating: nil, count: count) }
    /// The next unclaimed item index (past the end when all are taken).
    func claim() -> Int { lock.lock(); defer { lock.unlock() }; next += 1; return next - 1 }
    func set(_ i: Int, _ r: T) { lock.lock(); storage[i] = r; lock.unlock() }
    /// Every result, once all items ran (an unset one is a scheduling bug).
    var values: [T] { lock.lock(); defer { lock.unlock() }; return storage.map { $0! } }
}

/// Partial top-k lists written by concurrent work items.
typealias PartialResults = ClaimedResults<([TopK], [VectorCollection.QueryStats])>
extension ClaimedResults where T == ([TopK], [VectorCollection.QueryStats]) {
    typealias Part = T
}

/// A value handed to threads that use it under a discipline the compiler cannot see (here:
/// each LMDB transaction by one thread).
struct UncheckedSendable<V>: @unchecked Sendable {
    let value: V
    init(_ value: V) { self.value = value }
}

final class FirstError: @unchecked Sendable {
    private var stored: (any Error)?
    private let lock = NSLock()
    var error: (any Error)? { lock.lock(); defer { lock.unlock() }; return stored }
    func set(_ e: any Error) { lock.lock(); if stored == nil { stored = e }; lock.unlock() }
}


/// The collection views of one batch snapshot, one per transaction, handed to the search
/// threads (worker w uses element w only, so no transaction is used by two threads at once).
struct SnapshotViews: @unchecked Sendable {
    private let views: [CollectionSnapshot]
    init(_ views: [CollectionSnapshot]) { self.views = views }
    subscript(w: Int) -> CollectionSnapshot { views[w] }
}

/// The state one search thread keeps while it runs work items inside its read transaction
/// (of the batch's snapshot): the graph, codebooks and scratch it opened once.
struct GroupRunner {
    /// The collection as this thread's transaction sees it.
    let view: CollectionSnapshot
    var bitsets: [Int: DenseBitset] = [:]
    /// The group whose bitset was built in the context's spare memory (given back at finish).
    var spareGroup: Int?
    var context: HNSWSearchContext?
    private(set) var session: ScanSession

    init(_ view: CollectionSnapshot, tables: BatchTables? = nil) {
        self.view = view
        session = ScanSession(view, shared: tables)
    }

    var collection: VectorCollection { view.collection }
    var txn: Transaction { view.txn }

    /// A fresh scan session (its tables are keyed by vector number, unique within one batch).
    mutating func newSession() { session = ScanSession(view) }

    mutating func finish() {
        if let context {
            // The memory the context lent an eligibility bitset serves its next filtered search
            // (a bitset the store's cache shares is not lent memory).
            if let g = spareGroup, let spare = bitsets[g]?.storage {
                bitsets = [:]
                context.spareBitsetWords = spare
            }
            spareGroup = nil
            collection.store.searchContexts.give(context)
        }
        context = nil
    }

    mutating func graphState() throws -> (LMDBGraph, BlockVectors, HNSWSearchContext) {
        guard let g = try view.graph() else {
            throw SextantError(.notFound, "the graph of '\(collection.name)' was dropped during the search")
        }
        let c = context ?? collection.store.searchContexts.take()
        context = c
        return (g, try view.searchSource(), c)
    }

    mutating func run(_ group: VectorCollection.PlannedGroup, groupIndex g: Int, item: VectorCollection.WorkItem, ef: Int?,
                      rerank: Int?, refine: Bool, live: Int) throws -> ([TopK], [VectorCollection.QueryStats]) {
        let work = PlanWork(group: group, groupIndex: g, item: item, queries: Array(group.queries[item.range]), ef: ef,
                            rerank: rerank, refine: refine, live: live)
        // A partition-major group outside a pass (never scheduled so) is its exact scan.
        let plan = physicalPlans.first { $0.kind == group.plan.kind } ?? ExactPlan()
        return try plan.run(work, &self)
    }

    /// The codebooks (read once per transaction by the view).
    func quantizer() throws -> ProductQuantizer {
        guard let p = try view.quantizer() else { throw SextantError(.notFound, "codebooks were dropped") }
        return p
    }
}

/// One work item of a planned group, as a plan runs it: planned in this snapshot, so the
/// group's matches (in its probed cells) are final.
struct PlanWork {
    let group: VectorCollection.PlannedGroup
    let groupIndex: Int
    let item: VectorCollection.WorkItem
    /// The item's queries.
    let queries: [VectorCollection.PreparedQuery]
    /// The caller's beam width and re-rank depth; whether the recipe refines.
    let ef: Int?
    let rerank: Int?
    let refine: Bool
    let live: Int
}

extension ExactPlan {
    func run(_ w: PlanWork, _ runner: inout GroupRunner) throws -> ([TopK], [VectorCollection.QueryStats]) {
        var cands = w.group.candidates
        if let slots = w.item.slots { cands.formIntersection(Bitmap(range: slots)) }
        let heaps = try runner.collection.scan(w.queries, candidates: cands, runner.txn, vectors: try runner.session.vectors())
        let stats = VectorCollection.QueryStats(rowsScored: cands.count,
                                                detail: w.queries.count > 1 ? "shared pass, \(w.queries.count) queries" : "every match scored")
        return (heaps, Array(repeating: stats, count: w.queries.count))
    }
}

extension CodesPlan {
    func run(_ w: PlanWork, _ runner: inout GroupRunner) throws -> ([TopK], [VectorCollection.QueryStats]) {
        if try runner.view.quantizer() == nil, let sq = try runner.view.scalarQuantizer() { return try runScalar(w, sq, &runner) }
        let pq = try runner.quantizer()
        let cands = w.group.candidates
        let (rerank, refine) = (w.rerank, w.refine)
        let rerankFor: (Int) -> Int = { k in rerank ?? (refine ? max(100, 10 * k) : 0) }
        let (collection, txn, session) = (runner.collection, runner.txn, runner.session)
        if w.group.sharedCodePass {
            let heaps = try collection.codeGroupSearch(w.queries, pq: pq, rerank: rerankFor, candidates: cands, txn, session: session)
            let stats = w.queries.map { q in
                VectorCollection.QueryStats(rowsScored: cands.count + min(rerankFor(q.k), cands.count),
                                            detail: "shared \(pq.bits == 8 ? "code" : "fast-scan") pass, \(w.queries.count) queries, re-ranked best \(rerankFor(q.k))")
            }
            return (heaps, stats)
        }
        var heaps: [TopK] = [], stats: [VectorCollection.QueryStats] = []
        for q in w.queries {
            let r = rerankFor(q.k)
            heaps.append(try collection.codeSearch(q, pq: pq, rerank: r, candidates: cands, txn, session: session))
            stats.append(.init(rowsScored: cands.count + min(r, cands.count), detail: r > 0 ? "re-ranked best \(r)" : "approximate distances"))
        }
        return (heaps, stats)
    }
}

extension CodesPlan {
    /// Over SQ8 codes: per query, every match's code scored and the best re-ranked with the full
    /// vectors (by default the `max(2k, 20)` SQ8 graph searches re-rank; 0 reports the codes'
    /// distances).
    private func runScalar(_ w: PlanWork, _ sq: ScalarQuantizer, _ runner: inout GroupRunner) throws -> ([TopK], [VectorCollection.QueryStats]) {
        let cands = w.group.candidates
        var heaps: [TopK] = [], stats: [VectorCollection.QueryStats] = []
        for q in w.queries {
            let depth = w.rerank ?? max(2 * q.k, 20)
            let best = try runner.collection.scalarCandidates(q, sq: sq, keep: max(depth, q.k), candidates: cands, runner.view)
            heaps.append(try runner.collection.rerankCodes(q, best, rerank: depth, runner.txn, vectors: try runner.session.vectors()))
            stats.append(.init(rowsScored: cands.count + min(depth, cands.count),
                               detail: depth > 0 ? "SQ8 codes scored, best \(depth) re-ranked" : "SQ8 distances"))
        }
        return (heaps, stats)
    }
}

extension FilteredGraphPlan {
    func run(_ w: PlanWork, _ runner: inout GroupRunner) throws -> ([TopK], [VectorCollection.QueryStats]) {
        try runGraphPlan(.filteredGraph, w, &runner)
    }
}

extension PostFilterPlan {
    func run(_ w: PlanWork, _ runner: inout GroupRunner) throws -> ([TopK], [VectorCollection.QueryStats]) {
        try runGraphPlan(.postFilter, w, &runner)
    }
}

/// The graph plans' run: the traversal per query (a row-checked predicate's post-filter search
/// when the group was planned from a sample).
private func runGraphPlan(_ kind: PlanKind, _ w: PlanWork, _ runner: inout GroupRunner) throws -> ([TopK], [VectorCollection.QueryStats]) {
    let (gr, src, context) = try runner.graphState()
    let (collection, txn, group, cands) = (runner.collection, runner.txn, w.group, w.group.candidates)
    var heaps: [TopK] = [], stats: [VectorCollection.QueryStats] = []
    let allowed: Bitmap? = group.restricted ?? (group.filter != nil || group.cells != nil) ? cands : nil
    var bits: DenseBitset? = nil
    if let allowed, kind == .filteredGraph {
        if let cached = runner.bitsets[w.groupIndex] {
            bits = cached
        } else {
            // A predicate's own matches (not cut to cells) may repeat across calls.
            let key = group.predicate.flatMap { p in
                group.cells == nil && group.restricted == nil
                    ? DenseBitsetCache.Key(cid: collection.cid, predicate: p, snapshot: txn.snapshotID, bound: gr.nodeIDBound) : nil
            }
            let shared = key.map { collection.store.denseBitsets.get($0) }
            if let hit = shared?.bits {
                bits = hit
            } else if let key, shared?.shouldKeep == true {
                let b = DenseBitset(allowed, bound: gr.nodeIDBound)
                collection.store.denseBitsets.put(key, b)
                bits = b
            } else {
                bits = DenseBitset(allowed, bound: gr.nodeIDBound, reusing: &context.spareBitsetWords)
                runner.spareGroup = w.groupIndex
            }
            runner.bitsets[w.groupIndex] = bits
        }
    }
    for q in w.queries {
        let before = context.distanceCount
        let beam = max(q.k, w.ef ?? 64)
        if let estimate = group.estimatedMatches, let filter = group.filter {
            let (heap, detail) = try collection.deferredPostFilterSearch(q, ef: beam, filter: filter, estimate: estimate, live: w.live,
                                                                        txn, graph: gr, source: src, context: context)
            heaps.append(heap)
            stats.append(.init(rowsScored: context.distanceCount - before, detail: detail))
            continue
        }
        let (heap, detail) = kind == .filteredGraph
            ? try collection.graphSearch(q, ef: beam, allowed: allowed, bits: bits, exhaustiveBelow: group.exhaustiveBelow ?? graphExhaustiveBelow, txn,
                                         graph: gr, source: src, context: context)
            : try collection.postFilterSearch(q, ef: beam, allowed: allowed, matches: cands.count, live: w.live, txn,
                                              graph: gr, source: src, context: context)
        heaps.append(heap)
        stats.append(.init(rowsScored: context.distanceCount - before, detail: detail))
    }
    return (heaps, stats)
}

/// The scoring state of one pass over candidate vectors for a group of queries.
///
/// Candidate rows are collected by address (a block of about 64 KiB of vectors) and scored
/// where they lie in the map with the tiled many-queries kernel, so each vector is read once
/// for the whole group while it is in cache; a single query is scored at once. The addresses
/// must stay valid until ``flush()``: they point into the caller's read transaction. Cosine is
/// `1 + (−q̂·x) · (1/‖x‖)` with the query normalised once and the stored norm of `x` — the
/// same arithmetic on every path, so results are identical alone or batched.
struct GroupScanner {
    var heaps: [TopK]
    /// Several queries: their vectors on 64-byte boundaries, and each one's address there (the
    /// storage lives as long as the scanner). Alone, the query is scored from `q0`.
    let queries: AlignedFloats?
    let queryRows: [UnsafeRawPointer]
    let q0: [Float]
    let nq: Int
    let d: Int
    let kind: DistanceKind
    let cosine: Bool
    let single: Bool
    let block: Int
    var rows: [UnsafeRawPointer]
    var ids: [UInt64]
    /// Cosine: the rows' stored norms, turned into their inverses at flush.
    var norms: [Float]
    var out: [Float]
    var filled = 0

    init(_ group: [VectorCollection.PreparedQuery], dimension d: Int, metric: Metric) {
        heaps = group.map { TopK(k: $0.k) }
        q0 = group[0].vector
        nq = group.count
        self.d = d
        let count = group.count
        let held = count > 1 ? AlignedFloats(group.flatMap { $0.vector }) : nil
        queries = held
        queryRows = held?.withBaseAddress { base in (0..<count).map { base + 4 * $0 * d } } ?? []
        kind = metric == .l2 ? .l2 : .ip
        cosine = metric == .cosine
        single = nq == 1
        block = max(8, min(256, (64 * 1024) / (4 * d)))
        rows = []
        rows.reserveCapacity(single ? 0 : block)
        ids = [UInt64](repeating: 0, count: block)
        norms = [Float](repeating: 0, count: block)
        out = single ? [] : [Float](repeating: 0, count: nq * block)
    }

    mutating func flush() {
        guard filled > 0 else { return }
        let (nq, d, block, filled, kind) = (self.nq, self.d, self.block, self.filled, self.kind)
        // `queryRows` point into `queries`: keep it alive across the kernel.
        withExtendedLifetime(queries) {
            queryRows.withUnsafeBufferPointer { q in
                rows.withUnsafeBufferPointer { r in
                    out.withUnsafeMutableBufferPointer { o in
                        Distance.tile(kind, queries: q.baseAddress!, queryCount: nq, rows: r.baseAddress!, rowCount: filled,
                                      dimension: d, into: o.baseAddress!, outputRowStride: block)
                    }
                }
            }
        }
        if cosine {
            norms.withUnsafeMutableBufferPointer { nb in
                for j in 0..<filled { nb[j] = nb[j] > 0 ? 1 / nb[j] : 0 }
                out.withUnsafeMutableBufferPointer { o in
                    for i in 0..<nq {
                        let row = i * block
                        for j in 0..<filled { o[row + j] = 1 + o[row + j] * nb[j] }
                    }
                }
            }
        }
        out.withUnsafeBufferPointer { o in
            ids.withUnsafeBufferPointer { idp in
                for i in 0..<nq {
                    heaps[i].insert(distances: UnsafeBufferPointer(rebasing: o[(i * block)..<(i * block + filled)]),
                                    ids: UnsafeBufferPointer(rebasing: idp[0..<filled]))
                }
            }
        }
        rows.removeAll(keepingCapacity: true)
        self.filled = 0
    }

    @inline(__always)
    /// Adds one candidate row from the map: its id at `idAt`, vector at `x`, stored norm at
    /// `normAt`. Alone, the row is scored at once, and the id (another cache line of the block)
    /// is read only when the row can enter the results, the norm only for cosine.
    mutating func add(idAt: UnsafeRawPointer, _ x: UnsafeRawPointer, normAt: UnsafeRawPointer) {
        if single {
            let (kind, dim) = (self.kind, self.d)
            var dist = q0.withUnsafeBytes { q in Distance.distance(kind, query: q.baseAddress!, vector: x, dimension: dim) }
            if cosine {
                let norm = normAt.loadUnaligned(as: Float.self)
                dist = 1 + dist * (norm > 0 ? 1 / norm : 0)
            }
            // Equal to the threshold may still enter (a smaller id wins the tie).
            guard dist <= heaps[0].threshold else { return }
            _ = heaps[0].insert(distance: dist, id: UInt64(littleEndian: idAt.loadUnaligned(as: UInt64.self)))
            return
        }
        add(UInt64(littleEndian: idAt.loadUnaligned(as: UInt64.self)), x, normAt.loadUnaligned(as: Float.self))
    }

    /// Adds one candidate row: its id, the address of its vector in the map, its stored norm.
    mutating func add(_ id: UInt64, _ x: UnsafeRawPointer, _ norm: Float) {
        if single {
            let (kind, dim) = (self.kind, self.d)
            var dist = q0.withUnsafeBytes { q in Distance.distance(kind, query: q.baseAddress!, vector: x, dimension: dim) }
            if cosine { dist = 1 + dist * (norm > 0 ? 1 / norm : 0) }
            _ = heaps[0].insert(distance: dist, id: id)
            return
        }
        let f = filled
        ids[f] = id
        norms[f] = norm
        rows.append(x)
        filled = f + 1
        if filled == block { flush() }
    }

    /// A whole block of candidates (ids, vectors and norms each contiguous), scored where it
    /// lies in the map.
    mutating func addBlock(_ blockIDs: UnsafeRawPointer, _ xs: UnsafeRawPointer, _ blockNorms: UnsafeRawPointer, count n: Int) {
        let bytes = 4 * d
        for j in 0..<n {
            add(UInt64(littleEndian: blockIDs.loadUnaligned(fromByteOffset: 8 * j, as: UInt64.self)), xs + j * bytes,
                blockNorms.loadUnaligned(fromByteOffset: 4 * j, as: Float.self))
        }
    }
}

/// Floats on 64-byte boundaries: the tile kernel loads every query of a pass 32 bytes at a
/// time once per vector, and a query array placed 16 bytes off a line splits half those loads
/// across two cache lines (measured: the same pass 10 % slower or faster with where the heap
/// put the array).
final class AlignedFloats: @unchecked Sendable {
    private let base: UnsafeMutableRawPointer
    let count: Int

    init(_ values: [Float]) {
        count = values.count
        base = UnsafeMutableRawPointer.allocate(byteCount: max(1, 4 * values.count), alignment: 64)
        values.withUnsafeBytes { if let src = $0.baseAddress { base.copyMemory(from: src, byteCount: $0.count) } }
    }

    deinit { base.deallocate() }

    /// The address of the first float.
    func withBaseAddress<R>(_ body: (UnsafeRawPointer) throws -> R) rethrows -> R { try body(base) }
}
