import Foundation
import SextantKernels
import SextantStorage

/// Options for a search.
public struct SearchOptions: Sendable {
    /// Score every candidate with its full vector, whatever the index (a `Flat` collection,
    /// or one whose codebooks are not trained yet, is always searched exactly).
    public var exact: Bool
    /// With PQ codes: how many best candidates by approximate distance are re-scored with full
    /// vectors (nil: the recipe decides — `max(100, 10·k)` with `Refine`, none without).
    public var rerank: Int?
    /// With an HNSW graph: the beam width at level 0 (nil: `max(64, k)`); raised to `k`.
    public var ef: Int?
    public init(exact: Bool = false, rerank: Int? = nil, ef: Int? = nil) {
        self.exact = exact
        self.rerank = rerank
        self.ef = ef
    }
}

/// One query of a multi-query search.
public struct Query: Sendable {
    public var vector: [Float]
    public var k: Int
    /// Rows must satisfy it; nil matches every row.
    public var filter: Filter?
    public init(vector: [Float], k: Int, filter: Filter? = nil) {
        self.vector = vector
        self.k = k
        self.filter = filter
    }
}

extension VectorCollection {
    /// The `k` nearest live rows satisfying `filter`, sorted by (distance, id).
    ///
    /// Returns exactly `min(k, matches)` results. Exact: every matching row is scored with its
    /// full vector (the oracle every approximate plan is tested against).
    public func search(_ vector: [Float], k: Int, filter: Filter? = nil, options: SearchOptions = SearchOptions()) throws -> [SearchResult] {
        try search([Query(vector: vector, k: k, filter: filter)], options: options)[0]
    }

