import Foundation
import Testing
@testable import Sextant
import SextantTestSupport

/// `HNSW…,SQ8` collections: the graph traversed over 8-bit codes and the beam re-ranked with the
/// full vectors, against the exact plan; codes kept in step with writes, deletes and
/// `partition`; the recipe's rules.
@Suite struct ScalarTraversalTests {
    @Test func recipeRules() throws {
        #expect(try IndexRecipe(parsing: "sq8, hnsw8").description == "HNSW8,SQ8")
        for bad in ["SQ8", "HNSW8,PQ4x8,SQ8", "HNSW8,SQ8,SQ8", "Flat,SQ8"] {
            #expect(throws: SextantError.self, "\(bad)") { try IndexRecipe(parsing: bad) }
        }
        let store = try Store(path: temporaryStorePath("sq8-limits"))
        defer { store.close() }
        let e = sextantError { try store.createCollection("c", dimension: 40_000, metric: .l2, indexRecipe: "HNSW8,SQ8") }
        #expect(e?.code == .invalidArgument)
        // A multi-vector collection's encoding likewise (40 · 2^10 · 1 = 40,960 dimensions).
        let fde = FDEParameters(tokenDimension: 4, repetitions: 40, simhashBits: 10, projectionDimension: 1, finalDimension: nil, seed: 1)
        #expect(sextantError { try store.createMultiVectorCollection("m", fde: fde, indexRecipe: "HNSW8,SQ8") }?.code == .invalidArgument)
        #expect(try store.createMultiVectorCollection("m", fde: fde, indexRecipe: "HNSW8").dimension == 40_960)
    }

