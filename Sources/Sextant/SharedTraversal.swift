import Foundation
import SextantKernels
import SextantStorage

// Shared traversals: the graph's side of HQI's multi-query sharing. A batch asks the same
// vector with several predicates; the post-filter plan of each is an unfiltered traversal whose
// beam is widened by 1/selectivity, so one traversal at the widest of those beams yields every
// candidate list at once, and each query keeps its own matches. Whatever plan a query had (an
// exact pass over a large group, a filtered traversal, a codes scan), it joins its vector's
// traversal when the cost model says the traversal costs less than the plans it replaces.

/// Chooses, per distinct query vector, the queries that share one unfiltered traversal: a pure
/// function of each query's post-filter beam width and own planned cost, and of the cost of an
/// unfiltered traversal at a given width.
struct SharedTraversalPlanner {
    struct Candidate {
        /// The caller's handle on the query.
        var member: Int
        var vectorID: Int
        /// The width its post-filter plan would traverse at (beam ÷ selectivity).
        var width: Int
        /// Seconds of the plan it would otherwise run (its share of its group's plan).
        var seconds: Double
    }

    struct Choice: Equatable {
        var vectorID: Int
        var width: Int
        /// The members, narrowest width first.
        var members: [Int]
        var seconds: Double
    }

    /// Seconds of one unfiltered traversal at a width (nil: not estimable, no sharing).
    let traversalSeconds: (Int) -> Double?
    /// The traversal must save at least this share of the plans it replaces: both sides are
    /// estimates, and a tie should keep the plans the recall model was calibrated on.
    static let requiredSaving = 0.1

    /// For each vector with at least two candidates: the prefix (by width) whose traversal
    /// saves the most, when it saves at least ``requiredSaving``.
    func choose(_ candidates: [Candidate]) -> [Choice] {
        var order: [Int] = []
        var byVector: [Int: [Candidate]] = [:]
        for c in candidates {
            if byVector[c.vectorID] == nil { order.append(c.vectorID) }
            byVector[c.vectorID, default: []].append(c)
        }
        var out: [Choice] = []
        for v in order {
            let cs = byVector[v]!.sorted { ($0.width, $0.member) < ($1.width, $1.member) }
            guard cs.count >= 2 else { continue }
            var replaced = 0.0
            var best: (saving: Double, end: Int, seconds: Double)? = nil
            for (i, c) in cs.enumerated() {
                replaced += c.seconds
                guard i >= 1, let cost = traversalSeconds(c.width) else { continue }
                let saving = replaced - cost
                if cost < replaced * (1 - Self.requiredSaving), saving > (best?.saving ?? 0) { best = (saving, i, cost) }
            }
            if let best {
                out.append(Choice(vectorID: v, width: cs[best.end].width, members: cs[0...best.end].map(\.member), seconds: best.seconds))
            }
        }
        return out
    }
}

extension VectorCollection {
    /// One traversal of a batch and the queries it answers.
    struct SharedTraversal: @unchecked Sendable {
        struct Member {
            var query: PreparedQuery
            /// The query's group (its candidates and predicate).
            var group: Int
            /// The beam its own post-filter plan would have used.
            var beam: Int
        }
        var vector: [Float]
        var width: Int
        var members: [Member]
        var seconds: Double
    }

