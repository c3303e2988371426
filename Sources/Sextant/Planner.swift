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
    /// The PQ codes of every matching row are scored, the best re-scored with full vectors.
    case codes
    /// HNSW traversal that returns only matching rows (non-matching rows are traversed, so the
    /// graph stays connected; selective filters expand two hops through them).
    case filteredGraph = "filtered-graph"
    /// Unfiltered HNSW traversal with the beam widened by 1/selectivity; non-matching results
    /// are dropped, and the beam is widened again until `min(k, matches)` remain.
    case postFilter = "post-filter"
}

/// The planner's decision for one query (or one group of queries sharing a predicate).
public struct QueryPlan: Sendable {
    /// The plan that answers.
    public var kind: PlanKind
    /// True when ``SearchOptions/plan`` (or `exact`) imposed it.
    public var forced: Bool
    /// Exact number of live rows matching the predicate (from the attribute indexes).
    public var matches: Int
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

/// Cost constants of one collection, measured on this machine against this store the first
/// time the planner needs them (and again when the collection has changed size or indexes).
///
/// Calibration runs real searches: sampled stored vectors as queries, against a spread sample of
/// live rows for the scans and against pseudo-random row sets of several selectivities for the
/// filtered graph. Nothing in it is a constant tuned to a dataset.
public struct CostModel: Sendable {
    /// Seconds to score one row exactly for one query (map reads included).
    public var exactPerRow: Double
    /// A shared pass (tiled kernel): seconds per row read, plus seconds per (query, row) pair.
    public var tiledPerRow: Double
    /// Seconds per query-row pair of a shared pass.
    public var tiledPerPair: Double
    /// Seconds per PQ code scored for one query (nil without trained codes).
    public var codePerRow: Double?
    /// 4-bit codes scanned by a group in one pass: seconds to re-pack one code block for fast
    /// scan, and to scan it with one query's table (nil without 4-bit codes).
    public var codeBlockRepack: Double?
    /// Seconds to scan one re-packed fast-scan block per query.
    public var codeBlockScan: Double?
    /// Slots per code block and code blocks in the collection, for the blocks a group touches.
    public var codeSlotsPerBlock: Int?
    /// Filtered traversal at the default beam width: seconds per query by selectivity, from
    /// 1 (no filter) down; interpolated log-log (nil without a graph).
    public var graphBySelectivity: [GraphPoint]?
    /// Unfiltered traversal: seconds ≈ `graphBase + graphPerEf · ef`.
    public var graphBase: Double?
    /// Seconds per unit of `ef` of an unfiltered traversal.
    public var graphPerEf: Double?
    /// The beam width the graph points were measured at.
    public var defaultEF: Int
    /// Live rows when measured.
    public var liveRows: Int
    /// How long calibration took.
    public var calibrationSeconds: Double
    /// The recall each approximate plan reaches by knob and selectivity (nil when the
    /// collection has neither graph nor codes, or too few rows to measure).
    public var recall: RecallModel? = nil

    /// One measured point of filtered graph traversal cost.
    public struct GraphPoint: Sendable {
        /// The fraction of rows matching the filter.
        public var selectivity: Double
        /// Seconds per query at that selectivity.
        public var seconds: Double
        /// Distance computations per query.
        public var distances: Double
    }

    /// Seconds and distance computations of one filtered traversal at selectivity `s` and
    /// beam width `ef`.
    func graphCost(selectivity s: Double, ef: Int) -> (seconds: Double, distances: Double)? {
        guard let points = graphBySelectivity, let first = points.first, let base = graphBase, let per = graphPerEf else { return nil }
        let scale = max(0.25, (base + per * Double(ef)) / max(1e-9, base + per * Double(defaultEF)))
        let s = max(s, 1e-6)
        if s >= first.selectivity || points.count == 1 { return (first.seconds * scale, first.distances * scale) }
        var (a, b) = (points[points.count - 2], points[points.count - 1])
        // Below the smallest measured selectivity the last segment's slope continues.
        for i in 1..<points.count where s >= points[i].selectivity {
            (a, b) = (points[i - 1], points[i])
            break
        }
        return (scale * Self.interpolate(s, a.selectivity, a.seconds, b.selectivity, b.seconds),
                scale * Self.interpolate(s, a.selectivity, a.distances, b.selectivity, b.distances))
    }

