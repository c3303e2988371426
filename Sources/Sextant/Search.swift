import CSextantSIMD
import Foundation
import SextantKernels
import SextantStorage

/// Options for a search.
public struct SearchOptions: Sendable {
    /// Score every matching row with its full vector, whatever the indexes (same as
    /// `plan: .exact`).
    public var exact: Bool
    /// With PQ codes: how many best candidates by approximate distance are re-scored with full
    /// vectors (nil: the recipe decides — `max(100, 10·k)` with `Refine`, none without).
    public var rerank: Int?
    /// With an HNSW graph: the beam width at level 0 (nil: `max(64, k)`); raised to `k`.
    public var ef: Int?
    /// The plan to use; nil lets the planner choose per query (per predicate group in a batch)
    /// from the exact match count and the collection's ``CostModel``.
    public var plan: PlanKind?
    /// On a collection partitioned with cells: search only the rows in each query's `probes`
    /// nearest cells (more when they hold fewer than `k` matches) — approximate, like an IVF
    /// index's `nprobe`. Ignored by the exact plan and without cells; nil searches every cell.
    public var probes: Int?
    /// The recall@k the planner must expect of the plan it picks (0…1, default 0.95): it picks
    /// the cheapest plan — and the beam width or re-rank depth left unset above — whose
    /// expected recall, from the collection's ``RecallModel``, meets it; the exact plan
    /// (recall 1) when no approximate one does. 0 turns this off: the defaults of `ef` and
    /// `rerank` stand and the estimated time alone decides.
    public var recall: Double

    /// Options for one search or batch; every value defaults to letting the planner decide.
    public init(exact: Bool = false, rerank: Int? = nil, ef: Int? = nil, plan: PlanKind? = nil, probes: Int? = nil,
                recall: Double = 0.95) {
        self.exact = exact
        self.rerank = rerank
        self.ef = ef
        self.plan = plan
        self.probes = probes
        self.recall = recall
    }

    var forcedPlan: PlanKind? { exact ? .exact : plan }
}

/// One query of a multi-query search.
public struct Query: Sendable {
    /// The query vector (the collection's dimension).
    public var vector: [Float]
    /// How many nearest matching rows to return (at least 1).
    public var k: Int
    /// Rows must satisfy it; nil matches every row.
    public var filter: Filter?
    /// A query of `k` nearest rows to `vector` among those satisfying `filter` (all rows when nil).
    public init(vector: [Float], k: Int, filter: Filter? = nil) {
        self.vector = vector
        self.k = k
        self.filter = filter
    }
}

/// How one search ran: the plan, the planner's estimates, what was actually scored and where
/// the time went. See `VectorCollection.explainSearch(_:k:filter:options:)`.
public struct SearchExplanation: Sendable, CustomStringConvertible {
    /// The plan the search ran, with the planner's estimates.
    public var plan: QueryPlan
    /// The search's results, as ``VectorCollection`` `search` returns them.
    public var results: [SearchResult]
    /// Distance computations actually made (vectors or codes scored).
    public var rowsScored: Int
    /// How the plan ran (e.g. "graph, two-hop expansion", "beam widened to 512 (2 rounds)").
    public var detail: String
    /// Wall time per stage: "filter" (index evaluation, exact match count), "plan" (cost
    /// model and estimates), "search".
    public var stages: [Stage]
    /// Partitions holding at least one match — those a partition-routed search reads (1 when
    /// the collection has no layout, see `VectorCollection.partition(workload:maxPartitions:minRows:cells:queryVectors:probes:threads:progress:)`).
    public var partitionsTouched: Int

    /// One stage of a search (planning, filtering, scoring, ...) and its wall time.
    public struct Stage: Sendable {
        /// The stage's name.
        public var name: String
        /// Wall-clock seconds spent in the stage.
        public var seconds: Double
    }

    /// The sum of the stage times.
    public var totalSeconds: Double { stages.reduce(0) { $0 + $1.seconds } }