    /// Moves the queries that gain from sharing a traversal out of their groups. No sharing
    /// when a plan other than post-filter is forced, without a graph or a cost model.
    func sharedTraversals(_ groups: inout [PlannedGroup], _ planning: BatchPlanning, options: SearchOptions) -> [SharedTraversal] {
        guard planning.hasGraph, let model = planning.model, planning.live > 0 else { return [] }
        if let forced = options.forcedPlan, forced != .postFilter { return [] }
        let live = planning.live
        var candidates: [SharedTraversalPlanner.Candidate] = []
        var handles: [(group: Int, position: Int, beam: Int)] = []
        for (g, group) in groups.enumerated() {
            let plan = group.plan
            let m = group.candidates.count
            guard m > 0, plan.queries > 0,
                  let own = plan.estimates.first(where: { $0.kind == plan.kind }),
                  let post = plan.estimates.first(where: { $0.kind == .postFilter }), let knob = post.knob else { continue }
            let unfiltered = group.filter == nil && group.cells == nil
            let perQuery = own.seconds / Double(plan.queries)
            for (r, q) in group.queries.enumerated() {
                let beam = max(knob, q.k)
                // Wide enough to expect 3k matches (or the beam's): a list expected to hold barely
                // k comes up short whenever the predicate leans away from the query, and a short
                // member pays a second, wider traversal of its own.
                let width = unfiltered ? beam : Self.postFilterWidth(beam: max(beam, Self.sharedMatchesPerK * q.k), matches: m, live: live)
                candidates.append(.init(member: handles.count, vectorID: q.vectorID, width: width, seconds: perQuery))
                handles.append((g, r, beam))
            }
        }
        let planner = SharedTraversalPlanner { model.unfilteredSeconds(ef: $0) }
        let choices = planner.choose(candidates)
        guard !choices.isEmpty else { return [] }
        var moved = groups.map { [Bool](repeating: false, count: $0.queries.count) }
        let traversals = choices.map { c -> SharedTraversal in
            let members = c.members.map { i -> SharedTraversal.Member in
                let h = handles[i]
                moved[h.group][h.position] = true
                return .init(query: groups[h.group].queries[h.position], group: h.group, beam: h.beam)
            }
            return SharedTraversal(vector: members[0].query.vector, width: c.width, members: members, seconds: c.seconds)
        }
        for g in groups.indices where moved[g].contains(true) {
            groups[g].queries = groups[g].queries.indices.filter { !moved[g][$0] }.map { groups[g].queries[$0] }
        }
        return traversals
    }

    /// Matches per result a member's share of a traversal is sized to expect.
    static let sharedMatchesPerK = 3

    /// The width of a post-filter traversal: the beam widened by 1/selectivity, at most every row.
    static func postFilterWidth(beam: Int, matches: Int, live: Int) -> Int {
        min(max(live, 1), Int((Double(beam) * Double(live) / Double(max(matches, 1))).rounded(.up)))
    }
}

extension GroupRunner {
    /// One traversal for every member; each keeps its matches among the candidates, and a
    /// member left with fewer than `min(k, matches)` continues as its own post-filter search
    /// from twice the shared width.
    mutating func run(_ t: VectorCollection.SharedTraversal, groups: [VectorCollection.PlannedGroup], live: Int) throws
        -> ([TopK], [VectorCollection.QueryStats]) {
        let (gr, src, context) = try graphState()
        let before = context.distanceCount
        let found: [Neighbor] = try src.withQuery(t.vector) { query in
            try HNSW.search(query, k: t.width, ef: t.width,
                            storage: gr, distances: src, context: context)
        }
        let shared = (context.distanceCount - before) / t.members.count
        var heaps: [TopK] = [], stats: [VectorCollection.QueryStats] = []
        for m in t.members {
            let group = groups[m.group]
            let q = m.query
            let allowed: Bitmap? = group.filter == nil && group.cells == nil ? nil : group.candidates
            let wanted = min(q.k, group.candidates.count)
            let kept = allowed.map { a in found.lazy.filter { a.contains(UInt32($0.id)) }.prefix(q.k) }.map(Array.init) ?? Array(found.prefix(q.k))
            if kept.count >= wanted {
                heaps.append(try collection.externalIDs(kept, k: q.k, src.reader))
                stats.append(.init(rowsScored: shared, detail: "shared traversal, beam \(t.width) for \(t.members.count) queries of this vector",
                                   sharedTraversal: true))
                continue
            }
            let start = context.distanceCount
            let (heap, detail) = try collection.postFilterSearch(q, ef: m.beam, allowed: allowed, matches: group.candidates.count, live: live,
                                                                 startWidth: min(max(live, 1), 2 * t.width), txn,
                                                                 graph: gr, source: src, context: context)
            heaps.append(heap)
            stats.append(.init(rowsScored: shared + context.distanceCount - start,
                               detail: "shared traversal (beam \(t.width)) came up short; own \(detail)", sharedTraversal: true))
        }
        return (heaps, stats)
    }
}
