import Foundation
import SextantKernels
import SextantStorage

/// How a query is answered. The planner picks one per query (per group of queries with the same
/// predicate in a batch); ``SearchOptions/plan`` forces one.
public enum PlanKind: String, Sendable, CaseIterable, Hashable {
    /// Every matching row is scored with its full vector. Exact: the results every other plan is
    /// tested against. Its cost grows with the number of matches; in a batch, queries with the
    /// same predicate share one pass (tiled many-to-many kernel).
    case exact
    /// The codes (PQ, or SQ8) of every matching row are scored, the best re-scored with full vectors.
    case codes
    /// HNSW traversal that returns only matching rows (non-matching rows are traversed, so the
    /// graph stays connected; selective filters expand two hops through them).
    case filteredGraph = "filtered-graph"
    /// Unfiltered HNSW traversal with the beam widened by 1/selectivity; non-matching results
    /// are dropped, and the beam is widened again until `min(k, matches)` remain.
    case postFilter = "post-filter"
    /// In a batch: one pass over the vector blocks for the queries of several groups, whatever
    /// their predicates; each distinct query vector is scored once against the rows any of its
    /// queries matches in a block, and each query keeps its own matches. Exact, with the exact
    /// plan's arithmetic (identical results). Chosen when the shared work costs less than the
    /// groups' own plans; alone it is the exact plan.
    case partitionMajor = "partition-major"
}

/// The planner's decision for one query (or one group of queries sharing a predicate).
public struct QueryPlan: Sendable {
    /// The plan that answers.
    public var kind: PlanKind
    /// True when ``SearchOptions/plan`` (or `exact`) imposed it.
    public var forced: Bool
    /// Number of live rows matching the predicate: exact (from the attribute indexes), or
    /// estimated from a sample of rows when ``matchesEstimated``.
    public var matches: Int
    /// True when a broad predicate was not evaluated as a set: ``matches`` is estimated from a
    /// sample of rows and the post-filter search checks the predicate on its candidates.
    public var matchesEstimated = false
    /// Live rows in the collection.
    public var liveRows: Int
    /// Queries sharing this plan (the group size in a batch; 1 alone).
    public var queries: Int
    /// Estimated seconds of every plan the collection can run, for the whole group, cheapest
    /// first (the cost model's numbers; see ``CostModel``).
    public var estimates: [PlanEstimate]
    /// Rows the chosen plan expects to score per query.
    public var estimatedRows: Int

    /// The fraction of live rows matching the predicate.
    public var selectivity: Double { liveRows == 0 ? 0 : Double(matches) / Double(liveRows) }
}

/// A plan, the time the cost model predicts for it, and the recall the recall model expects.
public struct PlanEstimate: Sendable {
    /// The plan estimated.
    public var kind: PlanKind
    /// Estimated seconds for the query or group.
    public var seconds: Double
    /// Estimated rows (or codes) scored.
    public var rows: Int
    /// Expected recall@k (1 for the exact plan and for a graph plan that scores every match;
    /// nil when the collection has no recall model).
    public var recall: Double? = 1
    /// The plan's knob at this estimate: the beam width `ef` of the graph plans, the re-rank
    /// depth of the codes plan (nil for the exact plan).
    public var knob: Int? = nil
}

/// Queries per shared pass over a group's rows.
let sharedPassQueries = 64

/// Queries per shared pass over a group's codes: each pass gathers (and for 4-bit codes
/// re-packs) the codes once, and scoring a code is cheap next to reading it, so passes are larger.
let sharedCodePassQueries = 128

/// Fast scan's 16-bit sums hold at most 256 sub-quantizers; wider 4-bit codes are scanned with
/// float tables only.
let maxFastScanSubspaces = 256

/// With at most this many matches the filtered-graph plan scores them all (HNSW's guard).
let graphExhaustiveBelow = 1000

@inline(__always) func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

extension VectorCollection {
    /// The cost model of this collection, calibrating it first when there is none that fits
    /// the collection's current size and indexes.
    ///
    /// - Throws: `notFound` when the collection was dropped, `corrupted` for a stored model that
    ///   does not decode, storage errors (`mapFull`, `io`, `storage`, ...).
    public func costModel() throws -> CostModel {
        try store.env.read { txn in
            _ = try state(txn)
            return try costModel(txn)
        }
    }

    /// The cost model, looked up cheaply when the caller already knows the collection's state
    /// (live rows and which indexes exist); measured only when none fits.
    func costModel(_ txn: Transaction, liveRows: Int, hasGraph: Bool, hasCodes: Bool) throws -> CostModel {
        let key = CostModelCache.CalibrationKey(hasGraph: hasGraph, hasCodes: hasCodes, liveRows: liveRows)
        if let m = store.costModels.get(cid, key) { return m }
        return try costModel(txn)
    }