    /// Answers many queries; result `i` belongs to `queries[i]`.
    ///
    /// Queries with the same filter share one pass over the data (each vector read once serves
    /// a group of queries), and groups run on ``Store/Configuration/searchThreads`` threads.
    public func search(_ queries: [Query], options: SearchOptions = SearchOptions()) throws -> [[SearchResult]] {
        // Validate and bind everything before touching the store.
        var prepared: [PreparedQuery] = []
        prepared.reserveCapacity(queries.count)
        var bound: [Filter: BoundFilter] = [:]
        for (i, q) in queries.enumerated() {
            guard q.k >= 1 else {
                throw SextantError(.invalidArgument, "k must be at least 1, got \(q.k)", context: ["query": String(i)])
            }
            do { try validate(vector: q.vector, row: nil) } catch { throw error.adding(["query": String(i)]) }
            var filter: BoundFilter? = nil
            if let p = q.filter, p != .matchAll {
                if let b = bound[p] { filter = b } else {
                    do { filter = try p.bind(to: schema) } catch { throw error.adding(["query": String(i)]) }
                    bound[p] = filter
                }
            }
            prepared.append(PreparedQuery(index: i, vector: metric == .cosine ? VectorCollection.normalized(q.vector) : q.vector, k: q.k, predicate: q.filter == .matchAll ? nil : q.filter, filter: filter))
        }
        if !options.exact, let rerank = options.rerank, rerank < 0 {
            throw SextantError(.invalidArgument, "rerank must be at least 0, got \(rerank)")
        }
        if !options.exact, let ef = options.ef, ef < 1 {
            throw SextantError(.invalidArgument, "ef must be at least 1, got \(ef)")
        }
        if !options.exact, pqComponent != nil || hnswComponent != nil,
           let results = try approximate(prepared, options: options, count: queries.count) {
            return results
        }
        // Group by predicate: one data pass per group of up to `groupSize` queries.
        var groups: [[PreparedQuery]] = []
        var byPredicate: [Filter?: [PreparedQuery]] = [:]
        var order: [Filter?] = []
        for q in prepared {
            if byPredicate[q.predicate] == nil { order.append(q.predicate) }
            byPredicate[q.predicate, default: []].append(q)
        }
        let groupSize = 16
        for p in order {
            let qs = byPredicate[p]!
            var i = 0
            while i < qs.count {
                groups.append(Array(qs[i..<min(i + groupSize, qs.count)]))
                i += groupSize
            }
        }
        // Work items: (group, slot range). With fewer groups than threads, each group's slot
        // space is split so that a single query also uses every core; partial top-k lists merge.
        let threads = max(1, store.configuration.searchThreads)
        var items: [(group: Int, slots: Range<UInt32>?)] = groups.indices.map { ($0, nil) }
        if threads > 1 && groups.count < threads {
            let nextSlot = try store.env.read { txn in try state(txn).nextSlot }
            if nextSlot >= 4096 {
                let parts = UInt32(threads * 2)
                let step = (nextSlot + parts - 1) / parts
                items = groups.indices.flatMap { g in
                    stride(from: UInt32(0), to: nextSlot, by: Int(step)).map { (g, $0..<min($0 + step, nextSlot)) }
                }
            }
        }
        let partials = PartialResults(count: items.count)
        let failure = FirstError()
        let workers = min(threads, items.count)
        if workers <= 1 {
            for (i, item) in items.enumerated() { partials.set(i, try scan(groups[item.group], slots: item.slots)) }
        } else {
            let next = AtomicCounter()
            let groups = groups
            let items = items
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                while failure.error == nil {
                    let i = next.increment()
                    guard i < items.count else { return }
                    do { partials.set(i, try scan(groups[items[i].group], slots: items[i].slots)) } catch { failure.set(error) }
                }
            }
        }
        if let e = failure.error { throw e }
        var merged: [[TopK]] = groups.map { $0.map { TopK(k: $0.k) } }
        for (i, item) in items.enumerated() {
            for (j, heap) in partials.values[i].enumerated() { merged[item.group][j].merge(heap) }
        }
        var out = [[SearchResult]](repeating: [], count: queries.count)
        for (g, group) in groups.enumerated() {
            for (j, q) in group.enumerated() {
                out[q.index] = merged[g][j].sortedResults().map { SearchResult(id: $0.id, distance: $0.distance) }
            }
        }
        return out
    }

    struct PreparedQuery: @unchecked Sendable {
        var index: Int
        var vector: [Float]
        var k: Int
        var predicate: Filter?
        var filter: BoundFilter?
    }

    static func normalized(_ v: [Float]) -> [Float] {
        var s: Double = 0
        for x in v { s += Double(x) * Double(x) }
        let inv = Float(1 / s.squareRoot())
        return v.map { $0 * inv }
    }

    /// One pass over the collection (or over the rows matching the group's filter) scoring
    /// every query of the group.
    ///
    /// Vectors are copied from the map into a small contiguous block and scored with the tiled
    /// many-queries kernel: each vector is read once for the whole group. Cosine is computed as
    /// `1 − q̂·x / ‖x‖` with the query normalised once and ‖x‖ once per vector.
    func scan(_ group: [PreparedQuery], slots: Range<UInt32>?) throws -> [TopK] {
        try store.env.read { txn in
            _ = try state(txn)
            // The attribute indexes give the exact live slots matching the filter (all live slots
            // without one); only their vectors are read.
            var candidates = try match(txn, group[0].filter).slots
            if let slots { candidates.formIntersection(Bitmap(range: slots)) }
            let reader = try vectorReader(txn)
            let blocks = reader.blocks
            let per = UInt32(blocks.slotsPerBlock)
            // A local value with mutating methods: its accesses are checked statically (captured
            // variables of nested functions cost a runtime exclusivity check per access).
            var scanner = GroupScanner(group, dimension: dimension, metric: metric)
            var pendingBlock: UInt32 = .max
            var pendingSlots: [UInt32] = []
            pendingSlots.reserveCapacity(Int(per))
            for slot in candidates {
                if slot / per != pendingBlock {
                    try drainBlock(&scanner, &pendingSlots, reader)
                    pendingBlock = slot / per
                }
                pendingSlots.append(slot)
            }
            try drainBlock(&scanner, &pendingSlots, reader)
            scanner.flush()
            return scanner.heaps
        }
    }

    /// Scores the pending slots of one block: a whole block in place when every slot is a
    /// candidate and several queries share the pass, else slot by slot.
    private func drainBlock(_ scanner: inout GroupScanner, _ pending: inout [UInt32], _ reader: SlotBlocks.Reader) throws {
        guard let first = pending.first else { return }
        let blocks = reader.blocks
        let per = blocks.slotsPerBlock
        if !scanner.single && pending.count == per && per > 1 {
            guard let base = try reader.blockPointer(first / UInt32(per)) else {
                throw SextantError(.corrupted, "live slot \(first) has no vector block", context: ["collection": name, "slot": String(first)])
            }
            scanner.addBlock(base + blocks.regionOffsets[0], base + blocks.regionOffsets[1], base + blocks.regionOffsets[2], count: per)
        } else {
            for slot in pending {
                let (id, x) = try vectorEntry(reader, slot)
                scanner.add(id, x, try storedNorm(reader, slot))
            }
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// Visits the records of this collection in `db` whose slot lies in `slots` (all when nil).
    func scanSlots(
        _ txn: Transaction, _ db: Database, _ slots: Range<UInt32>?,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let first = slots?.lowerBound ?? 0
        let end = slots?.upperBound ?? UInt32.max
        try Keys.withRowKey(cid, first) { start in
            try txn.scan(db, from: start) { k, v in
                guard let (kc, slot) = Keys.decodeRow(k), kc == cid, slot < end else { return false }
                try body(k, v)
                return true
            }
        }
    }
}

/// Partial top-k lists written by concurrent work items (each index exactly once).
final class PartialResults: @unchecked Sendable {
    private var storage: [[TopK]]
    private let lock = NSLock()
    init(count: Int) { storage = Array(repeating: [], count: count) }
    func set(_ i: Int, _ r: [TopK]) { lock.lock(); storage[i] = r; lock.unlock() }
    var values: [[TopK]] { lock.lock(); defer { lock.unlock() }; return storage }
}

final class FirstError: @unchecked Sendable {
    private var stored: (any Error)?
    private let lock = NSLock()
    var error: (any Error)? { lock.lock(); defer { lock.unlock() }; return stored }
    func set(_ e: any Error) { lock.lock(); if stored == nil { stored = e }; lock.unlock() }
}

final class AtomicCounter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func increment() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value - 1 }
}

