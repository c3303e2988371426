import Foundation
import Testing
@testable import Sextant
import SextantTestSupport

/// Broad predicates checked row by row: a post-filter search whose predicate is not evaluated
/// as a set keeps every guarantee of the plan it replaces (only matching rows, exact distances,
/// never fewer than `min(k, matches)`), including when the estimate is wrong for the query.
@Suite struct DeferredFilterTests {
    /// Rows in two far-apart clusters: 2,000 "near" the origin, 1,000 "far" (+50 on every axis).
    static func twoClusters(_ tag: String) throws -> (Store, VectorCollection) {
        let store = try Store(path: temporaryStorePath(tag))
        let c = try store.createCollection("c", dimension: 8, metric: .l2, schema: try Schema(parsing: "side:string,n:int"),
                                           indexRecipe: "HNSW8")
        var rng = SystemRandomNumberGenerator()
        var rows: [Row] = []
        for i in 0..<3000 {
            let far = i >= 2000
            let v = (0..<8).map { _ in Float.random(in: -1...1, using: &rng) + (far ? 50 : 0) }
            rows.append(Row(id: UInt64(i), vector: v, attributes: ["side": .string(far ? "far" : "near"), "n": .int(Int64(i % 10))]))
        }
        try c.upsert(rows)
        try c.buildIndex(threads: 2)
        return (store, c)
    }

    static func oracle(_ c: VectorCollection, _ v: [Float], _ filter: Filter) throws -> [SearchResult] {
        try c.search(v, k: 3000, filter: filter, options: SearchOptions(exact: true))
    }

