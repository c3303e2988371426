import Foundation
import Testing
@testable import Sextant
import SextantTestSupport

/// Recall-aware planning: the recall model's arithmetic, and the planner's choice against the
/// exact oracle and against forced plans on clustered data with predicates correlated,
/// anti-correlated and independent of the query, at two store sizes.
@Suite struct RecallPlanningTests {
    @Test func modelPicksTheSmallestKnobMeetingTheTargetConservatively() throws {
        let model = RecallModel(curves: [
            .filteredGraph: [
                RecallModel.Curve(selectivity: 1, points: [.init(knob: 16, recall: 0.9), .init(knob: 32, recall: 0.96), .init(knob: 64, recall: 0.99)]),
                // A measured dip (noise) is smoothed away: recall never falls with a wider beam.
                RecallModel.Curve(selectivity: 0.1, points: [.init(knob: 16, recall: 0.7), .init(knob: 32, recall: 0.85), .init(knob: 64, recall: 0.84),
                                                            .init(knob: 128, recall: 0.97)]),
            ],
        ])
        #expect(model.curves[.filteredGraph]![1].points.map(\.recall) == [0.7, 0.85, 0.85, 0.97])
        // Between the measured knobs around the target, the chord's knob: 16 + (0.05 / 0.06) · 16
        // = 29.3 → 30 (expected 0.9525), and 64 + (0.10 / 0.12) · 64 = 117.3 → 118.
        #expect(model.setting(.filteredGraph, selectivity: 1, k: 10, target: 0.95)?.knob == 30)
        #expect(model.setting(.filteredGraph, selectivity: 1, k: 10, target: 0.95).map { $0.recall >= 0.95 } == true)
        #expect(model.setting(.filteredGraph, selectivity: 0.1, k: 10, target: 0.95)?.knob == 118)
        // Between two bands the stricter one decides; below the lowest the lowest stands.
        #expect(model.setting(.filteredGraph, selectivity: 0.3, k: 10, target: 0.95)?.knob == 118)
        #expect(model.setting(.filteredGraph, selectivity: 0.001, k: 10, target: 0.95)?.knob == 118)
        // A measured knob that reaches the target exactly is its own answer.
        #expect(model.setting(.filteredGraph, selectivity: 1, k: 10, target: 0.96)?.knob == 32)
        // Nothing measured reaches 0.999: the plan is not eligible.
        #expect(model.setting(.filteredGraph, selectivity: 1, k: 10, target: 0.999) == nil)
        // k scales the knob; never below k.
        #expect(model.setting(.filteredGraph, selectivity: 1, k: 20, target: 0.95)?.knob == 59)
        #expect(model.setting(.filteredGraph, selectivity: 1, k: 100, target: 0.5)?.knob == 160)
        #expect(model.setting(.filteredGraph, selectivity: 1, k: 1, target: 0.95)?.knob == 30)
        #expect(model.expectedRecall(.filteredGraph, selectivity: 1, k: 1, knob: 32) == 0.96)
        // Expected recall interpolates between measured knobs and is the minimum of two bands.
        let r = try #require(model.expectedRecall(.filteredGraph, selectivity: 1, k: 10, knob: 48))
        #expect(abs(r - 0.975) < 1e-9)
        #expect(model.expectedRecall(.filteredGraph, selectivity: 0.3, k: 10, knob: 64) == 0.85)
        #expect(model.expectedRecall(.filteredGraph, selectivity: 1, k: 10, knob: 8) == 0)
        #expect(model.expectedRecall(.codes, selectivity: 1, k: 10, knob: 8) == nil)
        // The stored form round-trips; a damaged one is refused.
        #expect(RecallModel(json: model.json) == model)
        #expect(RecallModel(json: .object(["filtered-graph": .array([.array([.double(2), .array([])])])])) == nil)
        // Points made from stored rows aim at half the allowed misses; the workload's own vectors at the target.
        #expect(model.aim(for: 0.95) == 0.975)
        let measuredOnWorkload = RecallModel(curves: model.curves, fromWorkload: true)
        #expect(measuredOnWorkload.aim(for: 0.95) == 0.95)
        #expect(RecallModel(json: measuredOnWorkload.json) == measuredOnWorkload)
        #expect(RecallModel(json: .object(["fromWorkload": .int(1)])) == nil)
    }

    @Test func recallBoundIsBelowTheMeanBySampleSpread() {
        // Every query found everything: the bound is the mean.
        var all = RecallTally(knobs: 1)
        for _ in 0..<32 { all.add(0, 1) }
        #expect(all.lowerBounds(queries: 32) == [1])
        // Mean 0.9 with spread: the bound sits 1.645 standard errors below it.
        var mixed = RecallTally(knobs: 1)
        for i in 0..<32 { mixed.add(0, i % 2 == 0 ? 1.0 : 0.8) }
        let sd = (32.0 / 31.0 * 0.01).squareRoot()
        #expect(abs(mixed.lowerBounds(queries: 32)[0] - (0.9 - 1.645 * sd / 32.0.squareRoot())) < 1e-12)
    }