extension VectorCollection {
    /// Answers queries with the graph when it is built, else over PQ codes when they are
    /// trained; nil when neither is (the exact plan then answers). Queries run on
    /// ``Store/Configuration/searchThreads`` threads, each thread in its own snapshot.
    func approximate(_ prepared: [PreparedQuery], options: SearchOptions, count: Int) throws -> [[SearchResult]]? {
        let (hasGraph, hasCodes) = try store.env.read { txn in (try graph(txn) != nil, try quantizer(txn) != nil) }
        guard hasGraph || hasCodes else { return nil }
        let threads = max(1, min(store.configuration.searchThreads, prepared.count))
        let partials = PartialResults(count: threads)
        let failure = FirstError()
        let refine = refines
        let work: @Sendable (Int) -> Void = { [self] t in
            do {
                let heaps: [TopK] = try store.env.read { txn in
                    var out: [TopK] = []
                    if hasGraph {
                        let context = store.searchContexts.take()
                        defer { store.searchContexts.give(context) }
                        guard let g = try graph(txn) else {
                            throw SextantError(.notFound, "the graph of '\(name)' was dropped during the search")
                        }
                        let src = try graphSource(txn)
                        for i in stride(from: t, to: prepared.count, by: threads) {
                            let q = prepared[i]
                            out.append(try graphSearch(q, ef: max(q.k, options.ef ?? 64), txn, graph: g, source: src, context: context))
                        }
                        return out
                    }
                    guard let pq = try quantizer(txn) else { throw SextantError(.notFound, "codebooks were dropped") }
                    for i in stride(from: t, to: prepared.count, by: threads) {
                        let q = prepared[i]
                        let r = options.rerank ?? (refine ? max(100, 10 * q.k) : 0)
                        out.append(try codeSearch(q, pq: pq, rerank: r, txn))
                    }
                    return out
                }
                partials.set(t, heaps)
            } catch { failure.set(error) }
        }
        if threads == 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: threads, execute: work) }
        if let e = failure.error { throw e }
        var out = [[SearchResult]](repeating: [], count: count)
        let values = partials.values
        for t in 0..<threads {
            for (j, i) in stride(from: t, to: prepared.count, by: threads).enumerated() {
                out[prepared[i].index] = values[t][j].sortedResults().map { SearchResult(id: $0.id, distance: $0.distance) }
            }
        }
        return out
    }
}

