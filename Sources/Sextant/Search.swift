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
        lines.append(String(format: "matches: %d of %d live rows (selectivity %.4f); partitions touched: %d",
                            plan.matches, plan.liveRows, plan.selectivity, partitionsTouched))
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
        /// How the group ran (e.g. "shared pass, 64 queries", "shared fast-scan pass, …").
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
        for (i, s) in e.stats.enumerated() {
            rows[e.groupOfQuery[i]] += s.rowsScored
            if e.duplicateOf[i] != nil { duplicates[e.groupOfQuery[i]] += 1; continue }
            if details[e.groupOfQuery[i]].isEmpty { details[e.groupOfQuery[i]] = s.detail }
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
    }

    /// Per-query figures of an executed plan.
    struct QueryStats: Sendable {
        var rowsScored = 0
        var detail = ""
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
        /// Codes plan: scan the group's codes in shared fast-scan passes (4-bit codes, when the
        /// cost model says re-packing pays for itself) instead of query by query.
        var sharedCodePass = false
        /// The vector cells the group reads (``SearchOptions/probes``); nil: every cell.
        var cells: [Int]? = nil
        /// Beam width of the graph plans and re-rank depth of the codes plan, as planned (nil:
        /// the defaults).
        var ef: Int? = nil
        var rerank: Int? = nil
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

    /// A unit of work: queries `range` of group `group`, over the slots in `slots` (all when nil).
    struct WorkItem: Sendable {
        var group: Int
        var range: Range<Int>
        var slots: Range<UInt32>?
    }

    func prepare(_ queries: [Query], options: SearchOptions) throws -> [PreparedQuery] {
        var prepared: [PreparedQuery] = []
        prepared.reserveCapacity(queries.count)
        var bound: [Filter: BoundFilter] = [:]
        var vectorIDs: [VectorBits: Int] = [:]
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
            // A lone query has nothing to share; a batch keys vectors by their bits.
            var vectorID = i
            if queries.count > 1 {
                let key = VectorBits(q.vector)
                if let first = vectorIDs[key] { vectorID = first } else { vectorIDs[key] = i }
            }
            prepared.append(PreparedQuery(index: i, vectorID: vectorID,
                                          vector: metric == .cosine ? VectorCollection.normalized(q.vector) : q.vector,
                                          k: q.k, predicate: q.filter == .matchAll ? nil : q.filter, filter: filter))
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

    /// Plans and runs a batch: evaluate each distinct predicate once, plan each group, then
    /// run the work items on the search threads, each thread in one read transaction.
    ///
    /// `snapshot`: transactions of one snapshot to run in (planning in the first, one search
    /// thread per transaction) instead of opening a snapshot here — for callers that read more
    /// in the same snapshot.
    func execute(_ queries: [Query], options: SearchOptions, profile: Bool, control: OperationControl? = nil,
                 snapshot: [Transaction]? = nil) throws -> Execution {
        let prepared = try prepare(queries, options: options)
        var stages: [SearchExplanation.Stage] = []
        var clock = monotonicSeconds()
        func stage(_ name: String) {
            let now = monotonicSeconds()
            stages.append(.init(name: name, seconds: now - clock))
            clock = now
        }
        // Identical queries are searched once.
        struct Identity: Hashable {
            var vectorID: Int
            var k: Int
            var predicate: Filter?
        }
        var firstWith: [Identity: Int] = [:]
        var duplicateOf = [Int?](repeating: nil, count: queries.count)
        let forced = options.forcedPlan
        // One snapshot for the whole batch: planning runs in the first transaction, each search
        // thread in one of the others, all opened on the same commit (SPEC §1). Splitting a
        // query's slots between threads is then exact: no row can appear past the planned end
        // or move between two threads' ranges.
        let threads = snapshot?.count ?? max(1, store.configuration.searchThreads)
        return try withSnapshot(snapshot, count: threads) { txns -> Execution in
        let planningTxn = txns[0]
        _ = try state(planningTxn)
        // Probing: each query's cells, nearest first (the exact plan reads every cell).
        let cellQuantizer: CoarseQuantizer? = options.probes != nil && forced != .exact ? try coarseQuantizer(planningTxn) : nil
        struct GroupKey: Hashable {
            var predicate: Filter?
            var cells: [Int]?
        }
        var cellOrder: [[Int]] = []
        // Group by predicate (and probed cells), in order of first appearance.
        var groupIndex: [GroupKey: Int] = [:]
        var members: [[PreparedQuery]] = []
        var groupOfQuery = [Int](repeating: 0, count: queries.count)
        for q in prepared {
            let identity = Identity(vectorID: q.vectorID, k: q.k, predicate: q.predicate)
            if let first = firstWith[identity] {
                duplicateOf[q.index] = first
                groupOfQuery[q.index] = groupOfQuery[first]
                continue
            }
            firstWith[identity] = q.index
            var key = GroupKey(predicate: q.predicate, cells: nil)
            var order: [Int] = []
            if let cellQuantizer, let probes = options.probes {
                order = cellQuantizer.nearest(q.vector, count: cellQuantizer.cells)
                key.cells = order.prefix(probes).sorted()
            }
            let g: Int
            if let e = groupIndex[key] { g = e } else {
                g = members.count
                groupIndex[key] = g
                members.append([])
                cellOrder.append(order)
            }
            members[g].append(q)
            groupOfQuery[q.index] = g
        }
        // Planning snapshot: exact matches per predicate, index state, cost model.
        struct Planning {
            var nextSlot: UInt32 = 0
            var live = 0
            var hasGraph = false
            var hasCodes = false
            var candidates: [Bitmap] = []
            /// Cells each group reads (nil: all).
            var cells: [[Int]?] = []
            var partitionsTouched: [Int] = []
            var model: CostModel?
            var modelSeconds = 0.0
        }
        let planning = try { (txn: Transaction) -> Planning in
            var p = Planning()
            p.nextSlot = try state(txn).nextSlot
            p.hasGraph = try graphBuilt(txn)
            p.hasCodes = try quantizer(txn) != nil
            let reader = IndexReader(txn: txn, db: db.postings, cid: cid)
            let sameCells = cellQuantizer != nil
            for (g, group) in members.enumerated() {
                let m = try match(txn, group[0].filter)
                p.live = m.liveRows
                var rows = m.slots
                var probed: [Int]? = nil
                if sameCells, let probes = options.probes {
                    // The probed cells' matches; further cells in the group's order while they
                    // hold fewer than k of the matches (never fewer than min(k, matches) rows).
                    let need = min(group.map(\.k).max() ?? 1, m.slots.count)
                    var inCells = Bitmap()
                    var taken: [Int] = []
                    for c in cellOrder[g] {
                        if taken.count >= probes && m.slots.intersectionCount(inCells) >= need { break }
                        inCells.formUnion(try reader.cell(c))
                        taken.append(c)
                    }
                    rows.formIntersection(inCells)
                    probed = taken.count == cellOrder[g].count ? nil : taken.sorted()
                }
                p.candidates.append(rows)
                p.cells.append(probed)
            }
            if members.isEmpty { p.live = try IndexReader(txn: txn, db: db.postings, cid: cid).live().count }
            if p.hasGraph || p.hasCodes {
                let t = monotonicSeconds()
                p.model = try costModel(txn, liveRows: p.live, hasGraph: p.hasGraph, hasCodes: p.hasCodes)
                p.modelSeconds = monotonicSeconds() - t
            }
            if profile {
                // Partitions a query is routed to: those holding at least one of its matches.
                if let layout = try partitionLayout(txn) {
                    let parts = try partitionMembers(txn, layout)
                    p.partitionsTouched = p.candidates.map { c in parts.filter { !$0.isDisjoint(with: c) }.count }
                } else {
                    p.partitionsTouched = p.candidates.map { _ in 1 }
                }
            }
            return p
        }(planningTxn)
        // The cost model lookup (or measurement) belongs to planning, though it ran in the
        // planning snapshot's transaction.
        clock += planning.modelSeconds
        stage("filter")
        clock -= planning.modelSeconds
        if let forced {
            if (forced == .filteredGraph || forced == .postFilter) && !planning.hasGraph {
                throw SextantError(.invalidArgument, "plan '\(forced.rawValue)' needs an HNSW graph; collection '\(name)' has none built",
                                   context: ["collection": name, "plan": forced.rawValue])
            }
            if forced == .codes && !planning.hasCodes {
                throw SextantError(.invalidArgument, "plan 'codes' needs trained PQ codes; collection '\(name)' has none",
                                   context: ["collection": name, "plan": forced.rawValue])
            }
        }
        let refine = refines
        var groups: [PlannedGroup] = []
        for (g, qs) in members.enumerated() {
            let m = planning.candidates[g].count
            let k = qs.map(\.k).max() ?? 1
            let defaultRerank = refine ? max(100, 10 * k) : 0
            var est: [PlanEstimate] = []
            if let model = planning.model {
                est = estimates(model, matches: m, live: planning.live, queries: qs.count, k: k, ef: options.ef, rerank: options.rerank,
                                defaultRerank: defaultRerank, target: options.recall, forced: forced,
                                hasGraph: planning.hasGraph, hasCodes: planning.hasCodes)
            } else {
                est = [PlanEstimate(kind: .exact, seconds: 0, rows: m)]
            }
            // Nothing matches: any plan returns nothing, the exact one without touching data.
            let kind = forced ?? (m == 0 ? .exact : est.first?.kind ?? .exact)
            let rows = est.first { $0.kind == kind }?.rows ?? m
            let plan = QueryPlan(kind: kind, forced: forced != nil, matches: m, liveRows: planning.live, queries: qs.count,
                                 estimates: est, estimatedRows: rows)
            var shared = false
            if kind == .codes, let model = planning.model, let oneByOne = model.codeScanSeconds(matches: m, live: planning.live, queries: qs.count),
               let pass = model.sharedCodePass(matches: m, queries: qs.count) {
                shared = pass < oneByOne
            }
            // The knob the estimate was made with (the recall model's, or the caller's).
            let knob = est.first { $0.kind == kind }?.knob
            groups.append(PlannedGroup(predicate: qs[0].predicate, filter: qs[0].filter, queries: qs, plan: plan,
                                       candidates: planning.candidates[g],
                                       partitionsTouched: profile ? planning.partitionsTouched[g] : 1, sharedCodePass: shared,
                                       cells: planning.cells[g],
                                       ef: kind == .filteredGraph || kind == .postFilter ? knob ?? options.ef : options.ef,
                                       rerank: kind == .codes ? knob ?? options.rerank : options.rerank))
        }
        stage("plan")

        // Work items: exact groups in chunks of 64 queries (one shared pass each); the other
        // plans in chunks of 4 (per-query work, small items balance the threads).
        var items: [WorkItem] = []
        for (g, group) in groups.enumerated() {
            let chunk = group.plan.kind == .exact || group.sharedCodePass ? sharedPassQueries : 4
            var i = 0
            while i < group.queries.count {
                items.append(WorkItem(group: g, range: i..<min(i + chunk, group.queries.count), slots: nil))
                i += chunk
            }
        }
        // Fewer items than threads: split exact items' slot space so that one query also uses
        // every core; the partial top-k lists merge.
        if threads > 1 && items.count < threads && planning.nextSlot >= 4096 {
            let parts = UInt32(threads * 2)
            let step = (planning.nextSlot + parts - 1) / parts
            items = items.flatMap { item -> [WorkItem] in
                guard groups[item.group].plan.kind == .exact, groups[item.group].candidates.count >= 4096 else { return [item] }
                return stride(from: UInt32(0), to: planning.nextSlot, by: Int(step)).map {
                    WorkItem(group: item.group, range: item.range, slots: $0..<min($0 + step, planning.nextSlot))
                }
            }
        }
        // Longest first: threads claim items in order, so the big items start early and the
        // small ones fill in at the end instead of one late big item running alone.
        if threads > 1 && items.count > threads {
            let cost = items.map { item -> Double in
                let plan = groups[item.group].plan
                let whole = plan.estimates.first { $0.kind == plan.kind }?.seconds ?? Double(plan.matches)
                return whole * Double(item.range.count) / Double(max(1, plan.queries))
            }
            items = items.indices.sorted { cost[$0] > cost[$1] || (cost[$0] == cost[$1] && $0 < $1) }.map { items[$0] }
        }
        let partials = PartialResults(count: items.count)
        let failure = FirstError()
        // Progress in queries: identical queries count as done at once, a split item as its
        // share of the slots.
        control?.begin(.searching, total: queries.count)
        control?.advance(by: Double(duplicateOf.lazy.filter { $0 != nil }.count))
        let slotCount = Double(max(1, planning.nextSlot))
        let workers = min(threads, items.count)
        let frozen = groups
        let frozenItems = items
        let ef = options.ef
        let rerankOption = options.rerank
        let live = planning.live
        // Worker w uses transaction w of the snapshot, and only it (LMDB: one thread at a time).
        let workerTxns = SnapshotTransactions(txns)
        let work: @Sendable (Int) -> Void = { [self] w in
            do {
                var runner = try GroupRunner(collection: self, txn: workerTxns[w])
                defer { runner.finish() }
                while failure.error == nil {
                    if control?.isCancelled == true {
                        failure.set(SextantError(.cancelled, "the batch search was cancelled"))
                        return
                    }
                    let i = partials.claim()
                    guard i < frozenItems.count else { return }
                    let item = frozenItems[i]
                    let group = frozen[item.group]
                    partials.set(i, try runner.run(group, groupIndex: item.group, item: item, ef: group.ef ?? ef,
                                                  rerank: group.rerank ?? rerankOption, refine: refine, live: live))
                    control?.advance(by: Double(item.range.count) * (item.slots.map { Double($0.count) / slotCount } ?? 1))
                }
            } catch { failure.set(error) }
        }
        if workers <= 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: workers, execute: work) }
        if let e = failure.error { throw e }
        control?.finishPhase()
        let searchStarted = clock
        stage("search")
        // A lone query teaches the cost model how long its graph plan really took.
        if groups.count == 1, groups[0].queries.count == 1, let model = planning.model,
           groups[0].plan.kind == .postFilter || groups[0].plan.matches > graphExhaustiveBelow {
            let plan = groups[0].plan
            let uncorrected = estimates(model, matches: plan.matches, live: plan.liveRows, queries: 1, k: groups[0].queries[0].k,
                                        ef: groups[0].ef, rerank: 0, defaultRerank: 0, target: 0, forced: plan.kind,
                                        hasGraph: planning.hasGraph, hasCodes: false, corrected: false)
            if let e = uncorrected.first(where: { $0.kind == plan.kind }) {
                store.costModels.observe(cid, plan.kind, selectivity: plan.selectivity, seconds: clock - searchStarted, estimate: e.seconds)
            }
        }

        var heaps: [TopK?] = Array(repeating: nil, count: queries.count)
        var stats = [QueryStats](repeating: QueryStats(), count: queries.count)
        let values = partials.values
        for (i, item) in items.enumerated() {
            let (partHeaps, partStats) = values[i]
            for (j, r) in item.range.enumerated() {
                let q = groups[item.group].queries[r]
                if heaps[q.index] == nil { heaps[q.index] = partHeaps[j] } else { heaps[q.index]!.merge(partHeaps[j]) }
                stats[q.index].rowsScored += partStats[j].rowsScored
                if stats[q.index].detail.isEmpty { stats[q.index].detail = partStats[j].detail }
            }
        }
        if let cellQuantizer {
            for i in stats.indices where duplicateOf[i] == nil {
                guard let cells = groups[groupOfQuery[i]].cells else { continue }
                stats[i].detail += "; \(cells.count) of \(cellQuantizer.cells) cells probed"
            }
        }
        var results = heaps.map { h in h.map { $0.sortedResults().map { SearchResult(id: $0.id, distance: $0.distance) } } ?? [] }
        for (i, first) in duplicateOf.enumerated() {
            guard let first else { continue }
            results[i] = results[first]
            stats[i] = QueryStats(rowsScored: 0, detail: "identical to query \(first) of the batch: its results")
        }
        return Execution(results: results, groups: groups, groupOfQuery: groupOfQuery, duplicateOf: duplicateOf, stats: stats,
                         stages: stages)
        }
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
            // Matches are scattered through the map: each vector is a cold miss. Prefetch a few
            // rows ahead so memory works while the current row is scored.
            let base = try reader.blockPointer(first / UInt32(per))
            guard let base else {
                throw SextantError(.corrupted, "live slot \(first) has no vector block", context: ["collection": name, "slot": String(first)])
            }
            let bytes = 4 * dimension
            let ahead = 3
            for j in 0..<min(ahead, pending.count) {
                sextant_prefetch(base + blocks.offset(pending[j], region: 1), bytes)
            }
            for (j, slot) in pending.enumerated() {
                if j + ahead < pending.count { sextant_prefetch(base + blocks.offset(pending[j + ahead], region: 1), bytes) }
                let id = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: blocks.offset(slot, region: 0), as: UInt64.self))
                let norm = base.loadUnaligned(fromByteOffset: blocks.offset(slot, region: 2), as: Float.self)
                scanner.add(id, base + blocks.offset(slot, region: 1), norm)
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
    typealias Part = ([TopK], [VectorCollection.QueryStats])
    private var storage: [Part]
    private var next = 0
    private let lock = NSLock()
    init(count: Int) { storage = Array(repeating: ([], []), count: count) }
    /// The next unclaimed item index (past the end when all are taken).
    func claim() -> Int { lock.lock(); defer { lock.unlock() }; next += 1; return next - 1 }
    func set(_ i: Int, _ r: Part) { lock.lock(); storage[i] = r; lock.unlock() }
    var values: [Part] { lock.lock(); defer { lock.unlock() }; return storage }
}