    static func expectGuarantees(_ got: [SearchResult], k: Int, all: [SearchResult], _ what: String) {
        let exact = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0.distance) })
        #expect(got.count == min(k, all.count), "\(what): \(got.count) of min(\(k), \(all.count))")
        for r in got {
            guard let d = exact[r.id] else { Issue.record("\(what): id \(r.id) does not match"); continue }
            #expect(abs(d - r.distance) <= 1e-4 * max(1, abs(d)), "\(what): distance of \(r.id)")
        }
    }

    @Test func theSampleCacheKeepsEachCollectionsNewestSnapshot() {
        let cache = AttributeSampleCache()
        cache.put(1, snapshot: 5, .init(rows: [], live: 10))
        cache.put(2, snapshot: 3, .init(rows: [], live: 20))
        cache.put(1, snapshot: 7, .init(rows: [], live: 11))
        #expect(cache.get(1, snapshot: 5) == nil && cache.get(1, snapshot: 7)?.live == 11)
        // Another collection's older snapshot stays.
        #expect(cache.get(2, snapshot: 3)?.live == 20)
        // An older reader does not displace the newest sample.
        cache.put(1, snapshot: 6, .init(rows: [], live: 12))
        #expect(cache.get(1, snapshot: 6) == nil && cache.get(1, snapshot: 7)?.live == 11)
    }

    @Test(arguments: [nil, PlanKind.postFilter])
    func broadPredicatesCheckedRowByRowKeepTheGuarantees(forced: PlanKind?) throws {
        let data = SyntheticDataset(rows: 3000, dimension: 16, queries: 24, clusters: 12, seed: 7)
        let store = try Store(path: temporaryStorePath("deferred-\(forced?.rawValue ?? "auto")"))
        defer { store.close() }
        let c = try store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema, indexRecipe: "HNSW8")
        try c.upsert((0..<3000).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
        try c.buildIndex(threads: 2)
        let predicates = ["in_stock = TRUE", "price < 50", "category != 'cat1'", "date >= 0", "in_stock = TRUE OR price < 10"]
        // Every search before any oracle: an evaluated set is cached for its snapshot, and a
        // cached set is used rather than checking rows.
        var runs: [(v: Int, sql: String, k: Int, e: SearchExplanation)] = []
        for v in 0..<data.queryCount {
            for (j, sql) in predicates.enumerated() {
                let k = 5 + (v + j) % 10
                runs.append((v, sql, k, try c.explainSearch(data.query(v), k: k, filter: try Filter(sql: sql),
                                                            options: SearchOptions(plan: forced, recall: 0.95))))
            }
        }
        var deferred = 0, hits = 0, possible = 0
        for r in runs {
            let all = try Self.oracle(c, data.query(r.v), try Filter(sql: r.sql))
            if r.e.plan.matchesEstimated {
                deferred += 1
                #expect(r.e.plan.kind == .postFilter)
                // The estimate is a sample's: within a few points of the truth at this size.
                #expect(abs(Double(r.e.plan.matches - all.count)) <= 0.1 * 3000, "\(r.sql): estimate \(r.e.plan.matches) vs \(all.count)")
            }
            Self.expectGuarantees(r.e.results, k: r.k, all: all, "query \(r.v) \(r.sql)")
            let truth = Set(all.prefix(r.k).map(\.id))
            hits += r.e.results.filter { truth.contains($0.id) }.count
            possible += truth.count
        }
        // A forced post-filter checks broad predicates row by row (until a fallback caches a set).
        let broad = runs.filter { r in (try? Self.oracle(c, data.query(r.v), try Filter(sql: r.sql)).count >= 900) ?? false }.count
        if forced == .postFilter { #expect(deferred > 0 && deferred >= broad / 2, "\(deferred) deferred of \(broad) broad") }
        let recall = Double(hits) / Double(max(1, possible))
        #expect(recall >= 0.9, "recall \(recall), \(deferred) deferred")
    }

    @Test func aBroadPredicateFarFromTheQueryFallsBackToItsSet() throws {
        let (store, c) = try Self.twoClusters("deferred-far")
        defer { store.close() }
        let far = try Filter(sql: "side = 'far'")
        let q = [Float](repeating: 0, count: 8)
        let runs = try [1, 10, 40].map { k in (k, try c.explainSearch(q, k: k, filter: far, options: SearchOptions(plan: .postFilter))) }
        let all = try Self.oracle(c, q, far)
        for (i, (k, e)) in runs.enumerated() {
            if i == 0 {
                // Not one far row is among the near traversal's candidates: the set decides.
                #expect(e.plan.matchesEstimated)
                #expect(e.detail.contains("predicate evaluated"), "\(e.detail)")
            } else {
                // ... and, cached for the snapshot, serves the next searches.
                #expect(!e.plan.matchesEstimated && e.plan.matches == 1000)
            }
            Self.expectGuarantees(e.results, k: k, all: all, "k \(k)")
        }
    }

    @Test func estimatesFollowTheSnapshotAndLargeGroupsUseTheSet() throws {
        let (store, c) = try Self.twoClusters("deferred-snapshot")
        defer { store.close() }
        let far = try Filter(sql: "side = 'far'")
        let q = [Float](repeating: 50, count: 8)
        #expect(try c.explainSearch(q, k: 10, filter: far, options: SearchOptions(plan: .postFilter)).plan.matchesEstimated)
        // Every far row deleted: the next snapshot's sample sees none and nothing is returned.
        #expect(try c.delete((2000..<3000).map(UInt64.init)) == 1000)
        let after = try c.explainSearch(q, k: 10, filter: far, options: SearchOptions(plan: .postFilter))
        #expect(!after.plan.matchesEstimated && after.plan.matches == 0 && after.results.isEmpty)
        // A group larger than the limit evaluates its predicate once for all its queries.
        let near = try Filter(sql: "side = 'near'")
        let group = (0..<(VectorCollection.deferredMaximumGroup + 1)).map { i in
            Query(vector: [Float](repeating: Float(i) / 10, count: 8), k: 5, filter: near)
        }
        let batch = try c.explainBatch(group, options: SearchOptions(plan: .postFilter))
        #expect(batch.groups.allSatisfy { !$0.plan.matchesEstimated })
        for (i, g) in group.enumerated() {
            Self.expectGuarantees(batch.results[i], k: 5, all: try Self.oracle(c, g.vector, near), "group query \(i)")
        }
    }
}