    func costModel(_ txn: Transaction) throws -> CostModel {
        let live = try IndexReader(txn: txn, db: db.postings, cid: cid).live()
        let g = try graph(txn)
        let pq = try quantizer(txn)
        let key = CostModelCache.CalibrationKey(hasGraph: g != nil, hasCodes: try hasCodes(txn), liveRows: live.count)
        if let m = store.costModels.get(cid, key) { return m }
        let m = try storedCostModel(txn, key) ?? calibrate(txn, live: live, graph: g, pq: pq)
        store.costModels.put(cid, key, m)
        return m
    }

    /// Measures the cost constants with real searches inside `txn` (a few tens of milliseconds).
    /// `recall`: a recall model that still holds (the same graph and codes under new slot
    /// numbers), kept instead of measured again.
    func calibrate(_ txn: Transaction, live: Bitmap, graph g: LMDBGraph?, pq: ProductQuantizer?,
                   queryVectors: [[Float]]? = nil, recall kept: RecallModel? = nil) throws -> CostModel {
        let started = monotonicSeconds()
        let n = live.count
        let defaultEF = 64
        var model = CostModel(exactPerRow: 4e-7, tiledPerRow: 2e-7, tiledPerPair: 1e-7, codePerRow: nil, codeBlockRepack: nil,
                              codeBlockScan: nil, codeSlotsPerBlock: nil, graphBySelectivity: nil,
                              graphBase: nil, graphPerEf: nil, defaultEF: defaultEF, liveRows: n, calibrationSeconds: 0)
        guard n > 0 else { return model }
        let sample = try costSample(txn, live: live)
        // Every plan is timed as a search runs it (PhysicalPlan.run).
        let probe = try PlanProbe(self, txn, live: n)
        try measureScanCosts(&model, sample, probe, txn)
        if try pq != nil || scalarQuantizer(txn) != nil { try measureCodeCosts(&model, pq: pq, sample, probe) }
        if g != nil, n >= 64 { try measureGraphCosts(&model, live: live, queries: Array(sample.queries.prefix(8)), probe) }
        model.recall = try kept ?? calibrateRecall(txn, live: live, graph: g, pq: pq, queryVectors: queryVectors)
        model.calibrationSeconds = monotonicSeconds() - started
        return model
    }

    /// Draws the rows the cost constants are measured on and the queries that measure them.
    private func costSample(_ txn: Transaction, live: Bitmap) throws -> CostSample {
        let n = live.count
        // A spread sample of live rows (at most 4,096) and 32 of them as queries.
        let sampleSize = min(n, 4096)
        let step = max(1, n / sampleSize)
        var sample: [UInt32] = []
        sample.reserveCapacity(sampleSize)
        var i = 0
        for s in live {
            if i % step == 0 && sample.count < sampleSize { sample.append(s) }
            i += 1
        }
        let sampleSet = Bitmap(sample)
        let reader = try vectorReader(txn)
        let queryCount = min(32, sample.count)
        var queries: [PreparedQuery] = []
        for j in 0..<queryCount {
            let (_, x) = try vectorEntry(reader, sample[(j * sample.count) / queryCount])
            var v = Array(UnsafeBufferPointer(start: x.assumingMemoryBound(to: Float.self), count: dimension))
            if metric == .cosine { v = VectorCollection.normalized(v) }
            queries.append(PreparedQuery(index: j, vectorID: j, vector: v, k: 10, predicate: nil, filter: nil))
        }
        var dense: [UInt32] = []
        dense.reserveCapacity(sampleSize)
        for s in live {
            guard dense.count < sampleSize else { break }
            dense.append(s)
        }
        return CostSample(slots: sampleSet, dense: Bitmap(dense), rows: Double(sample.count), queries: queries)
    }

    /// Measures the exact plan's cost per row and the shared pass's costs per row and per pair.
    private func measureScanCosts(_ model: inout CostModel, _ sample: CostSample, _ probe: PlanProbe, _ txn: Transaction) throws {
        let sampleSet = sample.slots, rows = sample.rows, queries = sample.queries
        func exact(_ qs: ArraySlice<PreparedQuery>) throws -> Double {
            try bestOfThree { _ = try probe.run(ExactPlan(), Array(qs), candidates: sampleSet, restricted: true) }
        }
        // Exact, one query.
        let single = try exact(queries[0..<1])
        model.exactPerRow = max(1e-9, single / rows)
        // Shared passes of 2 and 32 queries: cost per row read and per (query, row) pair. The
        // pair cost is a difference of two timings of a pass whose reads dominate; 2 against 8
        // queries left it within the noise (seen at a seventh of its true value, which sent a
        // whole batch into an exact pass).
        if queries.count >= 32 {
            let t2 = try exact(queries[0..<2])
            let t32 = try exact(queries[0..<32])
            let perPair = max(1e-10, (t32 - t2) / (30 * rows))
            model.tiledPerPair = perPair
            model.tiledPerRow = max(1e-10, t2 / rows - 2 * perPair)
        } else {
            model.tiledPerPair = model.exactPerRow
            model.tiledPerRow = 0
        }
        if let pass = try measurePassCosts(queries: queries, dense: sample.dense, sparse: sampleSet, txn) {
            model.passPerPair = pass.perPair
            model.passPerEntry = pass.perEntry
        }
    }

