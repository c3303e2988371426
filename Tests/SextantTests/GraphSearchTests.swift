import Foundation
import Testing
@testable import Sextant
import SextantTestSupport

/// HNSW collections against the exact plan: recall after a bulk build and after incremental
/// inserts, deletes and moves; exact result counts under filters; `check` on the stored graph.
@Suite struct GraphSearchTests {
    static func recall(_ coll: VectorCollection, _ data: SyntheticDataset, k: Int = 10, ef: Int = 64, filter: Filter? = nil) throws -> Double {
        var hits = 0, total = 0
        for i in 0..<data.queryCount {
            let exact = try coll.search(data.query(i), k: k, filter: filter, options: SearchOptions(exact: true))
            let approx = try coll.search(data.query(i), k: k, filter: filter, options: SearchOptions(ef: ef, plan: .filteredGraph))
            #expect(approx.count == exact.count)
            hits += Set(exact.map(\.id)).intersection(approx.map(\.id)).count
            total += exact.count
        }
        return total == 0 ? 1 : Double(hits) / Double(total)
    }

    @Test(arguments: [Metric.l2, .ip, .cosine])
    func bulkBuildThenIncrementalWritesKeepRecall(metric: Metric) throws {
        let store = try Store(path: temporaryStorePath("hnsw-\(metric)"))
        defer { store.close() }
        let data = SyntheticDataset(rows: 2500, dimension: 16, queries: 40, clusters: 20, seed: 5)
        let coll = try store.createCollection("c", dimension: 16, metric: metric, schema: SyntheticDataset.schema, indexRecipe: "HNSW8_64")
        try coll.upsert((0..<1500).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
        #expect(try !coll.indexStatus().graphBuilt)
        try coll.buildIndex(threads: 2)
        #expect(try coll.indexStatus().graphBuilt)
        #expect(try store.check().isConsistent)
        #expect(try Self.recall(coll, data) >= 0.9)
        // Incremental inserts in batches, then deletes (slots freed and reused), then moves.
        for start in stride(from: 1500, to: 2500, by: 250) {
            try coll.upsert((start..<(start + 250)).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
        }
        try coll.delete((0..<2500).filter { $0 % 3 == 0 }.map(UInt64.init))
        try coll.upsert((0..<2500).filter { $0 % 3 == 0 }.prefix(400).map { Row(id: UInt64($0), vector: data.vector(($0 + 7) % 2500), attributes: data.attributes[$0]) })
        try coll.upsert((1..<60).map { Row(id: UInt64($0 * 3 + 1), vector: data.vector(($0 * 11) % 2500), attributes: [:]) })
        let report = try store.check(deep: true)
        #expect(report.isConsistent, "\(report.problems.prefix(5))")
        #expect(try Self.recall(coll, data) >= 0.9)
        let stats = try #require(try coll.graphStatistics())
        #expect(stats.nodes == (try coll.count()))
        #expect(stats.unreachable == 0 && stats.problems == 0)
        #expect(stats.degrees.first.map { $0.maxDegree <= 16 && $0.nodes == stats.nodes } == true)
        // A new row equal to a query is found first.
        try coll.upsert(Row(id: 1_000_000, vector: data.query(3), attributes: [:]))
        #expect(try coll.search(data.query(3), k: 1).first?.id == 1_000_000)
    }

    /// An `HNSW8` collection "c" holding every row of `data`, its graph built.
    static func builtHNSW8(_ store: Store, _ data: SyntheticDataset) throws -> VectorCollection {
        let coll = try store.createCollection("c", dimension: 16, metric: .l2, schema: SyntheticDataset.schema, indexRecipe: "HNSW8")
        try coll.upsert((0..<data.count).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
        try coll.buildIndex(threads: 2)
        return coll
    }

    @Test func filteredGraphSearchReturnsMinKMatches() throws {
        let store = try Store(path: temporaryStorePath("hnsw-filter"))
        defer { store.close() }
        let data = SyntheticDataset(rows: 3000, dimension: 16, queries: 30, clusters: 20, seed: 9)
        let coll = try Self.builtHNSW8(store, data)
        for sql in ["category = 'cat0'", "in_stock = TRUE", "category = 'cat41' OR category = 'cat42'", "price < 3", "category = 'none'"] {
            let f = try Filter(sql: sql)
            let r = try Self.recall(coll, data, filter: f)
            #expect(r >= 0.9, "\(sql): recall \(r)")
        }
    }

    /// A predicate repeated across calls: its flat bitset is built in the context's memory
    /// the first time, kept by the store's cache the second and shared the third; every call
    /// gives the same rows as the first, and a write (a new snapshot) is never served the old
    /// bitset: rows the write took out of the set never come back.
    @Test func repeatedPredicateBitsetFollowsTheSnapshot() throws {
        let store = try Store(path: temporaryStorePath("hnsw-dense-cache"))
        defer { store.close() }
        let data = SyntheticDataset(rows: 3000, dimension: 16, queries: 6, clusters: 20, seed: 11)
        let coll = try Self.builtHNSW8(store, data)
        let f = try Filter(sql: "in_stock = TRUE")
        let graph = SearchOptions(ef: 400, plan: .filteredGraph)
        func both(_ q: Int) throws -> ([UInt64], [UInt64]) {
            (try coll.search(data.query(q), k: 10, filter: f, options: graph).map(\.id),
             try coll.search(data.query(q), k: 10, filter: f, options: SearchOptions(exact: true)).map(\.id))
        }
        let first = try both(0)
        for _ in 0..<3 { #expect(try both(0).0 == first.0) }
        #expect(Set(first.0) == Set(first.1))
        // Take the results out of the set (the write starts a new snapshot).
        try coll.upsert(first.0.map { Row(id: $0, vector: data.vector(Int($0)), attributes: ["in_stock": .bool(false)]) })
        for q in 0..<data.queryCount {
            for _ in 0..<3 {
                let (approx, exact) = try both(q)
                #expect(Set(approx).isDisjoint(with: first.0))
                #expect(Set(approx) == Set(exact), "query \(q)")
            }
        }
    }

    @Test func checkFindsADamagedGraph() throws {
        let path = temporaryStorePath("hnsw-damage")
        let store = try Store(path: path)
        defer { store.close() }
        let coll = try store.createCollection("c", dimension: 4, metric: .l2, indexRecipe: "HNSW4")
        var rows: [Row] = []
        for i in 0..<300 {
            let v: [Float] = [Float(i % 17), Float(i % 5), Float(i / 17), 1]
            rows.append(Row(id: UInt64(i), vector: v))
        }
        try coll.upsert(rows)
        try coll.buildIndex(threads: 1)
        #expect(try store.check().isConsistent)
        // Point slot 5's first level-0 edge at a slot that does not exist.
        try store.env.write { txn throws in
            let g = try #require(try coll.graph(txn))
            var list: [UInt32] = []
            try g.withNeighbors(of: 5, level: 0) { list = Array($0) }
            list[0] = 9_999
            try list.withUnsafeBufferPointer { try g.setNeighbors(of: 5, level: 0, to: $0) }
            try g.flush(store.db)
        }
        let report = try store.check()
        #expect(!report.isConsistent)
        #expect(report.problems.contains { $0.contains("dangling edge 5 -> 9999") })
    }
}