/// The scoring state of one pass over candidate vectors for a group of queries.
///
/// Vectors are copied from the map into a small contiguous block and scored with the tiled
/// many-queries kernel, so each vector is read once for the whole group; a single query is
/// scored in place. Cosine is `1 + (−q̂·x) · (1/‖x‖)` with the query normalised once and the
/// stored norm of `x` — the same arithmetic on every path, so results are identical alone or
/// batched.
struct GroupScanner {
    var heaps: [TopK]
    let queries: [Float]
    let q0: [Float]
    let nq: Int
    let d: Int
    let kind: DistanceKind
    let cosine: Bool
    let single: Bool
    let block: Int
    var vectors: [Float]
    var ids: [UInt64]
    var norms: [Float]
    var out: [Float]
    var filled = 0

    init(_ group: [VectorCollection.PreparedQuery], dimension d: Int, metric: Metric) {
        heaps = group.map { TopK(k: $0.k) }
        queries = group.flatMap { $0.vector }
        q0 = group[0].vector
        nq = group.count
        self.d = d
        kind = metric == .l2 ? .l2 : .ip
        cosine = metric == .cosine
        single = nq == 1
        block = max(8, min(256, (64 * 1024) / (4 * d)))
        vectors = single ? [] : [Float](repeating: 0, count: block * d)
        ids = [UInt64](repeating: 0, count: block)
        norms = [Float](repeating: 0, count: block)
        out = single ? [] : [Float](repeating: 0, count: nq * block)
    }

    mutating func flush() {
        guard filled > 0 else { return }
        let (nq, d, block, filled, cosine, kind) = (self.nq, self.d, self.block, self.filled, self.cosine, self.kind)
        queries.withUnsafeBytes { q in
            vectors.withUnsafeBytes { v in
                norms.withUnsafeBufferPointer { nb in
                    out.withUnsafeMutableBufferPointer { o in
                        Distance.tile(kind, queries: q.baseAddress!, queryCount: nq, vectors: v.baseAddress!,
                                      vectorCount: filled, dimension: d, into: o.baseAddress!, outputRowStride: block)
                        if cosine {
                            for j in 0..<filled {
                                let norm = nb[j]
                                let inv = norm > 0 ? 1 / norm : 0
                                for i in 0..<nq { o[i * block + j] = 1 + o[i * block + j] * inv }
                            }
                        }
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
        self.filled = 0
    }

    @inline(__always)
    mutating func add(_ id: UInt64, _ x: UnsafeRawPointer, _ norm: Float) {
        if single {
            let (kind, dim) = (self.kind, self.d)
            var dist = q0.withUnsafeBytes { q in Distance.distance(kind, query: q.baseAddress!, vector: x, dimension: dim) }
            if cosine { dist = 1 + dist * (norm > 0 ? 1 / norm : 0) }
            _ = heaps[0].insert(distance: dist, id: id)
            return
        }
        let f = filled, dim = self.d
        ids[f] = id
        norms[f] = norm
        vectors.withUnsafeMutableBytes { dst in (dst.baseAddress! + 4 * f * dim).copyMemory(from: x, byteCount: 4 * dim) }
        filled = f + 1
        if filled == block { flush() }
    }

    /// A whole block of candidates scored where it lies in the map (vectors contiguous).
    mutating func addBlock(_ blockIDs: UnsafeRawPointer, _ xs: UnsafeRawPointer, _ blockNorms: UnsafeRawPointer, count n: Int) {
        flush()
        var blockOut = [Float](repeating: 0, count: nq * n)
        let idBuf = (0..<n).map { UInt64(littleEndian: blockIDs.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)) }
        let (nq, d, cosine, kind) = (self.nq, self.d, self.cosine, self.kind)
        queries.withUnsafeBytes { q in
            blockOut.withUnsafeMutableBufferPointer { o in
                Distance.tile(kind, queries: q.baseAddress!, queryCount: nq, vectors: xs,
                              vectorCount: n, dimension: d, into: o.baseAddress!, outputRowStride: n)
                if cosine {
                    for j in 0..<n {
                        let norm = blockNorms.loadUnaligned(fromByteOffset: 4 * j, as: Float.self)
                        let inv = norm > 0 ? 1 / norm : 0
                        for i in 0..<nq { o[i * n + j] = 1 + o[i * n + j] * inv }
                    }
                }
            }
        }
        blockOut.withUnsafeBufferPointer { o in
            idBuf.withUnsafeBufferPointer { idp in
                for i in 0..<nq { heaps[i].insert(distances: UnsafeBufferPointer(rebasing: o[(i * n)..<((i + 1) * n)]), ids: idp) }
            }
        }
    }
}