    /// Measures the codes plan's cost per code (PQ or SQ8) and, for PQ codes, the shared pass's
    /// costs per block.
    private func measureCodeCosts(_ model: inout CostModel, pq: ProductQuantizer?, _ sample: CostSample, _ probe: PlanProbe) throws {
        let sampleSet = sample.slots, rows = sample.rows, queries = sample.queries
        // Approximate distances only (re-rank 0): the re-rank is the exact plan's per-row cost.
        func codes(_ qs: ArraySlice<PreparedQuery>, shared: Bool) throws -> Double {
            // A shared pass is timed with its queries' tables built (an untimed run first): a
            // batch builds them once per vector, not once per pass.
            if shared {
                _ = try probe.run(CodesPlan(), Array(qs), candidates: sampleSet, restricted: true,
                                  PlanProbe.Settings(rerank: 0, sharedCodePass: true))
            }
            return try bestOfThree {
                _ = try probe.run(CodesPlan(), Array(qs), candidates: sampleSet, restricted: true,
                                  PlanProbe.Settings(rerank: 0, sharedCodePass: shared, keepSession: shared))
            }
        }
        model.codePerRow = max(1e-10, try codes(queries[0..<1], shared: false) / rows)
        if let pq, pq.bits == 8 || pq.subspaceCount <= maxFastScanSubspaces, queries.count >= 2 {
            // The shared pass as it runs: codes taken from the map at the sample's scattered
            // slots (and for 4-bit codes re-packed), scanned with one and with several queries'
            // tables; the difference splits the cost into the shared gathering and the
            // per-query scan. An 8-bit pass reads the codes once per 32 queries: both timings
            // read them once, and a group pays the read once per 32 of its queries.
            let g = min(pq.bits == 8 ? PQGroupTable.lanes : 8, queries.count)
            let one = try codes(queries[0..<1], shared: true)
            let many = try codes(queries[0..<g], shared: true)
            let scanPerCode = max(1e-10, (many - one) / (Double(g - 1) * rows))
            let repackPerCode = max(1e-10, one / rows - scanPerCode)
            let per = codeBlocks(pq).slotsPerBlock
            model.codeBlockRepack = repackPerCode * Double(per)
            model.codeBlockScan = scanPerCode * Double(per)
            model.codeSlotsPerBlock = per
            model.codePassLanes = pq.bits == 8 ? PQGroupTable.lanes : sharedCodePassQueries
        }
    }

    /// Measures the graph constants: the unfiltered search's base cost and cost per unit of
    /// beam width, and the time and distances at a few selectivities.
    private func measureGraphCosts(_ model: inout CostModel, live: Bitmap, queries: [PreparedQuery], _ probe: PlanProbe) throws {
        let n = live.count
        let defaultEF = model.defaultEF
        var setKey = 0
        func graphTime(ef: Int, allowed: Bitmap?) throws -> (Double, Double) {
            var distances = 0
            // Traversals only (no exhaustive fallback), so that the constants are the traversal's;
            // each query on its own, building its dense bitset of the rows as a lone query does.
            let settings = PlanProbe.Settings(ef: ef, exhaustiveBelow: 0)
            let t = try bestOfThree {
                distances = 0
                for q in queries {
                    setKey += 1
                    let (_, stats) = try probe.run(FilteredGraphPlan(), [q], candidates: allowed ?? live, restricted: allowed != nil,
                                                   setKey: setKey, settings)
                    distances += stats[0].rowsScored
                }
            }
            return (t / Double(queries.count), Double(distances) / Double(queries.count))
        }
        let (t1, d1) = try graphTime(ef: defaultEF, allowed: nil)
        let (t4, _) = try graphTime(ef: 4 * defaultEF, allowed: nil)
        let per = max(1e-10, (t4 - t1) / Double(3 * defaultEF))
        model.graphPerEf = per
        model.graphBase = max(0, t1 - per * Double(defaultEF))
        var points = [CostModel.GraphPoint(selectivity: 1, seconds: t1, distances: d1)]
        // Pseudo-random row sets (a hash of the slot): uncorrelated with the vectors.
        for s in [0.3, 0.1, 0.03, 0.01] where Double(n) * s >= 50 {
            let threshold = UInt32(s * Double(UInt32.max))
            var ids: [UInt32] = []
            for slot in live where (slot &* 2_654_435_761) ^ ((slot &* 2_654_435_761) >> 15) < threshold { ids.append(slot) }
            let allowed = Bitmap(ids)
            guard allowed.count > 10 else { continue }
            let (t, d) = try graphTime(ef: defaultEF, allowed: allowed)
            points.append(CostModel.GraphPoint(selectivity: Double(allowed.count) / Double(n), seconds: t, distances: d))
        }
        model.graphBySelectivity = points
    }