    /// Log-log interpolation through (sa, ya) and (sb, yb).
    private static func interpolate(_ s: Double, _ sa: Double, _ ya: Double, _ sb: Double, _ yb: Double) -> Double {
        let (la, lb) = (log(sa), log(sb))
        guard la != lb else { return yb }
        let t = (log(s) - la) / (lb - la)
        return exp(log(max(ya, 1e-12)) + t * (log(max(yb, 1e-12)) - log(max(ya, 1e-12))))
    }

    /// Seconds for `g` queries to scan the codes of `m` matches in shared passes (each pass
    /// gathers and re-packs the matches' codes once), without re-ranking; nil without 4-bit codes.
    /// Seconds for `g` queries to scan the codes of `m` of `n` live rows one query at a time
    /// (float lookup tables), without re-ranking. Where matches fill a quarter of the rows or
    /// more, the scan reads whole code blocks (every row of a block with a quarter or more
    /// candidates), so it costs about `n` rows' worth rather than `m`.
    func codeScanSeconds(matches m: Int, live n: Int, queries g: Int) -> Double? {
        guard let perCode = codePerRow else { return nil }
        let density = Double(m) / Double(max(n, 1))
        let rows = density >= 0.25 ? Double(max(n, m)) : Double(m)
        return Double(g) * rows * perCode
    }

    func sharedCodePass(matches m: Int, queries g: Int) -> Double? {
        guard let repack = codeBlockRepack, let scan = codeBlockScan, let per = codeSlotsPerBlock, per > 0 else { return nil }
        let passes = Double((g + sharedPassQueries - 1) / sharedPassQueries)
        return Double(m) / Double(per) * (passes * repack + Double(g) * scan)
    }

    /// Seconds of an unfiltered traversal with beam width `ef`.
    func unfilteredSeconds(ef: Int) -> Double? {
        guard let base = graphBase, let per = graphPerEf else { return nil }
        return max(1e-7, base + per * Double(ef))
    }
}

/// Cost models per collection, with the collection state they were measured on.
final class CostModelCache: @unchecked Sendable {
    private var models: [UInt32: (model: CostModel, key: CalibrationKey)] = [:]
    private let lock = NSLock()

    struct CalibrationKey: Equatable {
        var hasGraph: Bool
        var hasCodes: Bool
        var liveRows: Int

        /// Still representative: same indexes, and the size within a factor of two.
        func covers(_ other: CalibrationKey) -> Bool {
            hasGraph == other.hasGraph && hasCodes == other.hasCodes
                && other.liveRows <= 2 * max(liveRows, 64) && liveRows <= 2 * max(other.liveRows, 64)
        }
    }

    func get(_ cid: UInt32, _ key: CalibrationKey) -> CostModel? {
        lock.lock(); defer { lock.unlock() }
        guard let e = models[cid], e.key.covers(key) else { return nil }
        return e.model
    }

    func put(_ cid: UInt32, _ key: CalibrationKey, _ model: CostModel) {
        lock.lock(); models[cid] = (model, key); lock.unlock()
    }

    func drop(_ cid: UInt32) {
        lock.lock(); models[cid] = nil; corrections[cid] = nil; lock.unlock()
    }

    // MARK: Feedback

    /// Observed/estimated time of graph plans, per collection, plan and selectivity band
    /// (log2 of the selectivity), as an exponential moving average of the log ratio.
    /// Calibration measures traversals against random row sets; real predicates correlate with
    /// the vectors and can make traversals much longer, which only executions reveal.
    private var corrections: [UInt32: [CorrectionKey: Double]] = [:]

