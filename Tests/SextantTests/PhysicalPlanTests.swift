import Testing
@testable import Sextant

/// The planner's estimates are a pure function of statistics and models: driven here with a
/// hand-made cost and recall model, no store.
@Suite struct PhysicalPlanTests {
    /// 1M rows; exact 0.05 µs a row; unfiltered traversal 20 µs + 1 µs per unit of ef; filtered
    /// traversal cost rising as selectivity falls.
    static func model(recall: RecallModel?) -> CostModel {
        var m = CostModel(exactPerRow: 5e-8, tiledPerRow: 4e-8, tiledPerPair: 1e-8, codePerRow: nil, codeBlockRepack: nil,
                          codeBlockScan: nil, codeSlotsPerBlock: nil,
                          graphBySelectivity: [.init(selectivity: 1, seconds: 8.4e-5, distances: 1_000),
                                               .init(selectivity: 0.1, seconds: 3e-4, distances: 4_000),
                                               .init(selectivity: 0.01, seconds: 2e-3, distances: 30_000)],
                          graphBase: 2e-5, graphPerEf: 1e-6, defaultEF: 64, liveRows: 1_000_000, calibrationSeconds: 0)
        m.recall = recall
        return m
    }

    /// Post-filter reaches 0.95 between ef 64 and 128 everywhere; filtered-graph only at 10 % and above.
    static let recall = RecallModel(curves: [
        .postFilter: [.init(selectivity: 1, points: [.init(knob: 64, recall: 0.9), .init(knob: 128, recall: 0.96)]),
                      .init(selectivity: 0.01, points: [.init(knob: 64, recall: 0.9), .init(knob: 128, recall: 0.96)])],
        .filteredGraph: [.init(selectivity: 0.1, points: [.init(knob: 64, recall: 0.97)]),
                         .init(selectivity: 0.01, points: [.init(knob: 64, recall: 0.6), .init(knob: 512, recall: 0.8)])],
    ], fromWorkload: true)

    static func context(matches: Int, queries: Int = 1, target: Double = 0.95, forced: PlanKind? = nil, recall: RecallModel? = recall) -> PlanContext {
        PlanContext(model: model(recall: recall), matches: matches, live: 1_000_000, queries: queries, k: 10, ef: nil, rerank: nil,
                    defaultRerank: 0, target: target, forced: forced, hasGraph: true, hasCodes: false, correction: { _, _ in 1 })
    }

    @Test func theCheapestPlanExpectedToReachTheTargetWins() {
        // 1 %: the filtered graph is not expected to reach 0.95 and is left out; post-filter at the
        // chord's ef between 64 (0.9) and 128 (0.96): 64 + (0.05 / 0.06) · 64 = 117.3 → 118.
        let one = planEstimates(Self.context(matches: 10_000))
        #expect(!one.contains { $0.kind == .filteredGraph })
        let post = try! #require(one.first { $0.kind == .postFilter })
        #expect(post.knob == 118 && abs((post.recall ?? 0) - 0.950625) < 1e-9)
        #expect(one.contains { $0.kind == .exact && $0.recall == 1 })
        #expect(zip(one, one.dropFirst()).allSatisfy { $0.seconds <= $1.seconds })
        // 10 %: the filtered graph reaches 0.97 at ef 64 and is cheaper than widening the beam tenfold.
        let ten = planEstimates(Self.context(matches: 100_000))
        #expect(ten.first?.kind == .filteredGraph && ten.first?.knob == 64)
        // 0.1 %: a thousand matches are cheaper scanned exactly than a beam of 128,000.
        #expect(planEstimates(Self.context(matches: 1_000)).first?.kind == .exact)
        // Forced, a plan whose curve never reaches the target runs at its largest measured knob.
        let forced = planEstimates(Self.context(matches: 10_000, forced: .filteredGraph))
        #expect(forced.first { $0.kind == .filteredGraph }?.knob == 512)
    }

    @Test func groupsShareTheExactPassAndTargetZeroUsesDefaults() {
        // 64 queries over the same 10,000 matches: one tiled pass, not 64 scans.
        let group = planEstimates(Self.context(matches: 10_000, queries: 64)).first { $0.kind == .exact }!
        #expect(abs(group.seconds - 10_000 * (4e-8 + 64 * 1e-8)) < 1e-12)
        // By time alone: the default beam and no expected recall.
        let byTime = planEstimates(Self.context(matches: 500_000, target: 0))
        let post = try! #require(byTime.first { $0.kind == .postFilter })
        #expect(post.knob == 64 && post.recall == nil)
        // Without a recall model the approximate plans keep their defaults too.
        #expect(planEstimates(Self.context(matches: 500_000, recall: nil)).contains { $0.kind == .filteredGraph && $0.knob == 64 })
        // A graph plan over no more matches than it scores exhaustively is exact by another path.
        let tiny = planEstimates(Self.context(matches: 100)).first { $0.kind == .filteredGraph }!
        #expect(tiny.recall == 1)
    }
}