    /// Estimated seconds and expected recall of each plan available to this collection for
    /// `queries` queries with the same predicate (`matches` of `live` rows), cheapest first.
    ///
    /// An approximate plan's knob is `ef` / `rerank` when the caller set it; otherwise the
    /// smallest measured one whose expected recall meets `target` (the plan is left out when
    /// none does, unless it is `forced`, which then runs at the largest measured knob).
    /// Without a recall model the defaults stand (beam `max(64, k)`, the recipe's re-rank
    /// depth) and recall is unknown.
    func estimates(_ model: CostModel, matches m: Int, live n: Int, queries g: Int, k: Int, ef: Int?, rerank: Int?,
                   defaultRerank: Int, target: Double, forced: PlanKind? = nil,
                   hasGraph: Bool, hasCodes: Bool, corrected: Bool = true) -> [PlanEstimate] {
        let (costModels, cid) = (store.costModels, self.cid)
        let context = PlanContext(model: model, matches: m, live: n, queries: g, k: k, ef: ef, rerank: rerank,
                                  defaultRerank: defaultRerank, target: target, forced: forced, hasGraph: hasGraph, hasCodes: hasCodes,
                                  correction: { kind, s in corrected ? costModels.correction(cid, kind, selectivity: s) : 1 })
        return planEstimates(context)
    }
}

extension VectorCollection {
    /// Measures the collection's cost model now and stores it (unless the store is read-only),
    /// so that later processes plan without measuring. Index builds call it.
    ///
    /// - Throws: `notFound` when the collection was dropped, storage errors (`mapFull`, `io`,
    ///   `storage`, ...).
    ///
    /// `queries`: vectors of the workload to expect (up to 32 are used, spread over the list) for
    /// the recall model; without them it uses points between neighbouring stored rows. Pass
    /// them when real queries differ from the stored rows (another source, another time): the
    /// recall a plan reaches depends on where the queries lie.
    @discardableResult
    public func calibrate(queries: [[Float]]? = nil) throws -> CostModel {
        try calibrate(queries: queries, recall: nil)
    }

    /// ``calibrate(queries:)``, keeping `recall` (when given) instead of measuring it again.
    @discardableResult
    func calibrate(queries: [[Float]]?, recall: RecallModel?) throws -> CostModel {
        if let queries {
            for (i, q) in queries.enumerated() {
                do { try validate(vector: q, row: nil) } catch { throw error.adding(["query": String(i)]) }
            }
        }
        let (model, key) = try store.env.read { txn -> (CostModel, CostModelCache.CalibrationKey) in
            _ = try state(txn)
            let live = try IndexReader(txn: txn, db: db.postings, cid: cid).live()
            let g = try graph(txn), pq = try quantizer(txn)
            let key = CostModelCache.CalibrationKey(hasGraph: g != nil, hasCodes: try hasCodes(txn), liveRows: live.count)
            return (try calibrate(txn, live: live, graph: g, pq: pq, queryVectors: queries.flatMap { $0.isEmpty ? nil : $0 }, recall: recall), key)
        }
        store.costModels.put(cid, key, model)
        if !store.configuration.readOnly {
            try store.env.write { txn in
                _ = try state(txn)
                try txn.put(db.index, key: indexKey("cost"), value: model.serialized(key))
            }
        }
        return model
    }

    /// The stored cost model when it still describes the collection.
    func storedCostModel(_ txn: Transaction, _ key: CostModelCache.CalibrationKey) throws -> CostModel? {
        let found: (CostModel, CostModelCache.CalibrationKey)?? = try txn.withValue(db.index, key: indexKey("cost")) { CostModel.decode($0) }
        guard let stored = found ?? nil, stored.1.covers(key) else { return nil }
        return stored.0
    }
}

/// The rows the cost constants are measured on, their number, and the queries that measure them.
private struct CostSample {
    let slots: Bitmap
    /// The first live rows in slot order, as many as the sample (whole blocks).
    let dense: Bitmap
    let rows: Double
    let queries: [VectorCollection.PreparedQuery]
}

/// Runs `body` three times; the shortest run, in seconds.
func bestOfThree(_ body: () throws -> Void) rethrows -> Double {
    // Best of three: the machine is shared, the minimum is the cost.
    var best = Double.infinity
    for _ in 0..<3 {
        let t = monotonicSeconds()
        try body()
        best = min(best, monotonicSeconds() - t)
    }
    return best
}
