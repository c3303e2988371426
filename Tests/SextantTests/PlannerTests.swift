import Foundation
import Testing
@testable import Sextant
import SextantKernels
import SextantStorage
import SextantTestSupport

/// The planner and batch executor against the exact oracle: every plan returns
/// `min(k, matches)` rows that satisfy the predicate, exact plans are identical alone and
/// batched, approximate plans keep their recall floor, and `explain` reports each plan kind.
@Suite struct PlannerTests {
    static let predicates = [
        "category = 'cat0'", "in_stock = TRUE", "price < 3", "price < 40 AND in_stock = TRUE",
        "tags CONTAINS 'red' OR tags CONTAINS 'eco'", "category = 'none'", "date >= 0",
    ]

    static func make(_ tag: String, recipe: String, rows: Int = 3000) throws -> (Store, VectorCollection, SyntheticDataset) {
        let store = try Store(path: temporaryStorePath(tag))
        let data = SyntheticDataset(rows: rows, dimension: 16, queries: 24, clusters: 20, seed: 17)
        let coll = try store.createCollection("c", dimension: 16, metric: .cosine, schema: SyntheticDataset.schema, indexRecipe: recipe)
        try coll.upsert((0..<rows).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
        if recipe != "Flat" { try coll.buildIndex(threads: 2) }
        return (store, coll, data)
    }

    @Test func everyPlanReturnsMinKMatchingRowsAndKeepsItsRecallFloor() throws {
        let (store, coll, data) = try Self.make("planner-plans", recipe: "HNSW8,PQ8x4fs,Refine")
        defer { store.close() }
        for sql in Self.predicates {
            let f = try Filter(sql: sql)
            let matches = try coll.count(where: f)
            let allowed = Set(try coll.search(data.query(0), k: max(1, matches), filter: f, options: SearchOptions(exact: true)).map(\.id))
            for plan in PlanKind.allCases {
                var hits = 0, total = 0
                for i in 0..<data.queryCount {
                    let exact = try coll.search(data.query(i), k: 10, filter: f, options: SearchOptions(exact: true))
                    let got = try coll.search(data.query(i), k: 10, filter: f, options: SearchOptions(plan: plan))
                    #expect(got.count == min(10, matches), "\(plan) on \(sql)")
                    #expect(got.allSatisfy { allowed.contains($0.id) }, "\(plan) returned a non-matching row for \(sql)")
                    #expect(Set(got.map(\.id)).count == got.count)
                    if plan == .exact { #expect(got == exact) }
                    hits += Set(exact.map(\.id)).intersection(got.map(\.id)).count
                    total += exact.count
                }
                let recall = total == 0 ? 1 : Double(hits) / Double(total)
                #expect(recall >= (plan == .exact ? 1 : 0.9), "\(plan) recall \(recall) on \(sql)")
            }
            // The planner's own choice keeps the same guarantees.
            for i in 0..<4 {
                let got = try coll.search(data.query(i), k: 10, filter: f)
                #expect(got.count == min(10, matches))
                #expect(got.allSatisfy { allowed.contains($0.id) })
            }
        }
    }

    @Test func exactResultsAreIdenticalAloneAndBatched() throws {
        let (store, coll, data) = try Self.make("planner-identical", recipe: "HNSW8")
        var queries: [Query] = []
        for i in 0..<data.queryCount {
            let sql = Self.predicates[i % Self.predicates.count]
            queries.append(Query(vector: data.query(i), k: 7 + i % 5, filter: i % 4 == 3 ? nil : try Filter(sql: sql)))
        }
        // Repeat the queries, each copy nudged (identical queries would be searched once), so
        // that groups exceed one shared pass.
        let many = (0..<6).flatMap { copy in
            queries.map { q in Query(vector: q.vector.map { $0 + Float(copy) * 1e-3 }, k: q.k, filter: q.filter) }
        }
        let batched = try coll.search(many, options: SearchOptions(exact: true))
        for (i, q) in many.enumerated() {
            let alone = try coll.search(q.vector, k: q.k, filter: q.filter, options: SearchOptions(exact: true))
            #expect(batched[i] == alone, "query \(i)")
        }
        // One search thread or several: the same lists.
        let path = store.path
        store.close()
        var config = Store.Configuration()
        config.searchThreads = 1
        let single = try Store(path: path, configuration: config)
        defer { single.close() }
        #expect(try single.collection("c").search(many, options: SearchOptions(exact: true)) == batched)
    }

    @Test func identicalQueriesAreSearchedOnceAndGetTheSameResults() throws {
        let (store, coll, data) = try Self.make("planner-duplicates", recipe: "HNSW8,PQ8x4fs,Refine")
        defer { store.close() }
        let f = try Filter(sql: "price < 40")
        // Four distinct queries, each asked three times, interleaved; one differs only by k and
        // one only by predicate, so they are not duplicates.
        var queries: [Query] = []
        for _ in 0..<3 {
            for i in 0..<4 { queries.append(Query(vector: data.query(i), k: 10, filter: i % 2 == 0 ? f : nil)) }
        }
        queries.append(Query(vector: data.query(0), k: 9, filter: f))
        queries.append(Query(vector: data.query(0), k: 10, filter: try Filter(sql: "price < 41")))
        for options in [SearchOptions(exact: true), SearchOptions(), SearchOptions(plan: .codes), SearchOptions(plan: .filteredGraph)] {
            let e = try coll.explainBatch(queries, options: options)
            for i in 0..<4 {
                #expect(e.results[i] == e.results[i + 4] && e.results[i] == e.results[i + 8], "query \(i)")
            }
            #expect(e.results[12].count == 9 && e.results[13].count == 10)
            #expect(e.groups.map(\.duplicates).reduce(0, +) == 8)
            #expect(e.groups.map(\.plan.queries).reduce(0, +) == 6)
            if options.exact {
                for (i, q) in queries.enumerated() {
                    #expect(e.results[i] == (try coll.search(q.vector, k: q.k, filter: q.filter, options: options)))
                }
            }
            // The same batch with the repeats sharing one array's storage (recognised by address)
            // and the last repeat a fresh copy (recognised by its bits): the same answers.
            let vectors = (0..<4).map { data.query($0) }
            var sharing: [Query] = []
            for r in 0..<3 {
                for i in 0..<4 {
                    let v = r < 2 ? vectors[i] : Array(vectors[i].map { $0 })
                    sharing.append(Query(vector: v, k: 10, filter: i % 2 == 0 ? f : nil))
                }
            }
            sharing.append(Query(vector: vectors[0], k: 9, filter: f))
            sharing.append(Query(vector: vectors[0], k: 10, filter: try Filter(sql: "price < 41")))
            let s = try coll.explainBatch(sharing, options: options)
            #expect(s.results == e.results)
            #expect(s.groups.map(\.duplicates).reduce(0, +) == 8)
            // A vector sharing storage with an invalid one is not let through unchecked.
            let bad = [Float](repeating: .nan, count: vectors[0].count)
            #expect(throws: SextantError.self) { try coll.search([Query(vector: bad, k: 10), Query(vector: bad, k: 10)]) }
        }
    }

    @Test func explainReportsEachPlanKind() throws {
        let (store, coll, data) = try Self.make("planner-explain", recipe: "HNSW8,PQ8x4fs,Refine")
        defer { store.close() }
        let f = try Filter(sql: "price < 40")
        let matches = try coll.count(where: f)
        for plan in PlanKind.allCases {
            let e = try coll.explainSearch(data.query(1), k: 10, filter: f, options: SearchOptions(plan: plan))
            #expect(e.plan.kind == plan && e.plan.forced)
            #expect(e.plan.matches == matches && e.plan.liveRows == 3000)
            #expect(e.results.count == 10)
            #expect(e.rowsScored > 0)
            #expect(e.stages.map(\.name) == ["prepare", "filter", "plan", "search", "merge"])
            // The partition-major pass is estimated where it is weighed: in a batch, or forced.
            #expect(Set(e.plan.estimates.map(\.kind)).union([.partitionMajor]) == Set(PlanKind.allCases))
            #expect(e.plan.estimates.allSatisfy { $0.seconds > 0 && $0.seconds.isFinite })
            #expect(e.description.contains("plan: \(plan.rawValue) (forced)"))
            #expect(e.partitionsTouched == 1)
            switch plan {
            case .exact, .partitionMajor: #expect(e.rowsScored == matches)
            case .codes: #expect(e.rowsScored >= matches)
            case .filteredGraph, .postFilter: #expect(e.rowsScored < 3000 * 4)
            }
            #expect(e.results == (try coll.search(data.query(1), k: 10, filter: f, options: SearchOptions(plan: plan))))
        }
        // Unforced: the cheapest estimate is the plan, and the text says the planner chose.
        let auto = try coll.explainSearch(data.query(1), k: 10, filter: f)
        #expect(!auto.plan.forced && auto.plan.kind == auto.plan.estimates[0].kind)
        #expect(auto.description.contains("chosen by the planner"))
        // A predicate nothing matches: the exact plan, no rows scored, no results.
        let none = try coll.explainSearch(data.query(1), k: 10, filter: try Filter(sql: "category = 'none'"))
        #expect(none.plan.kind == .exact && none.plan.matches == 0 && none.rowsScored == 0 && none.results.isEmpty)
        // A batch: one group per predicate, in order of first appearance, with the group sizes.
        let qs = (0..<9).map { Query(vector: data.query($0), k: 5, filter: $0 % 3 == 0 ? nil : f) }
        let b = try coll.explainBatch(qs)
        #expect(b.groups.map(\.plan.queries) == [3, 6])
        #expect(b.groups.map(\.predicate) == ["", f.toSQL()])
        #expect(b.results.count == 9 && b.results.allSatisfy { $0.count == 5 })
    }

    /// 4-bit codes (fast scan) and 8-bit codes (interleaved byte tables).
    @Test(arguments: ["PQ8x4fs,Refine", "PQ8x8,Refine"])
    func sharedCodePassKeepsTheGuaranteesOfTheCodesPlan(recipe: String) throws {
        let (store, coll, data) = try Self.make("planner-shared-codes", recipe: recipe)
        defer { store.close() }
        for sql in ["price < 40", "category = 'none'", "in_stock = TRUE"] {
            let f = try Filter(sql: sql)
            let matches = try coll.count(where: f)
            let allowed = Set(try coll.search(data.query(0), k: max(1, matches), filter: f, options: SearchOptions(exact: true)).map(\.id))
            // 140 queries: more than one shared pass of 128, and 8-bit blocks of 32 with a
            // partial last one.
            let qs = (0..<140).map { Query(vector: data.query($0 % data.queryCount), k: 10, filter: f) }
            let b = try coll.explainBatch(qs, options: SearchOptions(plan: .codes))
            #expect(b.groups.count == 1 && b.groups[0].plan.kind == .codes)
            let pass = recipe.contains("fs") ? "shared fast-scan pass" : "shared code pass"
            if matches > 0 { #expect(b.groups[0].detail.hasPrefix(pass), "\(b.groups[0].detail)") }
            var hits = 0, total = 0
            for (i, got) in b.results.enumerated() {
                #expect(got.count == min(10, matches))
                #expect(got.allSatisfy { allowed.contains($0.id) })
                let exact = try coll.search(qs[i].vector, k: 10, filter: f, options: SearchOptions(exact: true))
                // Re-ranked distances are exact.
                for r in got { #expect(exact.contains(r) || r.distance >= (exact.last?.distance ?? 0)) }
                hits += Set(exact.map(\.id)).intersection(got.map(\.id)).count
                total += exact.count
            }
            #expect(total == 0 || Double(hits) / Double(total) >= 0.9, "recall \(Double(hits) / Double(max(total, 1))) on \(sql)")
        }
    }

    @Test func forcedPlansNeedTheirIndexes() throws {
        let (store, coll, data) = try Self.make("planner-flat", recipe: "Flat", rows: 300)
        defer { store.close() }
        for plan in [PlanKind.filteredGraph, .postFilter, .codes] {
            let e = sextantError { _ = try coll.search(data.query(0), k: 5, options: SearchOptions(plan: plan)) }
            #expect(e?.code == .invalidArgument, "\(plan)")
        }
        // A flat collection needs no cost model: every query is exact.
        let e = try coll.explainSearch(data.query(0), k: 5)
        #expect(e.plan.kind == .exact && e.results.count == 5)
    }

    @Test func costModelIsStoredAndReusedAcrossOpens() throws {
        let (store, coll, _) = try Self.make("planner-cost", recipe: "HNSW8", rows: 2000)
        let path = store.path
        // buildIndex measured and stored it.
        let measured = try coll.costModel()
        #expect(measured.liveRows == 2000)
        #expect(measured.exactPerRow > 0 && measured.tiledPerPair > 0)
        // The partition-major pass measured as it runs: a positive cost per pair, none negative per entry.
        let passPair = try #require(measured.passPerPair)
        #expect(passPair > 0 && (measured.passPerEntry ?? -1) >= 0)
        let points = try #require(measured.graphBySelectivity)
        #expect(points.first?.selectivity == 1 && points.count >= 2)
        #expect(zip(points, points.dropFirst()).allSatisfy { $0.selectivity > $1.selectivity })
        store.close()
        let reopened = try Store(path: path)
        defer { reopened.close() }
        let again = try reopened.collection("c").costModel()
        #expect(again.exactPerRow == measured.exactPerRow && again.calibrationSeconds == measured.calibrationSeconds)
        #expect(again.passPerPair == measured.passPerPair && again.passPerEntry == measured.passPerEntry)
        // A record that does not decode is measured again, never trusted.
        let c = try reopened.collection("c")
        try reopened.env.write { txn in try txn.put(reopened.db.index, key: c.indexKey("cost"), value: Array("{\"version\":1}".utf8)) }
        reopened.costModels.drop(c.cid)
        let fresh = try c.costModel()
        #expect(fresh.liveRows == 2000 && fresh.graphBySelectivity != nil)
        #expect(try reopened.check(deep: true).isConsistent)
    }

    @Test func executionsCorrectGraphEstimates() throws {
        let cache = CostModelCache()
        #expect(cache.correction(1, .filteredGraph, selectivity: 0.01) == 1)
        cache.observe(1, .filteredGraph, selectivity: 0.01, seconds: 4e-3, estimate: 1e-3)
        // A moving average from 1 (weight 0.2 in log space): one run 4x slower moves it 4^0.2.
        let once = pow(4.0, 0.2)
        #expect(abs(cache.correction(1, .filteredGraph, selectivity: 0.01) - once) < 1e-9)
        // Same band (log2 rounds to the same integer), other bands and plans untouched.
        #expect(abs(cache.correction(1, .filteredGraph, selectivity: 0.011) - once) < 1e-9)
        #expect(cache.correction(1, .filteredGraph, selectivity: 0.5) == 1)
        #expect(cache.correction(1, .postFilter, selectivity: 0.01) == 1)
        #expect(cache.correction(2, .filteredGraph, selectivity: 0.01) == 1)
        // Scans are modelled directly; they are not corrected.
        cache.observe(1, .exact, selectivity: 0.01, seconds: 1, estimate: 1e-3)
        #expect(cache.correction(1, .exact, selectivity: 0.01) == 1)
        // A moving average: one fast run moves the factor part of the way back.
        cache.observe(1, .filteredGraph, selectivity: 0.01, seconds: 1e-3, estimate: 1e-3)
        let c = cache.correction(1, .filteredGraph, selectivity: 0.01)
        #expect(c > 1 && c < once)
        // A cold run 1,000x slower counts as 4x: it cannot price the plan out on its own.
        cache.observe(1, .postFilter, selectivity: 0.01, seconds: 1, estimate: 1e-3)
        #expect(abs(cache.correction(1, .postFilter, selectivity: 0.01) - once) < 1e-9)
        // Repeated slow runs do converge towards their ratio (capped at 4x per run).
        for _ in 0..<60 { cache.observe(1, .postFilter, selectivity: 0.01, seconds: 3e-3, estimate: 1e-3) }
        #expect(abs(cache.correction(1, .postFilter, selectivity: 0.01) - 3) < 0.01)
        cache.drop(1)
        #expect(cache.correction(1, .filteredGraph, selectivity: 0.01) == 1)
    }

    @Test func sharedBlockPointersSurviveWritesAndMapGrowth() throws {
        // A 1 MiB map grows many times under these writes; searches between them reuse block
        // pointers resolved by earlier transactions only within one snapshot and map size.
        var config = Store.Configuration()
        config.initialMapSize = 1 << 20
        let store = try Store(path: temporaryStorePath("planner-pointers"), configuration: config)
        defer { store.close() }
        let data = SyntheticDataset(rows: 3000, dimension: 32, queries: 6, clusters: 8, seed: 29)
        let coll = try store.createCollection("c", dimension: 32, metric: .l2, schema: SyntheticDataset.schema, indexRecipe: "PQ8x8,Refine")
        var rows: [Int: [Float]] = [:]
        for start in stride(from: 0, to: 3000, by: 300) {
            let batch = (start..<(start + 300)).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) }
            try coll.upsert(batch)
            for r in batch { rows[Int(r.id)] = r.vector }
            if start == 600 { try coll.buildIndex() }
            // Overwrite some earlier rows in place: their blocks are rewritten at new pages.
            let moved = (0..<20).map { (start / 2 + $0 * 7) % (start + 300) }
            try coll.upsert(moved.map { Row(id: UInt64($0), vector: data.vector(($0 + 1) % 3000), attributes: data.attributes[$0]) })
            for m in moved { rows[m] = data.vector((m + 1) % 3000) }
            for i in 0..<data.queryCount {
                let q = data.query(i)
                // Brute force over what was written.
                let truth = rows.map { (id, v) -> (Float, UInt64) in (zip(q, v).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }, UInt64(id)) }
                    .sorted { $0 < $1 }.prefix(5).map(\.1)
                let got = try coll.search(q, k: 5, options: SearchOptions(exact: true)).map(\.id)
                #expect(got == truth, "after \(start + 300) rows")
                // Twice: the second search takes every block pointer from the shared table.
                #expect(try coll.search(q, k: 5, options: SearchOptions(exact: true)).map(\.id) == truth)
                if start >= 600 { #expect(try coll.search(q, k: 5, options: SearchOptions(plan: .codes)).count == 5) }
            }
        }
        #expect(try store.check(deep: true).isConsistent)
    }

    @Test func cachedPredicateResultsFollowWrites() throws {
        let (store, coll, data) = try Self.make("planner-cache", recipe: "HNSW8", rows: 1500)
        defer { store.close() }
        let f = try Filter(sql: "category = 'cat7'")
        let before = try coll.search(data.query(2), k: 3, filter: f)
        let n0 = try coll.count(where: f)
        #expect(try coll.search(data.query(2), k: 3, filter: f) == before)
        // A new matching row equal to the query must be first right after the write.
        try coll.upsert(Row(id: 77_777, vector: data.query(2), attributes: ["category": .string("cat7")]))
        #expect(try coll.search(data.query(2), k: 3, filter: f).first?.id == 77_777)
        #expect(try coll.count(where: f) == n0 + 1)
        // And gone right after it no longer matches.
        try coll.upsert(Row(id: 77_777, vector: data.query(2), attributes: ["category": .string("cat8")]))
        #expect(try coll.search(data.query(2), k: 3, filter: f).allSatisfy { $0.id != 77_777 })
        #expect(try coll.count(where: f) == n0)
        try coll.delete([77_777])
        #expect(try coll.search(data.query(2), k: 3, filter: try Filter(sql: "category = 'cat8'")).allSatisfy { $0.id != 77_777 })
    }

    /// Calibration runs plans through `PlanProbe`: each probe run answers as the search does
    /// with that plan forced, and the codes recall's one-scan shortcut (every re-rank depth from
    /// the deepest candidate list) equals the codes plan run at each depth.
    @Test func calibrationProbeRunsThePlansTheSearchRuns() throws {
        let (store, coll, data) = try Self.make("planner-probe", recipe: "HNSW8,PQ8x4fs,Refine")
        defer { store.close() }
        let f = try Filter(sql: Self.predicates[1])
        let bound = try f.bind(to: coll.schema)
        try store.env.read { txn in
            let live = try IndexReader(txn: txn, db: coll.db.postings, cid: coll.cid).live()
            let matches = try coll.match(txn, bound).slots
            let probe = try PlanProbe(coll, txn, live: live.count)
            let pq = try #require(try coll.quantizer(txn))
            for i in 0..<6 {
                let q = VectorCollection.PreparedQuery(index: 0, vectorID: 0, vector: VectorCollection.normalized(data.query(i)), k: 10,
                                                       predicate: nil, filter: nil)
                func ids(_ h: TopK) -> [UInt64] { h.sortedResults().map(\.id) }
                func searched(_ plan: PlanKind, ef: Int? = nil, rerank: Int? = nil) throws -> [UInt64] {
                    try coll.search(data.query(i), k: 10, filter: f, options: SearchOptions(rerank: rerank, ef: ef, plan: plan)).map(\.id)
                }
                let exact = try probe.run(ExactPlan(), [q], candidates: matches, restricted: true).heaps[0]
                #expect(ids(exact) == (try searched(.exact)))
                for ef in [16, 64] {
                    let g = try probe.run(FilteredGraphPlan(), [q], candidates: matches, restricted: true, setKey: i,
                                          PlanProbe.Settings(ef: ef)).heaps[0]
                    #expect(ids(g) == (try searched(.filteredGraph, ef: ef)))
                    let p = try probe.run(PostFilterPlan(), [q], candidates: matches, restricted: true, setKey: i,
                                          PlanProbe.Settings(ef: ef)).heaps[0]
                    #expect(ids(p) == (try searched(.postFilter, ef: ef)))
                }
                let deepest = try coll.codeCandidates(q, pq: pq, keep: 200, candidates: matches, txn, session: ScanSession(try CollectionSnapshot(coll, txn)))
                for depth in [10, 40, 200] {
                    let planned = try probe.run(CodesPlan(), [q], candidates: matches, restricted: true,
                                                PlanProbe.Settings(rerank: depth, refine: true)).heaps[0]
                    var prefix = TopK(k: depth)
                    for c in deepest.sortedResults().prefix(depth) { _ = prefix.insert(distance: c.distance, id: c.id) }
                    let shortcut = try coll.rerankCodes(q, prefix, rerank: depth, txn, vectors: try coll.vectorReader(txn))
                    #expect(ids(planned) == ids(shortcut), "re-rank depth \(depth)")
                    // The search runs the plan query by query or as a shared code pass, as
                    // its cost model (measured, so timing-dependent) finds cheaper; the probe
                    // runs the same path.
                    let e = try coll.explainSearch(data.query(i), k: 10, filter: f, options: SearchOptions(rerank: depth, plan: .codes))
                    let asSearched = e.detail.contains("shared fast-scan pass") || e.detail.contains("shared code pass")
                        ? try probe.run(CodesPlan(), [q], candidates: matches, restricted: true,
                                        PlanProbe.Settings(rerank: depth, refine: true, sharedCodePass: true)).heaps[0]
                        : planned
                    #expect(ids(asSearched) == e.results.map(\.id), "re-rank depth \(depth), \(e.detail)")
                }
            }
        }
    }
}
