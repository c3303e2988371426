import SextantKernels

// The per-query physical plans as the planner sees them: each declares what it needs and
// estimates its cost and expected recall from statistics and models alone (no storage), so the
// choice is a pure function that tests can drive with a hand-made cost and recall model.
// Each also runs its work items (GroupRunner.swift, where the storage is); the partition-major
// pass is weighed per batch (PartitionPassPlanner) and run by PartitionPassRunner.

/// What a plan is estimated from: one group's statistics, the collection's models and the
/// caller's settings.
struct PlanContext {
    let model: CostModel
    /// Matching rows, live rows, queries in the group, neighbours per query.
    let matches: Int
    let live: Int
    let queries: Int
    let k: Int
    /// The caller's beam width and re-rank depth (nil: chosen from the recall model).
    let ef: Int?
    let rerank: Int?
    /// The recipe's re-rank depth.
    let defaultRerank: Int
    /// The recall the plan must be expected to reach (0: by time alone).
    let target: Double
    let forced: PlanKind?
    let hasGraph: Bool
    let hasCodes: Bool
    /// Learned correction factor of a graph plan's estimate at a selectivity (1: none).
    let correction: (PlanKind, Double) -> Double

    /// Selectivity, at least one row's worth.
    var selectivity: Double { live > 0 ? Double(max(matches, 1)) / Double(live) : 1 }

    /// The knob and expected recall of an approximate plan: the caller's setting, else the
    /// smallest measured one expected to reach the target; nil leaves the plan out (unless it
    /// is forced, which then runs at the largest measured knob). Without a recall model (or
    /// with target 0), the fallback and an unknown recall.
    func knob(_ kind: PlanKind, given: Int?, fallback: Int) -> (Int, Double?)? {
        guard target > 0, let rm = model.recall, rm.curves[kind] != nil else { return (given ?? fallback, nil) }
        let s = selectivity
        if let given { return (given, rm.expectedRecall(kind, selectivity: s, k: k, knob: given)) }
        if let best = rm.setting(kind, selectivity: s, k: k, target: rm.aim(for: target)) { return (best.knob, best.recall) }
        guard forced == kind else { return nil }
        let largest = rm.curves[kind]!.flatMap(\.points).map(\.knob).max() ?? fallback
        let scaled = max(k, largest * max(k, RecallModel.measuredK) / RecallModel.measuredK)
        return (scaled, rm.expectedRecall(kind, selectivity: s, k: k, knob: scaled))
    }
}

/// A physical plan of one query or predicate group.
protocol PhysicalPlan: Sendable {
    var kind: PlanKind { get }
    /// Whether the collection has what the plan reads (a graph, codes).
    func isAvailable(_ c: PlanContext) -> Bool
    /// The plan's estimate at its chosen knob; nil when it cannot meet the context (no knob
    /// reaches the target, no measured constants).
    func estimate(_ c: PlanContext) -> PlanEstimate?
    /// Runs one work item of a group planned with this plan on a search thread (GroupRunner.swift).
    func run(_ work: PlanWork, _ runner: inout GroupRunner) throws -> ([TopK], [VectorCollection.QueryStats])
}

/// Every match scored with its full vector: the reference every other plan is tested against.
struct ExactPlan: PhysicalPlan {
    var kind: PlanKind { .exact }
    func isAvailable(_ c: PlanContext) -> Bool { true }
    func estimate(_ c: PlanContext) -> PlanEstimate? {
        let (g, m, model) = (Double(c.queries), Double(c.matches), c.model)
        // A group shares one tiled pass over its matches, when that is cheaper.
        let seconds = c.queries == 1 ? m * model.exactPerRow
            : min(g * m * model.exactPerRow, m * (model.tiledPerRow + g * model.tiledPerPair))
        return PlanEstimate(kind: .exact, seconds: seconds, rows: c.matches, recall: 1)
    }
}

/// The matches' PQ codes scored, the best re-ranked with full vectors.
struct CodesPlan: PhysicalPlan {
    var kind: PlanKind { .codes }
    func isAvailable(_ c: PlanContext) -> Bool { c.hasCodes }
    func estimate(_ c: PlanContext) -> PlanEstimate? {
        guard let scan = c.model.codeScanSeconds(matches: c.matches, live: c.live, queries: c.queries),
              let (depth, recall) = c.knob(.codes, given: c.rerank, fallback: c.defaultRerank) else { return nil }
        let r = min(c.matches, depth)
        let rerankCost = Double(c.queries) * Double(r) * c.model.exactPerRow
        var seconds = scan + rerankCost
        if let shared = c.model.sharedCodePass(matches: c.matches, queries: c.queries) { seconds = min(seconds, shared + rerankCost) }
        // Re-ranking every match is exact.
        return PlanEstimate(kind: .codes, seconds: seconds, rows: c.matches + r, recall: depth >= c.matches ? 1 : recall, knob: depth)
    }
}

/// HNSW traversal returning only matching rows.
struct FilteredGraphPlan: PhysicalPlan {
    var kind: PlanKind { .filteredGraph }
    func isAvailable(_ c: PlanContext) -> Bool { c.hasGraph && c.live > 0 }
    func estimate(_ c: PlanContext) -> PlanEstimate? {
        let g = Double(c.queries)
        if c.matches <= graphExhaustiveBelow {
            // The graph plan scores this few matches exhaustively: an exact scan by another path.
            return PlanEstimate(kind: .filteredGraph, seconds: g * Double(c.matches) * c.model.exactPerRow * 1.05, rows: c.matches,
                                recall: 1, knob: max(c.ef ?? c.model.defaultEF, c.k))
        }
        let s = c.selectivity
        guard let (chosen, recall) = c.knob(.filteredGraph, given: c.ef, fallback: c.model.defaultEF),
              let one = c.model.graphCost(selectivity: s, ef: max(chosen, c.k)) else { return nil }
        return PlanEstimate(kind: .filteredGraph, seconds: g * one.seconds * c.correction(.filteredGraph, s), rows: Int(one.distances),
                            recall: recall, knob: max(chosen, c.k))
    }
}

/// Unfiltered HNSW traversal with the beam widened by 1 / selectivity, non-matches dropped.
struct PostFilterPlan: PhysicalPlan {
    var kind: PlanKind { .postFilter }
    func isAvailable(_ c: PlanContext) -> Bool { c.hasGraph && c.live > 0 }
    func estimate(_ c: PlanContext) -> PlanEstimate? {
        let s = c.selectivity
        guard let (chosen, recall) = c.knob(.postFilter, given: c.ef, fallback: c.model.defaultEF) else { return nil }
        let beam = max(chosen, c.k)
        let width = min(c.live, Int((Double(beam) / s).rounded(.up)))
        guard let one = c.model.unfilteredSeconds(ef: width), let full = c.model.graphBySelectivity?.first else { return nil }
        let distances = full.distances * Double(width) / Double(c.model.defaultEF)
        return PlanEstimate(kind: .postFilter, seconds: Double(c.queries) * one * c.correction(.postFilter, s),
                            rows: Int(min(distances, Double(c.live))), recall: width >= c.live ? 1 : recall, knob: beam)
    }
}

/// The per-query plans, in the order their estimates are listed before sorting.
let physicalPlans: [any PhysicalPlan] = [ExactPlan(), CodesPlan(), FilteredGraphPlan(), PostFilterPlan()]

/// Every available plan's estimate, cheapest first: a pure function of the context.
func planEstimates(_ c: PlanContext) -> [PlanEstimate] {
    physicalPlans.compactMap { $0.isAvailable(c) ? $0.estimate(c) : nil }.sorted { $0.seconds < $1.seconds }
}
