import Foundation
import SextantKernels
import SextantStorage

extension VectorCollection {
    /// Knobs measured for the graph plans (beam width at k = 10) and the codes plan (re-rank depth).
    // Up to 2,048: at 10M rows an HNSW16 graph needs beams past 512 for recall 0.95, and the
    // widest still costs a hundredth of an exact scan there.
    static let recallGraphKnobs = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048]
    static let recallCodeKnobs = [10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960, 1280]
    /// Selectivity bands measured (those with enough matches for the plan to be approximate).
    static let recallBands = [1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001]

    /// Measures the ``RecallModel`` inside `txn`: sampled stored vectors as queries (their own
    /// rows excluded from every predicate), predicates of each band in three families —
    /// independent of the vectors (a hash of the slot), the rows nearest the query
    /// (correlated), the rows nearest a far point (anti-correlated) — each approximate plan at
    /// every knob, scored against the exact plan. Nil without a graph or codes.
    func calibrateRecall(_ txn: Transaction, live: Bitmap, graph g: LMDBGraph?, pq: ProductQuantizer?,
                         queryVectors: [[Float]]? = nil) throws -> RecallModel? {
        let sq = pq == nil ? try scalarQuantizer(txn) : nil
        guard g != nil || pq != nil || sq != nil else { return nil }
        let n = live.count
        guard n >= 2 * RecallModel.measuredK else { return nil }
        let k = RecallModel.measuredK
        let reader = try vectorReader(txn)
        let (given, count, querySlots) = Self.calibrationQuerySources(live: live, queryVectors: queryVectors)
        var rows = live
        rows.subtract(Bitmap(querySlots))
        let others = Array(rows)
        let (queries, near, far) = try calibrationQueries(given: given, count: count, querySlots: querySlots, others: others, reader)
        // Every plan runs as a search runs it (PhysicalPlan.run), the exact answers included.
        let probe = try PlanProbe(self, txn, live: n)
        let unfiltered = try unfilteredCalibrationQueries(queryVectors, filtered: queries, rows: rows, probe)
        let run = RecallCalibrationRun(txn: txn, n: n, queries: queries, unfiltered: unfiltered, fromWorkload: given != nil, rows: rows,
                                       others: others, near: near, far: far, hasGraph: g != nil, pq: pq, sq: sq, probe: probe)
        var curves: [PlanKind: [RecallModel.Curve]] = [:]
        for s in Self.recallBands {
            let m = Int((s * Double(others.count)).rounded())
            guard m >= 2 * k else { continue }
            var graphRecall: [[Double]] = [], postRecall: [[Double]] = [], codeRecall: [[Double]] = []
            for family in run.allowedSets(selectivity: s, matches: m) {
                let measured = try familyRecall(family, selectivity: s, matches: m, run, queries: s == 1 ? run.unfiltered : nil)
                graphRecall += measured.graph
                postRecall += measured.post
                codeRecall += measured.codes
            }
            Self.addCurves(&curves, selectivity: s, matches: m, graph: graphRecall, post: postRecall, codes: codeRecall,
                           hasGraph: g != nil, hasCodes: pq != nil || sq != nil)
        }
        return RecallModel(curves: curves, fromWorkload: given != nil)
    }

    /// Chooses what the queries are made from: up to 32 of the caller's vectors spread over the
    /// list, else the slots of stored rows spread over the live rows (one per 64, at least one).
    private static func calibrationQuerySources(live: Bitmap, queryVectors: [[Float]]?) -> (given: [[Float]]?, count: Int, slots: [UInt32]) {
        let n = live.count
        // 32 queries: fewer leave the recall bound too loose to plan on; more make calibration a
        // large part of a build at a million rows.
        let queryCount = 32
        // Queries: the caller's (a workload's vectors), else stored rows spread over the slots.
        let liveSlots = Array(live)
        let given = queryVectors.map { vs in (0..<min(queryCount, vs.count)).map { vs[$0 * vs.count / min(queryCount, vs.count)] } }
        let count = given?.count ?? min(queryCount, max(1, n / 64))
        let querySlots = given != nil ? [] : (0..<count).map { liveSlots[(2 * $0 + 1) * liveSlots.count / (2 * count)] }
        return (given, count, querySlots)
    }

    /// The unfiltered band's queries with their exact answers. With the caller's vectors, up to
    /// 128 of them spread over the list: every query's truth comes from shared passes over the
    /// rows (64 queries per pass), so this band affords four times the queries of the filtered
    /// ones, whose truths are one scan per query and set. Unfiltered recall is often all or
    /// nothing per query (a beam that never reaches the query's region finds none of its
    /// neighbours), and a lower bound over 32 such queries stays far below the mean. Without
    /// the caller's vectors, the filtered bands' queries.
    private func unfilteredCalibrationQueries(_ queryVectors: [[Float]]?, filtered: [PreparedQuery], rows: Bitmap,
                                              _ probe: PlanProbe) throws -> [(PreparedQuery, Set<UInt64>)] {
        var queries = filtered
        if let vs = queryVectors, vs.count > filtered.count {
            // Up to 512: the bound's margin shrinks as 1/√queries, and a few queries whose beam
            // never reaches their cluster make per-query recall spread widely; their exact
            // answers come from shared passes, so more queries cost little.
            let count = min(512, vs.count)
            queries = (0..<count).map { j in
                let raw = vs[j * vs.count / count]
                let v = metric == .cosine ? VectorCollection.normalized(raw) : raw
                return PreparedQuery(index: j, vectorID: j, vector: v, k: RecallModel.measuredK, predicate: nil, filter: nil)
            }
        }
        var out: [(PreparedQuery, Set<UInt64>)] = []
        for start in stride(from: 0, to: queries.count, by: sharedPassQueries) {
            let group = Array(queries[start..<min(queries.count, start + sharedPassQueries)])
            for (q, heap) in zip(group, try probe.run(ExactPlan(), group, candidates: rows, restricted: true).heaps) {
                out.append((q, Set(heap.sortedResults().map(\.id))))
            }
        }
        return out
    }

    /// The stored vector of `slot`, copied.
    private func calibrationVector(_ slot: UInt32, _ reader: SlotBlocks.Reader) throws -> [Float] {
        let d = dimension
        let (_, x) = try vectorEntry(reader, slot)
        return Array(UnsafeBufferPointer(start: x.assumingMemoryBound(to: Float.self), count: d))
    }

    /// The `count` rows of `others` nearest `center` by squared L2 distance, nearest first (the
    /// order a ball grows in; ties by slot). Squared distances are never negative, so their
    /// bit patterns order as they do: integer keys, a selection, then a sort of the prefix.
    private func nearest(_ count: Int, to center: [Float], among others: [UInt32], _ reader: SlotBlocks.Reader) throws -> [UInt32] {
        let d = dimension
        var keys: [UInt64] = []
        keys.reserveCapacity(others.count)
        try center.withUnsafeBytes { c in
            for s in others {
                let (_, x) = try vectorEntry(reader, s)
                keys.append(UInt64(Distance.squaredL2(c.baseAddress!, x, dimension: d).bitPattern) << 32 | UInt64(s))
            }
        }
        let kept = min(count, keys.count)
        selectSmallest(&keys, kept)
        return keys[0..<kept].sorted().map { UInt32(truncatingIfNeeded: $0) }
    }

    /// The queries (the caller's vectors, else points made near the stored rows `querySlots`)
    /// and, per query, the `others` nearest it and nearest its far point, nearest first.
    private func calibrationQueries(given: [[Float]]?, count: Int, querySlots: [UInt32], others: [UInt32],
                                    _ reader: SlotBlocks.Reader) throws -> (queries: [PreparedQuery], near: [[UInt32]], far: [[UInt32]]) {
        let k = RecallModel.measuredK
        // The largest row set a band below 1 needs from the nearest-first orders.
        let deepest = Self.recallBands.filter { $0 < 1 }.map { Int(($0 * Double(others.count)).rounded()) }.max() ?? 0
        var queries: [PreparedQuery] = []
        var near: [[UInt32]] = [], far: [[UInt32]] = []
        var noise = Xorshift(seed: 0x5EC7_A9F1)
        for j in 0..<count {
            let raw: [Float]
            if let given {
                raw = given[j]
            } else {
                raw = try queryNear(querySlots[j], j, among: others, noise: &noise, reader)
            }
            let v = metric == .cosine ? VectorCollection.normalized(raw) : raw
            queries.append(PreparedQuery(index: j, vectorID: j, vector: v, k: k, predicate: nil, filter: nil))
            near.append(try nearest(deepest, to: raw, among: others, reader))
            // The far point: the farthest of a few spread rows, so its ball lies away from the query.
            let farthest = try farRow(j, from: raw, among: others, reader)
            far.append(try nearest(deepest, to: try calibrationVector(farthest, reader), among: others, reader))
        }
        return (queries, near, far)
    }

    /// Query `j` made near the stored row `slot`: for even `j` the midpoint of the row and one
    /// of its five nearest rows, for odd `j` the row moved off the manifold.
    private func queryNear(_ slot: UInt32, _ j: Int, among others: [UInt32], noise: inout Xorshift, _ reader: SlotBlocks.Reader) throws -> [Float] {
        let k = RecallModel.measuredK
        let d = dimension
        // A stored row is a graph node whose edges lead to its own neighbours: searching
        // for it is easier than for a vector the store does not hold, so the queries are
        // new points near stored rows (each row excluded from every set), of two kinds
        // whose recall is taken separately, the worse counting: half are the midpoint of
        // the row and one of its five nearest rows (among the rows, on their manifold),
        // half the row moved in a random direction by its distance to its 10th nearest
        // row (off the manifold). Real queries have been seen to be easier than the one
        // and harder than the other, depending on the data.
        let stored = try calibrationVector(slot, reader)
        let around = try nearest(k, to: stored, among: others, reader)
        if j % 2 == 0 {
            let partner = try calibrationVector(around[Int(noise.next() % UInt64(min(5, around.count)))], reader)
            return (0..<d).map { (stored[$0] + partner[$0]) / 2 }
        }
        let tenth = try calibrationVector(around[min(k, around.count) - 1], reader)
        var radius: Float = 0
        for i in 0..<d { radius += (stored[i] - tenth[i]) * (stored[i] - tenth[i]) }
        let direction = (0..<d).map { _ in Float(noise.gaussian()) }
        let length = max(1e-12, direction.reduce(0) { $0 + $1 * $1 }.squareRoot())
        return (0..<d).map { stored[$0] + radius.squareRoot() * direction[$0] / length }
    }

    /// The far point of query `j` (at `raw`): of eight rows spread over `others`, the farthest.
    private func farRow(_ j: Int, from raw: [Float], among others: [UInt32], _ reader: SlotBlocks.Reader) throws -> UInt32 {
        let d = dimension
        let probes = (0..<8).map { others[($0 * 7919 + j * 104_729) % others.count] }
        return try raw.withUnsafeBytes { q in
            try probes.max { a, b in
                try Distance.squaredL2(q.baseAddress!, vectorEntry(reader, a).vector, dimension: d)
                    < Distance.squaredL2(q.baseAddress!, vectorEntry(reader, b).vector, dimension: d)
            }!
        }
    }

    /// Measures one family of allowed sets (one per query): the lower recall bounds of each
    /// kind of query, for the graph, post-filter (−1 at a knob not measured) and codes plans.
    /// `given`: queries with their truths already known (the unfiltered band's), in place of
    /// `run.queries` (whose truths are scanned here).
    private func familyRecall(_ family: [Bitmap?], selectivity s: Double, matches m: Int, _ run: RecallCalibrationRun,
                              queries given: [(PreparedQuery, Set<UInt64>)]?) throws -> (graph: [[Double]], post: [[Double]], codes: [[Double]]) {
        let queries = given?.map(\.0) ?? run.queries
        // Sums per kind of query (one kind with the caller's vectors).
        let kinds = !run.fromWorkload && queries.count >= 2 ? 2 : 1
        var gSums = [RecallTally](repeating: RecallTally(knobs: Self.recallGraphKnobs.count), count: kinds)
        var pSums = gSums
        var cSums = [RecallTally](repeating: RecallTally(knobs: Self.recallCodeKnobs.count), count: kinds)
        var counted = [Int](repeating: 0, count: kinds)
        var pMeasured = [Bool](repeating: true, count: Self.recallGraphKnobs.count)
        for (j, q) in queries.enumerated() {
            let kind = j % kinds
            counted[kind] += 1
            var gSum = gSums[kind], pSum = pSums[kind], cSum = cSums[kind]
            defer { (gSums[kind], pSums[kind], cSums[kind]) = (gSum, pSum, cSum) }
            let allowed = family[j]!
            let truth = try given?[j].1
                ?? Set(run.probe.run(ExactPlan(), [q], candidates: allowed, restricted: true).heaps[0].sortedResults().map(\.id))
            guard !truth.isEmpty else { continue }
            func recall(_ h: TopK) -> Double {
                Double(h.sortedResults().filter { truth.contains($0.id) }.count) / Double(truth.count)
            }
            if run.hasGraph {
                try addGraphRecall(q, allowed: allowed, setKey: j, selectivity: s, matches: m, run, recall: recall,
                                   gSum: &gSum, pSum: &pSum, pMeasured: &pMeasured)
            }
            if let pq = run.pq {
                try addCodesRecall(q, allowed: allowed, pq: pq, run.probe.view, recall: recall, cSum: &cSum)
            } else if let sq = run.sq {
                try addCodesRecall(q, allowed: allowed, sq: sq, run.probe.view, recall: recall, cSum: &cSum)
            }
        }
        var graphRecall: [[Double]] = [], postRecall: [[Double]] = [], codeRecall: [[Double]] = []
        for kind in 0..<kinds {
            let qn = counted[kind]
            graphRecall.append(gSums[kind].lowerBounds(queries: qn))
            postRecall.append(zip(pSums[kind].lowerBounds(queries: qn), pMeasured).map { $1 ? $0 : -1 })
            codeRecall.append(cSums[kind].lowerBounds(queries: qn))
        }
        return (graphRecall, postRecall, codeRecall)
    }

    /// Adds one query's filtered-graph and post-filter recall at each beam width to `gSum` and
    /// `pSum`; clears `pMeasured` at the widths post-filter is not measured at.
    private func addGraphRecall(_ q: PreparedQuery, allowed: Bitmap, setKey: Int, selectivity s: Double, matches m: Int,
                                _ run: RecallCalibrationRun, recall: (TopK) -> Double,
                                gSum: inout RecallTally, pSum: inout RecallTally, pMeasured: inout [Bool]) throws {
        let n = run.n, probe = run.probe
        // The same set for every beam width: its dense bitset is built once.
        func graph(_ plan: some PhysicalPlan, ef: Int) throws -> TopK {
            try probe.run(plan, [q], candidates: allowed, restricted: true, setKey: setKey, PlanProbe.Settings(ef: ef)).heaps[0]
        }
        // Knobs ascend; once a query finds every true neighbour, wider beams
        // do too (they explore a superset), so the rest count as found.
        var gDone = false, pDone = false
        for (i, ef) in Self.recallGraphKnobs.enumerated() {
            // Up to graphExhaustiveBelow matches the plan scores them all.
            if m > graphExhaustiveBelow {
                if gDone { gSum.add(i, 1) } else {
                    // As the plan runs: a traversal that comes up short scores the matches.
                    let r = recall(try graph(FilteredGraphPlan(), ef: ef))
                    gSum.add(i, r)
                    gDone = r >= 1
                }
            }
            // Post-filter widens the beam by 1/s: measured while that stays a
            // small part of the collection (beyond, the plan never pays).
            let width = Double(ef) / max(s, 1e-9)
            if width > max(1024, Double(n) / 16) {
                pMeasured[i] = false
            } else if pDone {
                pSum.add(i, 1)
            } else {
                let r = recall(try graph(PostFilterPlan(), ef: ef))
                pSum.add(i, r)
                pDone = r >= 1
            }
        }
    }

    /// Adds one query's codes recall at each re-rank depth to `cSum`.
    private func addCodesRecall(_ q: PreparedQuery, allowed: Bitmap, pq: ProductQuantizer, _ view: CollectionSnapshot, recall: (TopK) -> Double,
                                cSum: inout RecallTally) throws {
        // One scan for every depth: the deepest list's prefixes are the others.
        let session = ScanSession(view)
        let txn = view.txn
        let deepest = try codeCandidates(q, pq: pq, keep: Self.recallCodeKnobs.last!, candidates: allowed, txn, session: session)
        let ranked = deepest.sortedResults()
        for (i, r) in Self.recallCodeKnobs.enumerated() {
            var prefix = TopK(k: r)
            for c in ranked.prefix(r) { _ = prefix.insert(distance: c.distance, id: c.id) }
            cSum.add(i, recall(try rerankCodes(q, prefix, rerank: r, txn, vectors: try session.vectors())))
        }
    }

    /// The same over SQ8 codes: one scan keeping the deepest list, its prefixes re-ranked.
    private func addCodesRecall(_ q: PreparedQuery, allowed: Bitmap, sq: ScalarQuantizer, _ view: CollectionSnapshot, recall: (TopK) -> Double,
                                cSum: inout RecallTally) throws {
        let deepest = try scalarCandidates(q, sq: sq, keep: Self.recallCodeKnobs.last!, candidates: allowed, view)
        let ranked = deepest.sortedResults()
        let session = ScanSession(view)
        for (i, r) in Self.recallCodeKnobs.enumerated() {
            var prefix = TopK(k: r)
            for c in ranked.prefix(r) { _ = prefix.insert(distance: c.distance, id: c.id) }
            cSum.add(i, recall(try rerankCodes(q, prefix, rerank: r, view.txn, vectors: try session.vectors())))
        }
    }

    /// Adds band `s`'s curves to `curves`: each plan's worst family at each knob.
    private static func addCurves(_ curves: inout [PlanKind: [RecallModel.Curve]], selectivity s: Double, matches m: Int,
                                  graph graphRecall: [[Double]], post postRecall: [[Double]], codes codeRecall: [[Double]],
                                  hasGraph: Bool, hasCodes: Bool) {
        // The worst family at each knob.
        func worst(_ table: [[Double]], _ knobs: [Int]) -> [RecallModel.Point] {
            knobs.indices.compactMap { i in
                let r = table.map { $0[i] }
                return r.contains { $0 < 0 } ? nil : RecallModel.Point(knob: knobs[i], recall: r.min() ?? 0)
            }
        }
        if hasGraph {
            if m > graphExhaustiveBelow {
                curves[.filteredGraph, default: []].append(RecallModel.Curve(selectivity: s, points: worst(graphRecall, Self.recallGraphKnobs)))
            }
            let post = worst(postRecall, Self.recallGraphKnobs)
            if !post.isEmpty { curves[.postFilter, default: []].append(RecallModel.Curve(selectivity: s, points: post)) }
        }
        if hasCodes {
            curves[.codes, default: []].append(RecallModel.Curve(selectivity: s, points: worst(codeRecall, Self.recallCodeKnobs)))
        }
    }
}

