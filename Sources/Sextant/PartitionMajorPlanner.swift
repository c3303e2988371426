import Foundation
import SextantKernels
import SextantStorage

/// Chooses which groups of a batch join the partition-major pass: a pure function of the groups'
/// matches, vectors and planned costs and of the cost model's tiled-kernel constants.
struct PartitionPassPlanner {
    struct Group {
        /// The group's matching slots.
        var candidates: Bitmap
        /// Dense indices (0..<vectorCount) of the distinct vectors of the group's queries.
        var vectors: [Int]
        /// Seconds of the plan the group would run on its own.
        var seconds: Double
    }

    /// Slots past the last one in use.
    let slotBound: UInt32
    let slotsPerBlock: Int
    /// Seconds per row read and per (vector, row) pair of a tiled pass (``CostModel``).
    let perRow: Double
    let perPair: Double
    /// Seconds per (block, group) entry of the pass: its masks, needs and deliveries.
    var perEntry: Double = 0
    /// The pass must save at least this share of the per-group plans' time to be chosen: both
    /// sides are estimates, and a tie should keep the plans that need no extra bookkeeping.
    static let requiredSaving = 0.1

    struct Choice {
        var members: [Int]
        var seconds: Double
        /// Seconds of the chosen members' own plans.
        var replaced: Double
    }

    /// The cheapest prefix of two orders of the groups (fewest matches first, and most first),
    /// or nil when no prefix beats the per-group plans.
    ///
    /// Costs are estimated over at most 128 units of consecutive blocks: within a unit, the rows a
    /// vector needs are the union of its predicates' matches there, estimated as if predicates
    /// fell independently on the unit's rows (exact when a predicate covers a unit or misses it,
    /// which is what `partition` makes common).
    func choose(_ groups: [Group], vectorCount: Int) -> Choice? {
        guard groups.count > 0, slotBound > 0 else { return nil }
        let alone = groups.reduce(0) { $0 + $1.seconds }
        var best: Choice? = nil
        let byMatches = groups.indices.sorted { groups[$0].candidates.count < groups[$1].candidates.count }
        let units = Units(self)
        let touched = units.touched(groups)
        let entries = blockCounts(groups)
        for order in [byMatches, byMatches.reversed()] {
            prefixCosts(order, groups, touched, entries, units, vectorCount: vectorCount) { i, pass, replaced in
                let total = pass + (alone - replaced)
                if total < alone * (1 - Self.requiredSaving), total < (best.map { $0.seconds + alone - $0.replaced } ?? .infinity) {
                    best = Choice(members: Array(order[0...i]), seconds: pass, replaced: replaced)
                }
            }
        }
        return best
    }

    /// Seconds of a pass over all `groups`.
    func cost(_ groups: [Group], vectorCount: Int) -> Double {
        guard slotBound > 0 else { return 0 }
        var seconds = 0.0
        let units = Units(self)
        prefixCosts(Array(groups.indices), groups, units.touched(groups), blockCounts(groups), units, vectorCount: vectorCount) { _, pass, _ in
            seconds = pass
        }
        return seconds
    }

    /// Calls `body(i, pass, replaced)` for each prefix `order[0...i]`: the pass's estimated seconds
    /// and the seconds of the prefix's own plans.
    private func prefixCosts(_ order: [Int], _ groups: [Group], _ touched: [[(unit: Int, fraction: Double)]], _ blocks: [Int],
                             _ cut: Units, vectorCount: Int, _ body: (Int, Double, Double) -> Void) {
        let units = cut.count
        func size(_ u: Int) -> Double { cut.size(u) }
        var missing = [Double](repeating: 1, count: vectorCount * units)
        var rowMissing = [Double](repeating: 1, count: units)
        var pairs = 0.0, rows = 0.0, replaced = 0.0, entries = 0.0
        for (i, g) in order.enumerated() {
            entries += Double(blocks[g])
            for (u, f) in touched[g] {
                let keep = 1 - f, n = size(u)
                rows += n * rowMissing[u] * f
                rowMissing[u] *= keep
                for v in groups[g].vectors {
                    pairs += n * missing[v * units + u] * f
                    missing[v * units + u] *= keep
                }
            }
            replaced += groups[g].seconds
            body(i, rows * perRow + pairs * perPair + entries * perEntry, replaced)
        }
    }