    /// The plan, estimates, rows scored and stage times, as `explain` prints them.
    public var description: String {
        var lines: [String] = []
        let chosen = plan.forced ? "forced" : "chosen by the planner"
        lines.append("plan: \(plan.kind.rawValue) (\(chosen)); \(detail)")
        lines.append(String(format: "matches: %@%d of %d live rows (selectivity %.4f%@); partitions touched: %d",
                            plan.matchesEstimated ? "~" : "", plan.matches, plan.liveRows, plan.selectivity,
                            plan.matchesEstimated ? ", estimated from a sample of rows" : "", partitionsTouched))
        lines.append("rows scored: estimated \(plan.estimatedRows), actual \(rowsScored); results: \(results.count)")
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        for e in plan.estimates {
            let recall = e.recall.map { String(format: "recall %.3f", $0) } ?? "recall ?"
            let knob = e.knob.map { (e.kind == .codes ? "re-rank " : "ef ") + String($0) } ?? ""
            lines.append("  estimate " + pad(e.kind.rawValue, 15) + String(format: "%10.3f ms  %8d rows  ", e.seconds * 1000, e.rows)
                         + pad(recall, 14) + knob)
        }
        for s in stages { lines.append("  stage " + pad(s.name, 8) + String(format: "%10.3f ms", s.seconds * 1000)) }
        lines.append(String(format: "total: %.3f ms", totalSeconds * 1000))
        return lines.joined(separator: "\n") + "\n"
    }
}

/// How a batch ran: one plan per group of queries sharing a predicate.
public struct BatchExplanation: Sendable {
    /// The queries of a batch that share one predicate (and probed cells), planned together.
    public struct Group: Sendable {
        /// The predicate's SQL text ("" without one).
        public var predicate: String
        /// The group's plan, with the planner's estimates.
        public var plan: QueryPlan
        /// Distance computations made for the whole group.
        public var rowsScored: Int
        /// How the group ran (e.g. "shared pass, 64 queries", "shared code pass, …").
        public var detail: String
        /// Partitions holding at least one of the group's matches.
        public var partitionsTouched: Int
        /// Queries of the batch identical to one of the group's (same vector, `k` and
        /// predicate): answered with that query's results, not searched again.
        public var duplicates: Int
    }
    /// Results per query, in the batch's order.
    public var results: [[SearchResult]]
    /// The predicate groups, in order of first appearance in the batch.
    public var groups: [Group]
    /// Time per stage of the whole batch.
    public var stages: [SearchExplanation.Stage]
}

extension VectorCollection {
    /// The `k` nearest live rows satisfying `filter`, sorted by (distance, id).
    ///
    /// Returns exactly `min(k, matches)` results. The planner picks the plan (see ``PlanKind``);
    /// `.exact` scores every matching row with its full vector (the oracle every other plan is
    /// tested against).
    ///
    /// - Throws: `invalidArgument` (k < 1, negative `rerank`, `ef` or `probes` < 1, a zero vector
    ///   under cosine), `dimensionMismatch`, `nonFiniteValue`, `unknownAttribute` or `typeMismatch`
    ///   for the filter, `notFound` when the collection was dropped, storage errors (`mapFull`,
    ///   `io`, `storage`, ...).
    public func search(_ vector: [Float], k: Int, filter: Filter? = nil, options: SearchOptions = SearchOptions()) throws -> [SearchResult] {
        try search([Query(vector: vector, k: k, filter: filter)], options: options)[0]
    }

    /// Answers many queries; result `i` belongs to `queries[i]`.
    ///
    /// Queries with the same predicate form a group: the predicate is evaluated once, the
    /// group gets one plan, and an exact group shares passes over the data (each vector read
    /// once serves up to 64 queries, scored with the tiled kernel). Identical queries (same
    /// vector, `k` and predicate) are searched once; queries with the same vector share their
    /// code lookup tables. Groups run on ``Store/Configuration/searchThreads`` threads. Exact
    /// results are identical to answering each query alone.
    ///
    /// - Throws: as the single-query `search`, with `context["query"]` naming the offending query.
    public func search(_ queries: [Query], options: SearchOptions = SearchOptions()) throws -> [[SearchResult]] {
        try execute(queries, options: options, profile: false).results
    }

    /// Runs one search and reports its plan, estimates, rows scored and time per stage.
    ///
    /// - Throws: as the single-query `search`.
    public func explainSearch(_ vector: [Float], k: Int, filter: Filter? = nil, options: SearchOptions = SearchOptions()) throws -> SearchExplanation {
        let e = try execute([Query(vector: vector, k: k, filter: filter)], options: options, profile: true)
        return SearchExplanation(plan: e.groups[0].plan, results: e.results[0], rowsScored: e.stats[0].rowsScored,
                                 detail: e.stats[0].detail, stages: e.stages, partitionsTouched: e.groups[0].partitionsTouched)
    }