/// One recall calibration's queries and what its measuring steps share.
private struct RecallCalibrationRun {
    let txn: Transaction
    /// Live rows.
    let n: Int
    let queries: [VectorCollection.PreparedQuery]
    /// The unfiltered band's queries and their exact answers (more than `queries` with the
    /// caller's vectors).
    let unfiltered: [(VectorCollection.PreparedQuery, Set<UInt64>)]
    /// True when the queries are the caller's vectors (one kind of query), not made near stored rows.
    let fromWorkload: Bool
    /// The live rows other than those the queries were made from: the rows every predicate draws on.
    let rows: Bitmap
    let others: [UInt32]
    /// Per query, the `others` nearest it and nearest its far point, nearest first.
    let near: [[UInt32]], far: [[UInt32]]
    /// Whether there is a graph; the codes (nil without them).
    let hasGraph: Bool
    let pq: ProductQuantizer?
    /// The SQ8 quantizer when the codes are SQ8 (nil with PQ or without codes).
    let sq: ScalarQuantizer?
    /// Runs the plans.
    let probe: PlanProbe

    /// Band `s`'s allowed sets, `m` rows each (about, for the hashed family), one per (query, family).
    func allowedSets(selectivity s: Double, matches m: Int) -> [[Bitmap?]] {
        // One allowed set per (query, family); unfiltered is one family.
        var families: [[Bitmap?]] = []
        if s == 1 {
            families = [unfiltered.map { _ in rows }]
        } else {
            let threshold = UInt32(s * Double(UInt32.max))
            let hashed = Bitmap(others.filter { ($0 &* 2_654_435_761) ^ (($0 &* 2_654_435_761) >> 15) < threshold })
            families.append(queries.map { _ in hashed })
            families.append(near.map { Bitmap(Array($0.prefix(m))) })
            families.append(far.map { Bitmap(Array($0.prefix(m))) })
        }
        return families
    }
}