final class FirstError: @unchecked Sendable {
    private var stored: (any Error)?
    private let lock = NSLock()
    var error: (any Error)? { lock.lock(); defer { lock.unlock() }; return stored }
    func set(_ e: any Error) { lock.lock(); if stored == nil { stored = e }; lock.unlock() }
}


/// The transactions of one batch snapshot, handed to the search threads (worker w uses
/// element w only, so no transaction is used by two threads at once).
struct SnapshotTransactions: @unchecked Sendable {
    private let txns: [Transaction]
    init(_ txns: [Transaction]) { self.txns = txns }
    subscript(w: Int) -> Transaction { txns[w] }
}

/// The state one search thread keeps while it runs work items inside its read transaction
/// (of the batch's snapshot): the graph, codebooks and scratch it opened once.
struct GroupRunner {
    let collection: VectorCollection
    let txn: Transaction
    var bitsets: [Int: DenseBitset] = [:]
    var graph: LMDBGraph?
    var source: BlockVectors?
    var context: HNSWSearchContext?
    var pq: ProductQuantizer?
    let session: ScanSession

    init(collection: VectorCollection, txn: Transaction) throws {
        self.collection = collection
        self.txn = txn
        session = ScanSession(collection, txn)
        _ = try collection.state(txn)
    }