    /// Runs a batch and reports the plan of each predicate group with the time per stage.
    ///
    /// - Throws: as the batch `search`.
    public func explainBatch(_ queries: [Query], options: SearchOptions = SearchOptions()) throws -> BatchExplanation {
        let e = try execute(queries, options: options, profile: true)
        var rows = [Int](repeating: 0, count: e.groups.count)
        var details = [String](repeating: "", count: e.groups.count)
        var duplicates = [Int](repeating: 0, count: e.groups.count)
        var shared = [Int](repeating: 0, count: e.groups.count)
        for (i, s) in e.stats.enumerated() {
            rows[e.groupOfQuery[i]] += s.rowsScored
            if e.duplicateOf[i] != nil { duplicates[e.groupOfQuery[i]] += 1; continue }
            if s.sharedTraversal { shared[e.groupOfQuery[i]] += 1; continue }
            if details[e.groupOfQuery[i]].isEmpty { details[e.groupOfQuery[i]] = s.detail }
        }
        for g in details.indices where shared[g] > 0 {
            let note = "\(shared[g]) in their vector's shared traversal"
            details[g] = details[g].isEmpty ? note : details[g] + "; " + note
        }
        return BatchExplanation(results: e.results, groups: e.groups.enumerated().map { i, g in
            BatchExplanation.Group(predicate: g.predicate?.toSQL() ?? "", plan: g.plan, rowsScored: rows[i], detail: details[i],
                                   partitionsTouched: g.partitionsTouched, duplicates: duplicates[i])
        }, stages: e.stages)
    }

    struct PreparedQuery: @unchecked Sendable {
        var index: Int
        /// The index of the first query of the batch with the same vector: queries sharing it
        /// share lookup tables.
        var vectorID: Int
        var vector: [Float]
        var k: Int
        var predicate: Filter?
        var filter: BoundFilter?
        /// The same number for queries of one batch with equal predicates (0: none), so that
        /// grouping compares integers instead of hashing predicate trees again.
        var predicateID = 0
    }

    /// Per-query figures of an executed plan.
    struct QueryStats: Sendable {
        var rowsScored = 0
        var detail = ""
        /// Answered from its vector's shared traversal, not its group's plan.
        var sharedTraversal = false
    }

    /// Queries sharing a predicate, their plan, and the matching slots in the planning snapshot.
    struct PlannedGroup: @unchecked Sendable {
        var predicate: Filter?
        var filter: BoundFilter?
        var queries: [PreparedQuery]
        var plan: QueryPlan
        var candidates: Bitmap
        /// Partitions holding at least one match (explain only; 1 without a layout).
        var partitionsTouched = 1
        /// Codes plan: scan the group's codes in shared passes (fast scan for 4-bit codes,
        /// interleaved tables for 8-bit ones), when the cost model says gathering the codes once
        /// pays for itself, instead of query by query.
        var sharedCodePass = false
        /// The vector cells the group reads (``SearchOptions/probes``); nil: every cell.
        var cells: [Int]? = nil
        /// Beam width of the graph plans and re-rank depth of the codes plan, as planned (nil:
        /// the defaults).
        var ef: Int? = nil
        var rerank: Int? = nil
        /// Post-filter plan whose predicate is checked row by row (the sample's estimate of its
        /// matches); its `candidates` are then empty.
        var estimatedMatches: Int? = nil
        /// Whether the graph plans keep to `candidates`; nil: when there is a predicate or a
        /// cell restriction (calibration sets it for its own row sets, which have neither).
        var restricted: Bool? = nil
        /// The filtered graph plan's exhaustive threshold; nil: `graphExhaustiveBelow`.
        var exhaustiveBelow: Int? = nil
    }

    struct Execution {
        var results: [[SearchResult]]
        var groups: [PlannedGroup]
        var groupOfQuery: [Int]
        /// For a query identical to an earlier one, that query's index (its results are copied).
        var duplicateOf: [Int?]
        var stats: [QueryStats]
        var stages: [SearchExplanation.Stage]
    }

    /// A unit of work: queries `range` of group `group`, over the slots in `slots` (all when nil);
    /// or, with `passBlocks`, those blocks of the batch's partition-major pass.
    struct WorkItem: Sendable {
        var group: Int
        var range: Range<Int>
        var slots: Range<UInt32>?
        var passBlocks: Range<Int>? = nil
        /// With `traversal`: that shared traversal of the batch (group and range unused).
        var traversal: Int? = nil
    }