/// Reorders `keys` so that its first `count` elements are its `count` smallest, in no order
/// (Hoare quickselect with a median-of-three pivot; keys are distinct).
private func selectSmallest(_ keys: inout [UInt64], _ count: Int) {
    guard count > 0, count < keys.count else { return }
    let target = count - 1
    keys.withUnsafeMutableBufferPointer { a in
        var lo = 0, hi = a.count - 1
        while lo < hi {
            let x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi]
            let pivot = max(min(x, y), min(max(x, y), z))
            var i = lo, j = hi
            while i <= j {
                while a[i] < pivot { i += 1 }
                while a[j] > pivot { j -= 1 }
                if i <= j {
                    a.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            // [lo, j] ≤ pivot ≤ [i, hi]; anything between equals the pivot and is in place.
            if target <= j { hi = j } else if target >= i { lo = i } else { return }
        }
    }
}

/// Per-query recall at each knob of one plan, summed: the model keeps a lower confidence bound
/// of the mean, not the mean, because a few dozen calibration queries estimate it loosely and
/// recall per query is skewed (most queries find all ten, a few find far fewer). Planning on the
/// bare mean was seen to promise 0.975 where the same store's queries got 0.91.
struct RecallTally {
    var sum: [Double]
    var squares: [Double]

    init(knobs: Int) {
        sum = [Double](repeating: 0, count: knobs)
        squares = sum
    }

    mutating func add(_ knob: Int, _ recall: Double) {
        sum[knob] += recall
        squares[knob] += recall * recall
    }

    /// The mean minus 1.645 standard errors (a one-sided 95 % bound), within [0, 1].
    func lowerBounds(queries n: Int) -> [Double] {
        guard n > 0 else { return sum.map { _ in 0 } }
        let count = Double(n)
        return zip(sum, squares).map { s, q in
            let mean = s / count
            guard n > 1 else { return mean }
            let variance = max(0, (q - s * s / count) / (count - 1))
            return min(1, max(0, mean - 1.645 * (variance / count).squareRoot()))
        }
    }
}

/// A small deterministic generator for calibration (the same queries on every machine).
struct Xorshift {
    private var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
    /// Uniform in (0, 1].
    mutating func uniform() -> Double { Double(next() >> 11 | 1) / Double(1 << 53) }
    /// Standard normal (Box–Muller).
    mutating func gaussian() -> Double { (-2 * log(uniform())).squareRoot() * cos(2 * Double.pi * uniform()) }
}
