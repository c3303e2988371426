import Foundation
import Testing
@testable import Sextant
import SextantTestSupport
import SextantKernels

/// The partition-major pass: a pure planner that shares work only where vectors and blocks
/// coincide, and an executor whose results are the exact plan's, bit for bit, alone, batched,
/// split between threads, and on a partitioned twin.
@Suite struct PartitionMajorTests {
    /// Each vector comes with several predicates, as in HQI's workloads.
    static func sharedVectorBatch(_ data: SyntheticDataset) throws -> [Query] {
        let preds = PartitionTests.workload + ["date >= 0", "category = 'none'", "price BETWEEN 20 AND 30", "in_stock = FALSE"]
        var qs: [Query] = []
        for v in 0..<data.queryCount {
            for j in 0..<5 {
                let sql = preds[(v * 3 + j * 5) % preds.count]
                qs.append(Query(vector: data.query(v), k: 4 + (v + j) % 9, filter: j == 4 ? nil : try Filter(sql: sql)))
            }
        }
        return qs
    }

    @Test func plannerSharesWhereVectorsAndBlocksCoincide() {
        let planner = PartitionPassPlanner(slotBound: 4096, slotsPerBlock: 32, perRow: 1e-8, perPair: 1e-7)
        // Four predicates over the same 1,024 rows, the same 8 vectors: one pass does the work of one group.
        let alone = 8 * 1024 * 1e-7
        let same = (0..<4).map { _ in PartitionPassPlanner.Group(candidates: Bitmap(range: 0..<1024), vectors: Array(0..<8), seconds: alone) }
        let choice = planner.choose(same, vectorCount: 8)
        #expect(choice?.members.sorted() == [0, 1, 2, 3])
        #expect((choice?.seconds ?? .infinity) < 0.3 * 4 * alone)
        // Different vectors on disjoint rows: nothing is shared, the groups keep their plans.
        let disjoint = (0..<4).map { g in
            PartitionPassPlanner.Group(candidates: Bitmap(range: UInt32(g * 1024)..<UInt32((g + 1) * 1024)), vectors: [g], seconds: 1024 * 1e-7)
        }
        #expect(planner.choose(disjoint, vectorCount: 4) == nil)
        // A cheap approximate plan stays out: only the groups whose own plans cost more join.
        // (A group adding nothing new, same vectors and rows, joins at no cost.)
        var mixed = same
        mixed.append(.init(candidates: Bitmap(range: 1024..<2048), vectors: [8], seconds: 1e-6))
        #expect(planner.choose(mixed, vectorCount: 9)?.members.sorted() == [0, 1, 2, 3])
        mixed[4].seconds = 1
        #expect(planner.choose(mixed, vectorCount: 9)?.members.sorted() == [0, 1, 2, 3, 4])
        // The pass's bookkeeping per (block, group) entry counts against it: 4 groups × 32 blocks.
        var costly = planner
        costly.perEntry = alone / 32
        #expect(costly.cost(same, vectorCount: 8) > planner.cost(same, vectorCount: 8) + 3.9 * alone)
        #expect(costly.choose(same, vectorCount: 8) == nil)
    }

    @Test(arguments: ["Flat", "HNSW8,PQ8x4fs,Refine"])
    func passResultsAreTheExactPlans(recipe: String) throws {
        let tag = "pm-" + recipe.replacingOccurrences(of: ",", with: "-")
        let (s1, plain, s2, parted, data) = try PartitionTests.twins(tag, recipe: recipe)
        defer { s1.close(); s2.close() }
        let qs = try Self.sharedVectorBatch(data)
        try parted.partition(workload: qs.map(\.filter), maxPartitions: 12, minRows: 100)
        let exact = try plain.search(qs, options: SearchOptions(plan: .exact))
        // (The exact plan itself is checked against brute force by PropertyTests and PlannerTests.)
        for c in [plain, parted] {
            #expect(try c.search(qs, options: SearchOptions(plan: .partitionMajor)) == exact)
            // The planner's choice (pass or not) never returns fewer than min(k, matches) rows.
            let auto = try c.search(qs, options: SearchOptions(recall: 0.95))
            for (i, q) in qs.enumerated() {
                #expect(auto[i].count == min(q.k, exact[i].count), "query \(i)")
            }
        }
        for (i, q) in qs.enumerated() where i % 7 == 0 {
            #expect(try parted.search(q.vector, k: q.k, filter: q.filter, options: SearchOptions(plan: .partitionMajor)) == exact[i])
        }
        let explained = try parted.explainBatch(qs, options: SearchOptions(plan: .partitionMajor))
        #expect(explained.groups.allSatisfy { $0.plan.kind == .partitionMajor || $0.plan.matches == 0 })
        #expect(explained.groups.contains { $0.detail.contains("partition-major pass") })
    }
}