    /// Blocks holding a match of each group (only needed when entries cost something).
    private func blockCounts(_ groups: [Group]) -> [Int] {
        perEntry > 0 ? groups.map { blockCount($0.candidates) } : [Int](repeating: 0, count: groups.count)
    }

    /// Blocks holding at least one of `slots`.
    func blockCount(_ slots: Bitmap) -> Int {
        var n = 0
        slots.forEachRangeCount(width: slotsPerBlock) { _, _ in n += 1 }
        return n
    }
}

/// At most 128 units of consecutive blocks, the grain of the pass's estimate.
private struct Units {
    let slotBound: Int
    let unitSlots: Int
    let count: Int

    init(_ planner: PartitionPassPlanner) {
        slotBound = Int(planner.slotBound)
        let blocks = (slotBound + planner.slotsPerBlock - 1) / planner.slotsPerBlock
        let unitCount = Swift.max(1, Swift.min(128, blocks))
        unitSlots = Swift.max(1, ((blocks + unitCount - 1) / unitCount) * planner.slotsPerBlock)
        count = (slotBound + unitSlots - 1) / unitSlots
    }

    func size(_ u: Int) -> Double { Double(Swift.min(unitSlots, slotBound - u * unitSlots)) }

    /// Each group's matches per unit, as a fraction of the unit's slots (sparse).
    func touched(_ groups: [PartitionPassPlanner.Group]) -> [[(unit: Int, fraction: Double)]] {
        groups.map { g in
            var out: [(unit: Int, fraction: Double)] = []
            g.candidates.forEachRangeCount(width: unitSlots) { u, n in
                if u < count { out.append((u, Swift.min(1, Double(n) / size(u)))) }
            }
            return out
        }
    }
}

extension VectorCollection {
    /// Moves into one partition-major pass the groups it answers more cheaply than their own plans
    /// (all groups with matches when the pass is forced); nil when there is no pass.
    func partitionPass(_ groups: inout [PlannedGroup], model: CostModel?, slotBound: UInt32, slotsPerBlock: Int,
                       forced: PlanKind?) -> PartitionPass? {
        // Queries that went to shared traversals are not the pass's to answer.
        let eligible = groups.indices.filter { !groups[$0].candidates.isEmpty && !groups[$0].queries.isEmpty }
        guard !eligible.isEmpty else { return nil }
        guard forced == nil || forced == .partitionMajor else { return nil }
        var members = eligible
        var passSeconds: Double? = nil
        if let model {
            var dense: [Int: Int] = [:]
            let candidates = eligible.map { g -> PartitionPassPlanner.Group in
                let plan = groups[g].plan
                var vectors = Set<Int>()
                for q in groups[g].queries {
                    if let v = dense[q.vectorID] { vectors.insert(v) } else {
                        dense[q.vectorID] = dense.count
                        vectors.insert(dense.count - 1)
                    }
                }
                // The plan was estimated for the whole group; shared traversals may have taken some.
                let whole = plan.estimates.first { $0.kind == plan.kind }?.seconds ?? .infinity
                let seconds = whole * Double(groups[g].queries.count) / Double(max(1, plan.queries))
                return .init(candidates: groups[g].candidates, vectors: vectors.sorted(), seconds: seconds)
            }
            // The pass's own constant when measured (it carries the row reads); the shared pass's otherwise.
            var planner = PartitionPassPlanner(slotBound: slotBound, slotsPerBlock: slotsPerBlock,
                                               perRow: model.passPerPair == nil ? model.tiledPerRow : 0,
                                               perPair: model.passPerPair ?? model.tiledPerPair)
            planner.perEntry = model.passPerEntry ?? 0
            if forced == .partitionMajor {
                passSeconds = planner.cost(candidates, vectorCount: dense.count)
            } else {
                // Alone, a query has nothing to share: its own plan is at least as good.
                guard eligible.count > 1, let choice = planner.choose(candidates, vectorCount: dense.count) else { return nil }
                members = choice.members.map { eligible[$0] }.sorted()
                passSeconds = choice.seconds
            }
        } else if forced != .partitionMajor {
            return nil
        }
        // Each member's share of the pass, for explain: in proportion to its (query, match) pairs.
        let pairs = members.reduce(0.0) { $0 + Double(groups[$1].candidates.count * groups[$1].queries.count) }
        for g in members {
            var plan = groups[g].plan
            let share = passSeconds.map { $0 * Double(plan.matches * groups[g].queries.count) / max(1, pairs) }
            plan.estimates.removeAll { $0.kind == .partitionMajor }
            plan.estimates.insert(PlanEstimate(kind: .partitionMajor, seconds: share ?? 0, rows: plan.matches, recall: 1), at: 0)
            plan.kind = .partitionMajor
            plan.estimatedRows = plan.matches
            groups[g].plan = plan
        }
        return PartitionPass(groups: members, planned: groups, dimension: dimension, slotsPerBlock: slotsPerBlock)
    }
}