    func prepare(_ queries: [Query], options: SearchOptions) throws -> [PreparedQuery] {
        var prepared: [PreparedQuery] = []
        prepared.reserveCapacity(queries.count)
        var bound: [Filter: (filter: BoundFilter, id: Int)] = [:]
        var vectorIDs: [VectorBits: Int] = [:]
        // Queries whose vectors share one array's storage (a workload naming the same row
        // again) are the same vector: recognised by address, neither validated nor hashed again.
        var byStorage: [UnsafeRawPointer: Int] = [:]
        for (i, q) in queries.enumerated() {
            guard q.k >= 1 else {
                throw SextantError(.invalidArgument, "k must be at least 1, got \(q.k)", context: ["query": String(i)])
            }
            let storage = queries.count > 1 ? q.vector.withUnsafeBytes { $0.baseAddress } : nil
            let sameStorage = storage.flatMap { byStorage[$0] }.flatMap { queries[$0].vector.count == q.vector.count ? $0 : nil }
            if sameStorage == nil {
                do { try validate(vector: q.vector, row: nil) } catch { throw error.adding(["query": String(i)]) }
            }
            var filter: BoundFilter? = nil
            var predicateID = 0
            if let p = q.filter, p != .matchAll {
                if let b = bound[p] { (filter, predicateID) = b } else {
                    let b: BoundFilter
                    do { b = try p.bind(to: schema) } catch { throw error.adding(["query": String(i)]) }
                    predicateID = bound.count + 1
                    bound[p] = (b, predicateID)
                    filter = b
                }
            }
            // A lone query has nothing to share; a batch keys vectors by their bits, and a
            // repeated vector shares the first one's (normalised) copy: a fresh 1.5 KB array per
            // query was a tenth of a 5,000-query batch, mostly page faults, all of it serial.
            var vectorID = i
            if let first = sameStorage {
                vectorID = prepared[first].vectorID
            } else if queries.count > 1 {
                let key = VectorBits(q.vector)
                if let first = vectorIDs[key] { vectorID = first } else { vectorIDs[key] = i }
                if let storage { byStorage[storage] = i }
            }
            let vector = vectorID != i ? prepared[vectorID].vector
                : metric == .cosine ? VectorCollection.normalized(q.vector) : q.vector
            prepared.append(PreparedQuery(index: i, vectorID: vectorID, vector: vector,
                                          k: q.k, predicate: q.filter == .matchAll ? nil : q.filter, filter: filter,
                                          predicateID: predicateID))
        }
        if let rerank = options.rerank, rerank < 0 {
            throw SextantError(.invalidArgument, "rerank must be at least 0, got \(rerank)")
        }
        if let probes = options.probes, probes < 1 {
            throw SextantError(.invalidArgument, "probes must be at least 1, got \(probes)")
        }
        guard options.recall >= 0 && options.recall <= 1 else {
            throw SextantError(.invalidArgument, "recall must be between 0 and 1, got \(options.recall)")
        }
        if let ef = options.ef, ef < 1 {
            throw SextantError(.invalidArgument, "ef must be at least 1, got \(ef)")
        }
        return prepared
    }

    /// Runs `body` in `given` (one snapshot's transactions) or, when nil, in a new snapshot of
    /// `count` transactions.
    func withSnapshot<R>(_ given: [Transaction]?, count: Int, _ body: ([Transaction]) throws -> R) throws -> R {
        if let given { return try body(given) }
        return try store.env.readSnapshot(count: count, body)
    }

    static func normalized(_ v: [Float]) -> [Float] {
        var s: Double = 0
        for x in v { s += Double(x) * Double(x) }
        let inv = Float(1 / s.squareRoot())
        return v.map { $0 * inv }
    }

