import Foundation
import SextantKernels
import SextantStorage

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
    /// Seconds per (vector, row) pair of a partition-major pass as it runs (block masks, rows
    /// gathered per vector, tiles per block), reads included; nil in records measured before
    /// it was (the pass is then weighed with the shared pass's constants).
    public var passPerPair: Double? = nil
    /// Seconds per (block, group) entry of a partition-major pass (masks, needs, deliveries);
    /// nil where ``passPerPair`` is.
    public var passPerEntry: Double? = nil
    /// Seconds per PQ code scored for one query (nil without trained codes).
    public var codePerRow: Double?
    /// PQ codes scanned by a group in one pass: seconds to gather one code block's codes (and
    /// for 4-bit codes re-pack them for fast scan) once for the group (nil without PQ codes, or
    /// in records measured before 8-bit passes existed, for 8-bit codes).
    public var codeBlockRepack: Double?
    /// Seconds to scan one gathered code block per query.
    public var codeBlockScan: Double?
    /// Slots per code block and code blocks in the collection, for the blocks a group touches.
    public var codeSlotsPerBlock: Int?
    /// Queries served by one ``codeBlockRepack``: a fast-scan pass re-packs once for its 128
    /// queries, an 8-bit pass reads the codes once per 32 queries (one interleaved table);
    /// nil in records that predate it (128).
    public var codePassLanes: Int? = nil
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

    /// Seconds for `g` queries to scan the codes of `m` matches in shared passes (each pass
    /// gathers the matches' codes once), without re-ranking; nil without a measured pass.
    func sharedCodePass(matches m: Int, queries g: Int) -> Double? {
        guard let repack = codeBlockRepack, let scan = codeBlockScan, let per = codeSlotsPerBlock, per > 0 else { return nil }
        let lanes = max(1, codePassLanes ?? sharedCodePassQueries)
        let passes = Double((g + lanes - 1) / lanes)
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
            ("version", .int(5)), ("hasGraph", .bool(key.hasGraph)), ("hasCodes", .bool(key.hasCodes)),
            ("liveRows", .int(Int64(key.liveRows))), ("exactPerRow", .double(exactPerRow)), ("tiledPerRow", .double(tiledPerRow)),
            ("tiledPerPair", .double(tiledPerPair)), ("passPerPair", num(passPerPair)), ("passPerEntry", num(passPerEntry)), ("codePerRow", num(codePerRow)), ("graph", points),
            ("graphBase", num(graphBase)), ("graphPerEf", num(graphPerEf)), ("defaultEF", .int(Int64(defaultEF))),
            ("calibrationSeconds", .double(calibrationSeconds)), ("codeBlockRepack", num(codeBlockRepack)),
            ("codeBlockScan", num(codeBlockScan)), ("codeSlotsPerBlock", codeSlotsPerBlock.map { .int(Int64($0)) } ?? .null),
            ("codePassLanes", codePassLanes.map { .int(Int64($0)) } ?? .null),
            ("recall", recall?.json ?? .null),
        ])).jsonText.utf8)
    }

    /// Decodes a stored record; nil when it is not one this version understands (it is then
    /// measured again, never trusted half-way).
    static func decode(_ bytes: UnsafeRawBufferPointer) -> (CostModel, CostModelCache.CalibrationKey)? {
        guard let json = try? JSONValue(parsing: bytes), case .int(5)? = json["version"] else { return nil }
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
        if case .int(let l)? = json["codePassLanes"], l >= 1, l <= 1 << 20 { withRecall.codePassLanes = Int(l) }
        withRecall.passPerPair = d("passPerPair")
        withRecall.passPerEntry = withRecall.passPerPair == nil ? nil : d("passPerEntry")
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