    mutating func finish() {
        if let context { collection.store.searchContexts.give(context) }
        context = nil
    }

    private mutating func graphState() throws -> (LMDBGraph, BlockVectors, HNSWSearchContext) {
        if let graph, let source, let context { return (graph, source, context) }
        guard let g = try collection.graph(txn) else {
            throw SextantError(.notFound, "the graph of '\(collection.name)' was dropped during the search")
        }
        let s = try collection.graphSource(txn)
        let c = collection.store.searchContexts.take()
        (graph, source, context) = (g, s, c)
        return (g, s, c)
    }

    mutating func run(_ group: VectorCollection.PlannedGroup, groupIndex g: Int, item: VectorCollection.WorkItem, ef: Int?,
                      rerank: Int?, refine: Bool, live: Int) throws -> ([TopK], [VectorCollection.QueryStats]) {
        // Planned in this snapshot: the group's matches (in its probed cells) are final.
        var cands = group.candidates
        let queries = Array(group.queries[item.range])
        switch group.plan.kind {
        case .exact:
            if let slots = item.slots { cands.formIntersection(Bitmap(range: slots)) }
            let heaps = try collection.scan(queries, candidates: cands, txn, vectors: try session.vectors())
            let stats = VectorCollection.QueryStats(rowsScored: cands.count, detail: queries.count > 1 ? "shared pass, \(queries.count) queries" : "every match scored")
            return (heaps, Array(repeating: stats, count: queries.count))
        case .codes:
            if pq == nil {
                guard let p = try collection.quantizer(txn) else { throw SextantError(.notFound, "codebooks were dropped") }
                pq = p
            }
            let rerankFor: (Int) -> Int = { k in rerank ?? (refine ? max(100, 10 * k) : 0) }
            if group.sharedCodePass {
                let heaps = try collection.codeGroupSearch(queries, pq: pq!, rerank: rerankFor, candidates: cands, txn, session: session)
                let stats = queries.map { q in
                    VectorCollection.QueryStats(rowsScored: cands.count + min(rerankFor(q.k), cands.count),
                                                detail: "shared fast-scan pass, \(queries.count) queries, re-ranked best \(rerankFor(q.k))")
                }
                return (heaps, stats)
            }
            var heaps: [TopK] = [], stats: [VectorCollection.QueryStats] = []
            for q in queries {
                let r = rerankFor(q.k)
                heaps.append(try collection.codeSearch(q, pq: pq!, rerank: r, candidates: cands, txn, session: session))
                stats.append(.init(rowsScored: cands.count + min(r, cands.count), detail: r > 0 ? "re-ranked best \(r)" : "approximate distances"))
            }
            return (heaps, stats)
        case .filteredGraph, .postFilter:
            let (gr, src, context) = try graphState()
            var heaps: [TopK] = [], stats: [VectorCollection.QueryStats] = []
            let allowed: Bitmap? = group.filter == nil && group.cells == nil ? nil : cands
            var bits: DenseBitset? = nil
            if let allowed, group.plan.kind == .filteredGraph {
                bits = bitsets[g] ?? DenseBitset(allowed, bound: gr.nodeIDBound)
                bitsets[g] = bits
            }
            for q in queries {
                let before = context.distanceCount
                let beam = max(q.k, ef ?? 64)
                let (heap, detail) = group.plan.kind == .filteredGraph
                    ? try collection.graphSearch(q, ef: beam, allowed: allowed, bits: bits, exhaustiveBelow: graphExhaustiveBelow, txn,
                                                 graph: gr, source: src, context: context)
                    : try collection.postFilterSearch(q, ef: beam, allowed: allowed, matches: cands.count, live: live, txn,
                                                      graph: gr, source: src, context: context)
                heaps.append(heap)
                stats.append(.init(rowsScored: context.distanceCount - before, detail: detail))
            }
            return (heaps, stats)
        }
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

/// A vector as a dictionary key: equal when bit for bit equal, hashed by one multiply-xorshift
/// pass over its words (hashing 384 floats through `Hasher` one by one costs microseconds).
struct VectorBits: Hashable {
    let vector: [Float]
    let digest: UInt64

    init(_ vector: [Float]) {
        self.vector = vector
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(vector.count)
        vector.withUnsafeBytes { raw in
            var i = 0
            while i + 8 <= raw.count {
                h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
                h ^= h >> 29
                i += 8
            }
            if i < raw.count { h = (h ^ UInt64(raw.loadUnaligned(fromByteOffset: i, as: UInt32.self))) &* 0x94D0_49BB_1331_11EB }
        }
        digest = h
    }

    func hash(into hasher: inout Hasher) { hasher.combine(digest) }

    static func == (a: VectorBits, b: VectorBits) -> Bool {
        a.digest == b.digest && a.vector.count == b.vector.count
            && a.vector.withUnsafeBytes { x in b.vector.withUnsafeBytes { y in x.elementsEqual(y) } }
    }
}
