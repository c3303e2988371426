import SextantKernels
import SextantStorage

/// One physical plan run on its own, exactly as a batch's search thread runs it: calibration
/// times the plans and scores their recall through this, so the costs and recall the planner
/// chooses by are those of the code a search runs (``PhysicalPlan/run(_:_:)``).
///
/// Single-threaded, inside the caller's transaction. Each run gets a fresh scan session unless
/// told to keep it (its lookup tables are keyed by the queries' vector numbers, which differ
/// between runs); the graph
/// and its search context stay open across runs, as a search thread keeps them.
final class PlanProbe {
    private var runner: GroupRunner
    private let live: Int
    private var setKey: Int?

    init(_ collection: VectorCollection, _ txn: Transaction, live: Int) throws {
        runner = GroupRunner(try CollectionSnapshot(collection, txn))
        self.live = live
    }

    /// The collection in the probe's transaction.
    var view: CollectionSnapshot { runner.view }

    deinit { runner.finish() }

    /// How a probe runs a plan: the knobs a planner would set, and what calibration needs to hold
    /// fixed.
    struct Settings {
        /// Beam width (graph plans) and re-rank depth (codes plan); nil: the plans' defaults.
        var ef: Int? = nil
        var rerank: Int? = nil
        /// Whether the recipe refines (the codes plan's default re-rank depth).
        var refine = false
        /// The codes plan in shared code passes instead of query by query.
        var sharedCodePass = false
        /// Keep the previous run's scan session (its lookup tables), for runs of the same
        /// queries: a batch builds a vector's quantized tables once, however many groups or
        /// passes use them, so a pass's cost per code should not carry them.
        var keepSession = false
        /// Matches up to which the filtered graph plan scores every match instead of traversing
        /// (nil: the plan's own threshold; 0 times the traversal at every selectivity).
        var exhaustiveBelow: Int? = nil
    }

    /// Runs `plan` for `queries` over `candidates`. `restricted`: the candidates are a
    /// predicate's matches (graph plans then keep to them); false: every live row.
    /// `setKey` names the candidate set, so that a graph plan's dense bitset of it is built
    /// once for the runs that share it.
    func run(_ plan: some PhysicalPlan, _ queries: [VectorCollection.PreparedQuery], candidates: Bitmap, restricted: Bool,
             setKey: Int = 0, _ settings: Settings = Settings()) throws -> (heaps: [TopK], stats: [VectorCollection.QueryStats]) {
        if setKey != self.setKey { runner.bitsets.removeAll(); runner.spareGroup = nil; self.setKey = setKey }
        if !settings.keepSession { runner.newSession() }
        let planned = QueryPlan(kind: plan.kind, forced: true, matches: candidates.count, liveRows: live, queries: queries.count,
                                estimates: [], estimatedRows: candidates.count)
        var group = VectorCollection.PlannedGroup(predicate: nil, filter: nil, queries: queries, plan: planned, candidates: candidates,
                                                  sharedCodePass: settings.sharedCodePass, ef: settings.ef, rerank: settings.rerank)
        group.restricted = restricted
        group.exhaustiveBelow = settings.exhaustiveBelow
        let item = VectorCollection.WorkItem(group: 0, range: 0..<queries.count, slots: nil)
        let work = PlanWork(group: group, groupIndex: 0, item: item, queries: queries, ef: settings.ef, rerank: settings.rerank,
                            refine: settings.refine, live: live)
        return try plan.run(work, &runner)
    }
}
