import Foundation
import Testing
@testable import Sextant
import SextantTestSupport
import SextantKernels

/// Shared traversals: queries of one vector with different predicates share one unfiltered
/// traversal, each keeping its own matches. A pure planner decides; the results keep the
/// post-filter plan's guarantees (only matching rows, exact distances, never fewer than
/// `min(k, matches)`).
@Suite struct SharedTraversalTests {
    typealias Candidate = SharedTraversalPlanner.Candidate

    @Test func plannerSharesTheCheapestPrefixPerVector() {
        let linear = SharedTraversalPlanner { Double($0) * 1e-6 }
        // Two queries of vector 7 at widths 100 and 200: one traversal at 200 replaces both.
        let two = [Candidate(member: 0, vectorID: 7, width: 200, seconds: 1e-3), Candidate(member: 1, vectorID: 7, width: 100, seconds: 1e-3)]
        let chosen = linear.choose(two)
        #expect(chosen.map(\.vectorID) == [7] && chosen.map(\.width) == [200] && chosen.map(\.members) == [[1, 0]])
        #expect(abs((chosen.first?.seconds ?? 0) - 2e-4) < 1e-12)
        // One query per vector: nothing to share.
        let lone = [Candidate(member: 0, vectorID: 1, width: 100, seconds: 1), Candidate(member: 1, vectorID: 2, width: 100, seconds: 1)]
        #expect(linear.choose(lone).isEmpty)
        // A very wide member would cost more than it saves: only the narrow prefix shares.
        let wide = two + [Candidate(member: 2, vectorID: 7, width: 10_000, seconds: 1e-3)]
        #expect(linear.choose(wide).map(\.members) == [[1, 0]])
        // A traversal dearer than the plans it replaces (or not estimable) is not chosen.
        #expect(SharedTraversalPlanner { _ in 1 }.choose(two).isEmpty)
        #expect(SharedTraversalPlanner { _ in nil }.choose(two).isEmpty)
        // Saving less than the required share keeps the plans.
        let marginal = SharedTraversalPlanner { _ in 2e-3 * (1 - SharedTraversalPlanner.requiredSaving / 2) }
        #expect(marginal.choose(two).isEmpty)
    }

    /// A graph store and a batch where each vector comes with several predicates, broad and
    /// narrow, some far from the vector.
    static func store(_ tag: String) throws -> (Store, VectorCollection, [Query]) {
        let data = SyntheticDataset(rows: 3000, dimension: 16, queries: 24, clusters: 12, seed: 31)
        let store = try Store(path: temporaryStorePath(tag))
        let c = try store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema, indexRecipe: "HNSW8")
        try c.upsert((0..<3000).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
        try c.buildIndex(threads: 2)
        let preds = ["in_stock = TRUE", "price < 50", "category != 'cat1'", "date >= 0", "category = 'cat2'",
                     "price < 5 AND in_stock = FALSE", "tags CONTAINS 'red'"]
        var qs: [Query] = []
        for v in 0..<data.queryCount {
            for j in 0..<5 {
                qs.append(Query(vector: data.query(v), k: 5 + (v + j) % 8, filter: try Filter(sql: preds[(v + 2 * j) % preds.count])))
            }
        }
        return (store, c, qs)
    }

    @Test(arguments: [nil, PlanKind.postFilter])
    func sharedMembersKeepThePostFilterGuarantees(forced: PlanKind?) throws {
        let (store, c, qs) = try Self.store("shared-\(forced?.rawValue ?? "auto")")
        defer { store.close() }
        let options = SearchOptions(plan: forced, recall: 0.95)
        let explained = try c.explainBatch(qs, options: options)
        if forced == .postFilter {
            // Same vector, several post-filter traversals: sharing is always cheaper here.
            #expect(explained.groups.contains { $0.detail.contains("shared traversal") }, "\(explained.groups.map(\.detail))")
        }
        var hits = 0, possible = 0
        for (i, q) in qs.enumerated() {
            // Every match with its exact distance: the oracle.
            let all = try c.search(q.vector, k: 3000, filter: q.filter, options: SearchOptions(exact: true))
            let exact = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0.distance) })
            let got = explained.results[i]
            #expect(got.count == min(q.k, all.count), "query \(i): \(got.count) of min(\(q.k), \(all.count))")
            for r in got {
                guard let d = exact[r.id] else { Issue.record("query \(i): id \(r.id) does not match its predicate"); continue }
                #expect(abs(d - r.distance) <= 1e-4 * max(1, abs(d)), "query \(i): distance of \(r.id)")
            }
            let truth = Set(all.prefix(q.k).map(\.id))
            hits += got.filter { truth.contains($0.id) }.count
            possible += truth.count
        }
        let recall = Double(hits) / Double(max(1, possible))
        #expect(recall >= 0.9, "recall \(recall)")
        // The batch answers as the same queries asked alone would, within the plan's floor.
        let alone = try qs.prefix(10).map { try c.search($0.vector, k: $0.k, filter: $0.filter, options: options) }
        for (i, r) in alone.enumerated() { #expect(r.count == explained.results[i].count) }
    }

    @Test func anotherForcedPlanSharesNothing() throws {
        let (store, c, qs) = try Self.store("shared-forced")
        defer { store.close() }
        for plan in [PlanKind.exact, .filteredGraph, .partitionMajor] {
            let explained = try c.explainBatch(qs, options: SearchOptions(plan: plan))
            #expect(!explained.groups.contains { $0.detail.contains("shared traversal") }, "\(plan)")
        }
        // The exact plan's results are unchanged by any of this.
        #expect(try c.search(qs, options: SearchOptions(plan: .exact)) == qs.map { try c.search($0.vector, k: $0.k, filter: $0.filter, options: SearchOptions(exact: true)) })
    }
}