    /// A store of clustered vectors whose `band` attribute is the quantile of the first
    /// coordinate: `band >= 7` holds the rows near a query with a large first coordinate
    /// (correlated), `band <= 1` the rows far from it (anti-correlated); `even = TRUE` is
    /// independent of the vectors.
    static func make(rows: Int, tag: String) throws -> (Store, VectorCollection, [[Float]]) {
        let store = try Store(path: temporaryStorePath(tag))
        let data = SyntheticDataset(rows: rows, dimension: 16, queries: 0, clusters: 24, seed: 23)
        let firsts = (0..<rows).map { data.vector($0)[0] }.sorted()
        func band(_ x: Float) -> Int64 { Int64(min(9, firsts.firstIndex { $0 >= x }! * 10 / rows)) }
        let coll = try store.createCollection("c", dimension: 16, metric: .l2, schema: try Schema(parsing: "band:int,even:bool"),
                                              indexRecipe: "HNSW8,PQ8x4fs,Refine")
        try coll.upsert((0..<rows).map { i in
            Row(id: UInt64(i), vector: data.vector(i), attributes: ["band": .int(band(data.vector(i)[0])), "even": .bool(i % 2 == 0)])
        })
        try coll.buildIndex(threads: 2)
        // Queries: rows of the top band, moved a little (so none is a stored row).
        var rng = SeededRandom(seed: 5)
        let top = (0..<rows).filter { band(data.vector($0)[0]) == 9 }
        let queries = (0..<20).map { j in data.vector(top[(j * 37) % top.count]).map { $0 + Float(rng.next() % 100) / 500 - 0.1 } }
        return (store, coll, queries)
    }

    @Test(arguments: [2000, 8000])
    func plannerChoiceMeetsItsRecallTargetAgainstTheOracle(rows: Int) throws {
        let (store, coll, queries) = try Self.make(rows: rows, tag: "recall-plan-\(rows)")
        defer { store.close() }
        let model = try coll.calibrate()
        let recallModel = try #require(model.recall)
        print("recall planning, \(rows) rows: calibration \(String(format: "%.2f", model.calibrationSeconds)) s")
        #expect(recallModel.curves[.filteredGraph] != nil && recallModel.curves[.codes] != nil)
        for (family, sql) in [("correlated", "band >= 7"), ("anti-correlated", "band <= 1"), ("independent", "even = TRUE"), ("none", nil)] {
            let filter = try sql.map { try Filter(sql: $0) }
            let matches = try coll.count(where: filter)
            for target in [0.9, 0.95, 0.99] {
                var hits = 0, total = 0, expectedSum = 0.0
                var chosen: [PlanKind: Int] = [:]
                for q in queries {
                    let truth = try coll.search(q, k: 10, filter: filter, options: SearchOptions(exact: true))
                    let e = try coll.explainSearch(q, k: 10, filter: filter, options: SearchOptions(recall: target))
                    #expect(e.results.count == min(10, matches), "\(family): \(e.results.count) results")
                    let estimate = try #require(e.plan.estimates.first { $0.kind == e.plan.kind })
                    let expected = try #require(estimate.recall, "the chosen plan has an expected recall")
                    // The choice is the cheapest plan expected to meet the target.
                    #expect(expected >= target, "\(family) \(target): \(e.plan.kind) expected \(expected)")
                    for other in e.plan.estimates where (other.recall ?? 0) >= target {
                        #expect(estimate.seconds <= other.seconds, "\(family): \(other.kind) was cheaper and good enough")
                    }
                    // Never an approximate plan slower than the exact one.
                    let exactEstimate = try #require(e.plan.estimates.first { $0.kind == .exact })
                    #expect(estimate.seconds <= exactEstimate.seconds)
                    hits += Set(truth.map(\.id)).intersection(e.results.map(\.id)).count
                    total += truth.count
                    expectedSum += expected
                    chosen[e.plan.kind, default: 0] += 1
                    // The same query forced through each plan at the knob the planner chose for
                    // it runs and keeps min(k, matches).
                    if let knob = estimate.knob, e.plan.kind != .exact {
                        let opts = e.plan.kind == .codes ? SearchOptions(rerank: knob, plan: e.plan.kind) : SearchOptions(ef: knob, plan: e.plan.kind)
                        #expect(try coll.search(q, k: 10, filter: filter, options: opts).count == min(10, matches))
                    }
                }
                let measured = total == 0 ? 1 : Double(hits) / Double(total)
                // 20 queries: allow sampling noise below the target the model promised.
                #expect(measured >= target - 0.06, "\(rows) rows, \(family), target \(target): measured \(measured), expected \(expectedSum / Double(queries.count)), plans \(chosen)")
            }
        }
    }
}
