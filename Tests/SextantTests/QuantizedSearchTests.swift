import Foundation
import Testing
@testable import Sextant
import SextantTestSupport

/// PQ collections against the exact plan: recall, result counts under filters, and codes kept
/// in step with every write.
@Suite struct QuantizedSearchTests {
    static func make(_ name: String, metric: Metric, rows: Int = 1200) throws -> (Store, VectorCollection, SyntheticDataset) {
        let store = try Store(path: temporaryStorePath(name))
        let data = SyntheticDataset(rows: rows, dimension: 16, queries: 40, clusters: 24, seed: 11)
        let coll = try store.createCollection("c", dimension: 16, metric: metric, schema: SyntheticDataset.schema, indexRecipe: "PQ4x8,Refine")
        try coll.upsert((0..<rows).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
        return (store, coll, data)
    }

    @Test(arguments: [Metric.l2, .ip, .cosine])
    func codesPlusRerankFindTheExactNeighbours(metric: Metric) throws {
        let (store, coll, data) = try Self.make("pq-recall-\(metric)", metric: metric)
        defer { store.close() }
        // Before training, the approximate path answers exactly.
        #expect(try !coll.indexStatus().codesTrained)
        let q0 = data.query(0)
        #expect(try coll.search(q0, k: 10) == coll.search(q0, k: 10, options: SearchOptions(exact: true)))
        try coll.buildIndex()
        #expect(try coll.indexStatus().codesTrained)
        var hits = 0, total = 0
        for i in 0..<data.queryCount {
            let exact = try coll.search(data.query(i), k: 10, options: SearchOptions(exact: true))
            let approx = try coll.search(data.query(i), k: 10, options: SearchOptions(plan: .codes))
            #expect(approx.count == 10)
            hits += Set(exact.map(\.id)).intersection(approx.map(\.id)).count
            total += exact.count
            // Re-ranked distances are the exact ones.
            for r in approx { #expect(exact.contains(r) || r.distance >= exact.last!.distance) }
        }
        #expect(Double(hits) / Double(total) >= 0.9, "recall \(Double(hits) / Double(total))")
        // Without re-ranking the codes alone order the results.
        let raw = try coll.search(data.query(1), k: 10, options: SearchOptions(rerank: 0, plan: .codes))
        #expect(raw.count == 10)
        #expect(try store.check(deep: true).isConsistent)
    }

    @Test func filteredCodeSearchReturnsOnlyMatchesAndEnoughOfThem() throws {
        let (store, coll, data) = try Self.make("pq-filter", metric: .l2, rows: 1000)
        defer { store.close() }
        try coll.buildIndex()
        for sql in ["category = 'cat3'", "price < 5 AND in_stock = TRUE", "tags CONTAINS 'eco'", "category = 'nope'", "date BETWEEN 20200101 AND 20200110"] {
            let f = try Filter(sql: sql)
            let matches = try coll.count(where: f)
            let got = try coll.search(data.query(2), k: 10, filter: f, options: SearchOptions(plan: .codes))
            #expect(got.count == min(10, matches), "\(sql)")
            let allowed = Set(try coll.search(data.query(2), k: max(1, matches), filter: f, options: SearchOptions(exact: true)).map(\.id))
            #expect(got.allSatisfy { allowed.contains($0.id) }, "\(sql)")
        }
    }

    @Test func writesAfterTrainingKeepCodesCurrent() throws {
        let (store, coll, data) = try Self.make("pq-writes", metric: .l2, rows: 800)
        defer { store.close() }
        try coll.buildIndex()
        // A new row equal to a query is that query's nearest neighbour.
        let q = data.query(5)
        try coll.upsert(Row(id: 99_999, vector: q, attributes: ["category": "new"]))
        #expect(try coll.search(q, k: 1).first?.id == 99_999)
        // Moving it away (upsert in place) moves its codes too.
        try coll.upsert(Row(id: 99_999, vector: data.query(6), attributes: [:]))
        #expect(try coll.search(q, k: 1).first?.id != 99_999)
        #expect(try coll.search(data.query(6), k: 1).first?.id == 99_999)
        try coll.delete([99_999, 0, 1, 2])
        #expect(try coll.search(data.query(6), k: 5).allSatisfy { $0.id != 99_999 })
        // Slot reuse after deletes, then a retrain.
        try coll.upsert((0..<3).map { Row(id: UInt64(200_000 + $0), vector: data.query(7 + $0), attributes: [:]) })
        #expect(try coll.search(data.query(8), k: 1).first?.id == 200_001)
        #expect(try store.check(deep: true).isConsistent)
        try coll.buildIndex()
        #expect(try coll.search(data.query(8), k: 1).first?.id == 200_001)
        #expect(try store.check(deep: true).isConsistent)
    }

    @Test func misuseIsATypedError() throws {
        let store = try Store(path: temporaryStorePath("pq-misuse"))
        defer { store.close() }
        let flat = try store.createCollection("f", dimension: 4, metric: .l2)
        #expect(sextantError { try flat.buildIndex() }?.code == .invalidArgument)
        let pq = try store.createCollection("p", dimension: 6, metric: .l2, indexRecipe: "PQ4x8")
        try pq.upsert((0..<300).map { Row(id: UInt64($0), vector: [Float](repeating: Float($0), count: 6)) })
        #expect(sextantError { try pq.buildIndex() }?.code == .invalidArgument)  // 4 does not divide 6
        let small = try store.createCollection("s", dimension: 4, metric: .l2, indexRecipe: "PQ2x8")
        try small.upsert((0..<10).map { Row(id: UInt64($0), vector: [1, 2, 3, Float($0)]) })
        #expect(sextantError { try small.buildIndex() }?.code == .invalidArgument)  // too few rows
        #expect(sextantError { try small.search([1, 2, 3, 4], k: 1, options: SearchOptions(rerank: -1)) }?.code == .invalidArgument)
    }
}