extension VectorCollection {
    /// The partition-major pass's constants, measured as the pass runs: seconds per (vector,
    /// row) pair and per (block, group) entry. Two passes of four groups over the same 8
    /// sampled vectors, each group a pseudo-random half of the rows (vectors repeat across
    /// predicates and the groups' rows overlap, as in a batch): one over `dense` (consecutive
    /// live rows, full blocks), one over the spread `sparse` sample (a few rows per block). Their
    /// times against the pairs ``PartitionPassPlanner`` estimates and the entries they hold
    /// give the two constants, in the planner's own units. nil with fewer than 8 queries.
    func measurePassCosts(queries: [PreparedQuery], dense: Bitmap, sparse: Bitmap, _ txn: Transaction) throws -> (perPair: Double, perEntry: Double)? {
        guard queries.count >= 8, dense.count >= 64, sparse.count >= 64 else { return nil }
        let reader = try vectorReader(txn)
        let slotsPerBlock = reader.blocks.slotsPerBlock
        let counter = PartitionPassPlanner(slotBound: try state(txn).nextSlot, slotsPerBlock: slotsPerBlock, perRow: 0, perPair: 1)
        func measure(_ rows: Bitmap) throws -> (seconds: Double, pairs: Double, entries: Double) {
            let vectors = Array(queries.prefix(8))
            let slots = rows.toArray()
            var planned: [PlannedGroup] = []
            for g in 0..<4 {
                let half = Bitmap(slots.filter { s in
                    ((UInt64(s) &+ UInt64(g + 1) &* 0x9E37_79B9_7F4A_7C15) &* 0xBF58_476D_1CE4_E5B9) >> 63 == 0
                })
                let members = vectors.enumerated().map { j, q in
                    PreparedQuery(index: g * vectors.count + j, vectorID: q.vectorID, vector: q.vector, k: q.k, predicate: nil, filter: nil)
                }
                let plan = QueryPlan(kind: .partitionMajor, forced: true, matches: half.count, liveRows: rows.count,
                                     queries: members.count, estimates: [], estimatedRows: half.count)
                planned.append(PlannedGroup(predicate: nil, filter: nil, queries: members, plan: plan, candidates: half))
            }
            let pass = PartitionPass(groups: Array(planned.indices), planned: planned, dimension: dimension, slotsPerBlock: slotsPerBlock)
            let seconds = try bestOfThree {
                var runner = PartitionPassRunner(pass, metric: metric)
                _ = try runner.run(0..<pass.blocks.count, reader: reader, collection: name)
            }
            let groups = planned.map { PartitionPassPlanner.Group(candidates: $0.candidates, vectors: Array(0..<vectors.count), seconds: 0) }
            let entries = planned.reduce(0.0) { $0 + Double(counter.blockCount($1.candidates)) }
            return (seconds, counter.cost(groups, vectorCount: vectors.count), entries)
        }
        let d = try measure(dense), s = try measure(sparse)
        guard d.pairs > 0, s.pairs > 0 else { return nil }
        // t = pairs · a + entries · b from the two passes; where they do not separate the two
        // (a small store, whose sample is every row), the dense pass's time is all per pair.
        let det = d.pairs * s.entries - s.pairs * d.entries
        var perPair = d.seconds / d.pairs
        if abs(det) > 1e-9 * d.pairs * s.entries {
            perPair = min(perPair, max(1e-12, (d.seconds * s.entries - s.seconds * d.entries) / det))
        }
        let perEntry = s.entries > 0 ? max(0, (s.seconds - s.pairs * perPair) / s.entries) : 0
        return (perPair, perEntry)
    }
}