    @Test(arguments: [Metric.l2, .ip, .cosine])
    func searchesKeepRecallAndReportExactDistances(metric: Metric) throws {
        let store = try Store(path: temporaryStorePath("sq8-\(metric)"))
        defer { store.close() }
        let data = SyntheticDataset(rows: 3000, dimension: 24, queries: 40, clusters: 20, seed: 11)
        let coll = try store.createCollection("c", dimension: 24, metric: metric, schema: SyntheticDataset.schema, indexRecipe: "HNSW8,SQ8")
        try coll.upsert((0..<2000).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
        try coll.buildIndex(threads: 2)
        #expect(try store.check(deep: true).isConsistent)
        #expect(try GraphSearchTests.recall(coll, data) >= 0.9)
        // Every reported distance is the exact plan's for that row (the beam is re-ranked).
        for i in 0..<10 {
            let got = try coll.search(data.query(i), k: 10, options: SearchOptions(ef: 32, plan: .filteredGraph))
            let exact = try coll.search(data.query(i), k: 2000, options: SearchOptions(exact: true))
            let byID = Dictionary(uniqueKeysWithValues: exact.map { ($0.id, $0.distance) })
            #expect(got.allSatisfy { byID[$0.id] == $0.distance })
            #expect(zip(got, got.dropFirst()).allSatisfy { $0.distance <= $1.distance })
        }
        // Filtered plans return min(k, matches) matching rows.
        for sql in ["category = 'cat0'", "price < 3", "category = 'none'"] {
            let f = try Filter(sql: sql)
            let matches = try coll.count(where: f)
            for plan in [PlanKind.filteredGraph, .postFilter] {
                let got = try coll.search(data.query(1), k: 10, filter: f, options: SearchOptions(plan: plan))
                #expect(got.count == min(10, matches), "\(plan) \(sql)")
            }
            #expect(try GraphSearchTests.recall(coll, data, filter: f) >= 0.85, "\(sql)")
        }
        // The codes plan over SQ8 codes: the matches' codes scored, the best re-ranked, so the
        // rows are the matches' and every distance is the exact plan's; re-rank 0 reports the
        // codes' own distances.
        for sql in ["category = 'cat0'", "price < 3", "category = 'none'", "price < 50"] {
            let f = try Filter(sql: sql)
            let matches = try coll.count(where: f)
            var hits = 0, total = 0
            for i in 0..<10 {
                let got = try coll.search(data.query(i), k: 10, filter: f, options: SearchOptions(plan: .codes))
                let exact = try coll.search(data.query(i), k: max(1, matches), filter: f, options: SearchOptions(exact: true))
                let byID = Dictionary(uniqueKeysWithValues: exact.map { ($0.id, $0.distance) })
                #expect(got.count == min(10, matches), "codes \(sql)")
                #expect(got.allSatisfy { byID[$0.id] == $0.distance }, "codes \(sql): a row outside the matches or an inexact distance")
                hits += Set(exact.prefix(10).map(\.id)).intersection(got.map(\.id)).count
                total += min(10, exact.count)
                let raw = try coll.search(data.query(i), k: 10, filter: f, options: SearchOptions(rerank: 0, plan: .codes))
                #expect(raw.count == min(10, matches) && raw.allSatisfy { byID[$0.id] != nil })
            }
            #expect(Double(hits) >= 0.95 * Double(total), "codes \(sql): \(hits) of \(total)")
            let e = try coll.explainSearch(data.query(0), k: 10, filter: f, options: SearchOptions(plan: .codes))
            #expect(matches == 0 || e.detail.contains("SQ8 codes scored"), "\(e.detail)")
        }
        // Calibration measures the plan: its cost per code and its recall by re-rank depth.
        let model = try coll.costModel()
        #expect(model.codePerRow != nil && model.recall?.curves[.codes] != nil)
    }

    @Test func codesFollowWritesDeletesAndPartition() throws {
        let store = try Store(path: temporaryStorePath("sq8-writes"))
        defer { store.close() }
        let data = SyntheticDataset(rows: 2600, dimension: 16, queries: 30, clusters: 16, seed: 4)
        let coll = try store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema, indexRecipe: "HNSW8,SQ8")
        try coll.upsert((0..<1500).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
        try coll.buildIndex(threads: 2)
        try coll.upsert((1500..<2500).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
        try coll.delete((0..<2500).filter { $0 % 4 == 0 }.map(UInt64.init))
        // Replaced vectors get new codes.
        try coll.upsert((1..<200).map { Row(id: UInt64($0 * 4 + 1), vector: data.vector(($0 * 13) % 2600), attributes: data.attributes[$0]) })
        var report = try store.check(deep: true)
        #expect(report.isConsistent, "\(report.problems.prefix(5))")
        #expect(try GraphSearchTests.recall(coll, data) >= 0.9)
        try coll.upsert(Row(id: 1_000_000, vector: data.query(5), attributes: [:]))
        #expect(try coll.search(data.query(5), k: 1).first?.id == 1_000_000)
        // Partition writes every row again at new slots: the codes move with them.
        try coll.partition(workload: [try Filter(sql: "category = 'cat1'"), try Filter(sql: "price < 10")], maxPartitions: 4, minRows: 200)
        report = try store.check(deep: true)
        #expect(report.isConsistent, "\(report.problems.prefix(5))")
        #expect(try GraphSearchTests.recall(coll, data) >= 0.9)
    }

    /// A damaged quantizer record is a typed error, not a crash.
    @Test func damagedQuantizerIsCorrupted() throws {
        let store = try Store(path: temporaryStorePath("sq8-damaged"))
        defer { store.close() }
        let data = SyntheticDataset(rows: 300, dimension: 8, queries: 2, clusters: 4, seed: 2)
        let coll = try store.createCollection("c", dimension: 8, metric: .l2, indexRecipe: "HNSW4,SQ8")
        try coll.upsert((0..<300).map { Row(id: UInt64($0), vector: data.vector($0)) })
        try coll.buildIndex(threads: 1)
        try store.env.write { txn in try txn.put(store.db.index, key: coll.indexKey("sq8"), value: [1, 0, 0, 0, 0, 0, 0, 0, 9, 9]) }
        #expect(sextantError { _ = try coll.search(data.query(0), k: 3, options: SearchOptions(plan: .filteredGraph)) }?.code == .corrupted)
        #expect(try !store.check().isConsistent)
    }
}