    /// One pass over `candidates` scoring every query of the group.
    ///
    /// Vectors are copied from the map into a small contiguous block and scored with the tiled
    /// many-queries kernel: each vector is read once for the whole group. Cosine is computed as
    /// `1 − q̂·x / ‖x‖` with the query normalised once and ‖x‖ once per vector.
    func scan(_ group: [PreparedQuery], candidates: Bitmap, _ txn: Transaction, vectors: SlotBlocks.Reader? = nil) throws -> [TopK] {
        let reader = try vectors ?? vectorReader(txn)
        let blocks = reader.blocks
        let per = UInt32(blocks.slotsPerBlock)
        // A local value with mutating methods: its accesses are checked statically (captured
        // variables of nested functions cost a runtime exclusivity check per access).
        var scanner = GroupScanner(group, dimension: dimension, metric: metric)
        var pendingBlock: UInt32 = .max
        var pendingSlots: [UInt32] = []
        pendingSlots.reserveCapacity(Int(per))
        var sparse = SparseRows(reader, metric: metric, dimension: dimension, single: scanner.single)
        for slot in candidates {
            if slot / per != pendingBlock {
                try drainBlock(&scanner, &pendingSlots, &sparse, reader)
                pendingBlock = slot / per
            }
            pendingSlots.append(slot)
        }
        try drainBlock(&scanner, &pendingSlots, &sparse, reader)
        sparse.drain(&scanner)
        scanner.flush()
        return scanner.heaps
    }

    /// Takes the pending slots of one block: a whole block is scored in place when every slot
    /// is a candidate and several queries share the pass; otherwise the rows join the sparse
    /// list, scored in runs that span blocks.
    private func drainBlock(_ scanner: inout GroupScanner, _ pending: inout [UInt32], _ sparse: inout SparseRows,
                            _ reader: SlotBlocks.Reader) throws {
        guard let first = pending.first else { return }
        let blocks = reader.blocks
        let per = blocks.slotsPerBlock
        guard let base = try reader.blockPointer(first / UInt32(per)) else {
            throw SextantError(.corrupted, "live slot \(first) has no vector block", context: ["collection": name, "slot": String(first)])
        }
        if !scanner.single && pending.count == per && per > 1 {
            scanner.addBlock(base + blocks.regionOffsets[0], base + blocks.regionOffsets[1], base + blocks.regionOffsets[2], count: per)
        } else {
            let mask = UInt32(per - 1)
            for slot in pending { sparse.append(base, Int(slot & mask)) }
            if sparse.isFull { sparse.drain(&scanner) }
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

/// Matching rows scattered through the map, scored in runs of up to 256 that span blocks:
/// a selective predicate leaves about one match per block, so prefetching within a block would
/// never run ahead, and every row would wait for its own DRAM (and TLB) miss.
struct SparseRows {
    private var bases: [UnsafeRawPointer] = []
    private var rows: [Int] = []
    private let idRegion: Int, vectorRegion: Int, normRegion: Int
    private let idStride: Int, vectorStride: Int, normStride: Int
    private let bytes: Int
    private let norms: Bool
    /// Rows requested ahead of the one scored: about 4 KiB of vectors in flight.
    private let ahead: Int
    static let run = 256

    init(_ reader: SlotBlocks.Reader, metric: Metric, dimension: Int, single: Bool) {
        let blocks = reader.blocks
        (idRegion, vectorRegion, normRegion) = (blocks.regionOffsets[0], blocks.regionOffsets[1], blocks.regionOffsets[2])
        (idStride, vectorStride, normStride) = (blocks.strides[0], blocks.strides[1], blocks.strides[2])
        bytes = 4 * dimension
        // Alone, the norm matters only for cosine (and the id only for rows that enter).
        norms = metric == .cosine || !single
        ahead = max(2, min(16, 4096 / max(1, bytes)))
        bases.reserveCapacity(Self.run)
        rows.reserveCapacity(Self.run)
    }

    var isFull: Bool { rows.count >= Self.run }

    mutating func append(_ base: UnsafeRawPointer, _ row: Int) {
        bases.append(base)
        rows.append(row)
    }

    mutating func drain(_ scanner: inout GroupScanner) {
        let n = rows.count
        guard n > 0 else { return }
        bases.withUnsafeBufferPointer { b in
            rows.withUnsafeBufferPointer { r in
                func fetch(_ j: Int) {
                    sextant_prefetch(b[j] + vectorRegion + r[j] * vectorStride, bytes)
                    if norms { sextant_prefetch(b[j] + normRegion + r[j] * normStride, 4) }
                }
                for j in 0..<min(ahead, n) { fetch(j) }
                for j in 0..<n {
                    if j + ahead < n { fetch(j + ahead) }
                    let (base, i) = (b[j], r[j])
                    scanner.add(idAt: base + idRegion + i * idStride, base + vectorRegion + i * vectorStride, normAt: base + normRegion + i * normStride)
                }
            }
        }
        bases.removeAll(keepingCapacity: true)
        rows.removeAll(keepingCapacity: true)
    }
}