    struct CorrectionKey: Hashable {
        var kind: PlanKind
        var band: Int
    }

    static func band(_ selectivity: Double) -> Int { max(-30, min(0, Int(log2(max(selectivity, 1e-9)).rounded()))) }

    /// The factor to multiply an estimate of `kind` at `selectivity` by (1 without observations).
    func correction(_ cid: UInt32, _ kind: PlanKind, selectivity: Double) -> Double {
        guard kind == .filteredGraph || kind == .postFilter else { return 1 }
        lock.lock(); defer { lock.unlock() }
        guard let l = corrections[cid]?[CorrectionKey(kind: kind, band: Self.band(selectivity))] else { return 1 }
        return exp(l)
    }

    /// Records one single-query execution: `seconds` observed where `estimate` was predicted
    /// (before correction).
    func observe(_ cid: UInt32, _ kind: PlanKind, selectivity: Double, seconds: Double, estimate: Double) {
        guard kind == .filteredGraph || kind == .postFilter, seconds > 0, estimate > 0 else { return }
        // One run moves the correction by at most 4^0.2 ≈ 1.3x: a cold first search (pages not
        // yet in memory) must not price the graph out for good — once it is not chosen, it is
        // never observed again to correct the estimate back.
        let r = max(-log(4.0), min(log(4.0), log(seconds / estimate)))
        lock.lock(); defer { lock.unlock() }
        let key = CorrectionKey(kind: kind, band: Self.band(selectivity))
        let old = corrections[cid]?[key] ?? 0
        corrections[cid, default: [:]][key] = 0.8 * old + 0.2 * r
    }
}

/// Queries per shared pass over a group's rows or codes.
let sharedPassQueries = 64

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
        let key = CostModelCache.CalibrationKey(hasGraph: g != nil, hasCodes: pq != nil, liveRows: live.count)
        if let m = store.costModels.get(cid, key) { return m }
        let m = try storedCostModel(txn, key) ?? calibrate(txn, live: live, graph: g, pq: pq)
        store.costModels.put(cid, key, m)
        return m
    }

    /// Measures the cost constants with real searches inside `txn` (a few tens of milliseconds).
    func calibrate(_ txn: Transaction, live: Bitmap, graph g: LMDBGraph?, pq: ProductQuantizer?,
                   queryVectors: [[Float]]? = nil) throws -> CostModel {
        let started = monotonicSeconds()
        let n = live.count
        let defaultEF = 64
        var model = CostModel(exactPerRow: 4e-7, tiledPerRow: 2e-7, tiledPerPair: 1e-7, codePerRow: nil, codeBlockRepack: nil,
                              codeBlockScan: nil, codeSlotsPerBlock: nil, graphBySelectivity: nil,
                              graphBase: nil, graphPerEf: nil, defaultEF: defaultEF, liveRows: n, calibrationSeconds: 0)
        guard n > 0 else { return model }
        // A spread sample of live rows (at most 4,096) and 8 of them as queries.
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
        let queryCount = min(8, sample.count)
        var queries: [PreparedQuery] = []
        for j in 0..<queryCount {
            let (_, x) = try vectorEntry(reader, sample[(j * sample.count) / queryCount])
            var v = Array(UnsafeBufferPointer(start: x.assumingMemoryBound(to: Float.self), count: dimension))
            if metric == .cosine { v = VectorCollection.normalized(v) }
            queries.append(PreparedQuery(index: j, vectorID: j, vector: v, k: 10, predicate: nil, filter: nil))
        }
        func timed(_ body: () throws -> Void) rethrows -> Double {
            // Best of three: the machine is shared, the minimum is the cost.
            var best = Double.infinity
            for _ in 0..<3 {
                let t = monotonicSeconds()
                try body()
                best = min(best, monotonicSeconds() - t)
            }
            return best
        }
        let rows = Double(sample.count)
        // Exact, one query.
        let single = try timed { _ = try scan([queries[0]], candidates: sampleSet, txn) }
        model.exactPerRow = max(1e-9, single / rows)
        // Shared passes of 2 and 8 queries: cost per row read and per (query, row) pair.
        if queries.count >= 8 {
            let t2 = try timed { _ = try scan(Array(queries[0..<2]), candidates: sampleSet, txn) }
            let t8 = try timed { _ = try scan(Array(queries[0..<8]), candidates: sampleSet, txn) }
            let perPair = max(1e-10, (t8 - t2) / (6 * rows))
            model.tiledPerPair = perPair
            model.tiledPerRow = max(1e-10, t2 / rows - 2 * perPair)
        } else {
            model.tiledPerPair = model.exactPerRow
            model.tiledPerRow = 0
        }
        if let pq {
            let t = try timed { _ = try codeSearch(queries[0], pq: pq, rerank: 0, candidates: sampleSet, txn) }
            model.codePerRow = max(1e-10, t / rows)
            if pq.bits == 4 && pq.subspaceCount <= maxFastScanSubspaces && queries.count >= 2 {
                // The shared fast-scan pass as it runs: codes taken from the map at the
                // sample's scattered slots, re-packed, scanned with one and with several
                // queries' tables; the difference splits the cost into the shared re-pack and the
                // per-query scan.
                let g = min(8, queries.count)
                let one = try timed { _ = try codeGroupSearch([queries[0]], pq: pq, rerank: { _ in 0 }, candidates: sampleSet, txn) }
                let many = try timed { _ = try codeGroupSearch(Array(queries.prefix(g)), pq: pq, rerank: { _ in 0 }, candidates: sampleSet, txn) }
                let scanPerCode = max(1e-10, (many - one) / (Double(g - 1) * rows))
                let repackPerCode = max(1e-10, one / rows - scanPerCode)
                let per = codeBlocks(pq).slotsPerBlock
                model.codeBlockRepack = repackPerCode * Double(per)
                model.codeBlockScan = scanPerCode * Double(per)
                model.codeSlotsPerBlock = per
            }
        }
        if let g, n >= 64 {
            let src = try graphSource(txn)
            let context = store.searchContexts.take()
            defer { store.searchContexts.give(context) }
            func graphTime(ef: Int, allowed: Bitmap?) throws -> (Double, Double) {
                var distances = 0
                let t = try timed {
                    let before = context.distanceCount
                    for q in queries { _ = try graphSearch(q, ef: ef, allowed: allowed, exhaustiveBelow: 0, txn, graph: g, source: src, context: context) }
                    distances = context.distanceCount - before
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
        model.recall = try calibrateRecall(txn, live: live, graph: g, pq: pq, queryVectors: queryVectors)
        model.calibrationSeconds = monotonicSeconds() - started
        return model
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
        let gq = Double(g), md = Double(m)
        var out: [PlanEstimate] = []
        let exact = g == 1 ? md * model.exactPerRow : min(gq * md * model.exactPerRow, md * (model.tiledPerRow + gq * model.tiledPerPair))
        out.append(PlanEstimate(kind: .exact, seconds: exact, rows: m, recall: 1))
        let s = n > 0 ? Double(max(m, 1)) / Double(n) : 1
        /// The knob and expected recall of an approximate plan; nil leaves the plan out.
        func knob(_ kind: PlanKind, given: Int?, fallback: Int) -> (Int, Double?)? {
            guard target > 0, let rm = model.recall, rm.curves[kind] != nil else { return (given ?? fallback, nil) }
            if let given { return (given, rm.expectedRecall(kind, selectivity: s, k: k, knob: given)) }
            // The calibration queries are stored rows moved a little; real queries sit farther
            // from the rows and need wider beams. Aim at half the misses the target allows.
            let aim = 1 - (1 - target) / 2
            if let best = rm.setting(kind, selectivity: s, k: k, target: aim) { return (best.knob, best.recall) }
            guard forced == kind else { return nil }
            let largest = rm.curves[kind]!.flatMap(\.points).map(\.knob).max() ?? fallback
            let scaled = max(k, largest * max(k, RecallModel.measuredK) / RecallModel.measuredK)
            return (scaled, rm.expectedRecall(kind, selectivity: s, k: k, knob: scaled))
        }
        if hasCodes, let scan = model.codeScanSeconds(matches: m, live: n, queries: g),
           let (depth, recall) = knob(.codes, given: rerank, fallback: defaultRerank) {
            let r = min(m, depth)
            let rerankCost = gq * Double(r) * model.exactPerRow
            var seconds = scan + rerankCost
            if let shared = model.sharedCodePass(matches: m, queries: g) { seconds = min(seconds, shared + rerankCost) }
            // Re-ranking every match is exact.
            out.append(PlanEstimate(kind: .codes, seconds: seconds, rows: m + r, recall: depth >= m ? 1 : recall, knob: depth))
        }
        if hasGraph, n > 0 {
            if m <= graphExhaustiveBelow {
                // The graph plan scores this few matches exhaustively: an exact scan by another path.
                out.append(PlanEstimate(kind: .filteredGraph, seconds: gq * md * model.exactPerRow * 1.05, rows: m, recall: 1,
                                        knob: max(ef ?? model.defaultEF, k)))
            } else if let (chosen, recall) = knob(.filteredGraph, given: ef, fallback: model.defaultEF),
                      let one = model.graphCost(selectivity: s, ef: max(chosen, k)) {
                let c = corrected ? store.costModels.correction(cid, .filteredGraph, selectivity: s) : 1
                out.append(PlanEstimate(kind: .filteredGraph, seconds: gq * one.seconds * c, rows: Int(one.distances), recall: recall,
                                        knob: max(chosen, k)))
            }
            if let (chosen, recall) = knob(.postFilter, given: ef, fallback: model.defaultEF) {
                let beam = max(chosen, k)
                let width = min(n, Int((Double(beam) / s).rounded(.up)))
                if let one = model.unfilteredSeconds(ef: width), let full = model.graphBySelectivity?.first {
                    let distances = full.distances * Double(width) / Double(model.defaultEF)
                    let c = corrected ? store.costModels.correction(cid, .postFilter, selectivity: s) : 1
                    out.append(PlanEstimate(kind: .postFilter, seconds: gq * one * c, rows: Int(min(distances, Double(n))),
                                            recall: width >= n ? 1 : recall, knob: beam))
                }
            }
        }
        return out.sorted { $0.seconds < $1.seconds }
    }
}

// MARK: Persistence

extension CostModel {
    /// JSON record stored under the collection's `cost` key of `sextant.index`, with the
    /// collection state it was measured on.
    func serialized(_ key: CostModelCache.CalibrationKey) -> [UInt8] {
        func num(_ x: Double?) -> JSONValue { x.map { .double($0) } ?? .null }
        let points: JSONValue = graphBySelectivity.map { ps in
            .array(ps.map { .array([.double($0.selectivity), .double($0.seconds), .double($0.distances)]) })
        } ?? .null
        return Array(JSONValue.object(JSONObject([
            ("version", .int(4)), ("hasGraph", .bool(key.hasGraph)), ("hasCodes", .bool(key.hasCodes)),
            ("liveRows", .int(Int64(key.liveRows))), ("exactPerRow", .double(exactPerRow)), ("tiledPerRow", .double(tiledPerRow)),
            ("tiledPerPair", .double(tiledPerPair)), ("codePerRow", num(codePerRow)), ("graph", points),
            ("graphBase", num(graphBase)), ("graphPerEf", num(graphPerEf)), ("defaultEF", .int(Int64(defaultEF))),
            ("calibrationSeconds", .double(calibrationSeconds)), ("codeBlockRepack", num(codeBlockRepack)),
            ("codeBlockScan", num(codeBlockScan)), ("codeSlotsPerBlock", codeSlotsPerBlock.map { .int(Int64($0)) } ?? .null),
            ("recall", recall?.json ?? .null),
        ])).jsonText.utf8)
    }

    /// Decodes a stored record; nil when it is not one this version understands (it is then
    /// measured again, never trusted half-way).
    static func decode(_ bytes: UnsafeRawBufferPointer) -> (CostModel, CostModelCache.CalibrationKey)? {
        guard let json = try? JSONValue(parsing: bytes), case .int(4)? = json["version"] else { return nil }
        func d(_ k: String) -> Double? {
            switch json[k] {
            case .double(let x)?: return x.isFinite && x >= 0 ? x : nil
            case .int(let i)?: return i >= 0 ? Double(i) : nil
            default: return nil
            }
        }
        guard case .bool(let g)? = json["hasGraph"], case .bool(let c)? = json["hasCodes"], case .int(let live)? = json["liveRows"],
              let exact = d("exactPerRow"), let tRow = d("tiledPerRow"), let tPair = d("tiledPerPair"),
              case .int(let ef)? = json["defaultEF"], ef >= 1, ef <= 1 << 20 else { return nil }
        var points: [GraphPoint]? = nil
        if case .array(let ps)? = json["graph"] {
            var out: [GraphPoint] = []
            for p in ps {
                guard case .array(let xs) = p, xs.count == 3 else { return nil }
                let v = xs.compactMap { x -> Double? in if case .double(let y) = x { return y.isFinite && y > 0 ? y : nil }; return nil }
                guard v.count == 3 else { return nil }
                out.append(GraphPoint(selectivity: v[0], seconds: v[1], distances: v[2]))
            }
            guard !out.isEmpty else { return nil }
            points = out
        }
        var perBlock: Int? = nil
        if case .int(let p)? = json["codeSlotsPerBlock"], p >= 1, p <= 1 << 20 { perBlock = Int(p) }
        let model = CostModel(exactPerRow: exact, tiledPerRow: tRow, tiledPerPair: tPair, codePerRow: d("codePerRow"),
                              codeBlockRepack: d("codeBlockRepack"), codeBlockScan: d("codeBlockScan"), codeSlotsPerBlock: perBlock,
                              graphBySelectivity: points, graphBase: d("graphBase"), graphPerEf: d("graphPerEf"), defaultEF: Int(ef),
                              liveRows: Int(live), calibrationSeconds: d("calibrationSeconds") ?? 0)
        var withRecall = model
        switch json["recall"] {
        case .null?, nil: break
        case let r?:
            guard let decoded = RecallModel(json: r) else { return nil }
            withRecall.recall = decoded
        }
        guard (points != nil) == g, (model.codePerRow != nil) == c, !g || (model.graphBase != nil && model.graphPerEf != nil) else { return nil }
        return (withRecall, CostModelCache.CalibrationKey(hasGraph: g, hasCodes: c, liveRows: Int(live)))
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
        if let queries {
            for (i, q) in queries.enumerated() {
                do { try validate(vector: q, row: nil) } catch { throw error.adding(["query": String(i)]) }
            }
        }
        let (model, key) = try store.env.read { txn -> (CostModel, CostModelCache.CalibrationKey) in
            _ = try state(txn)
            let live = try IndexReader(txn: txn, db: db.postings, cid: cid).live()
            let g = try graph(txn), pq = try quantizer(txn)
            let key = CostModelCache.CalibrationKey(hasGraph: g != nil, hasCodes: pq != nil, liveRows: live.count)
            return (try calibrate(txn, live: live, graph: g, pq: pq, queryVectors: queries.flatMap { $0.isEmpty ? nil : $0 }), key)
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
