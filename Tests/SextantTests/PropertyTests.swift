import Foundation
import Testing
@testable import Sextant
import SextantTestSupport

/// Random operation sequences against the engine and a plain reference model, compared after
/// every step, with the store closed and reopened between steps.
@Suite struct PropertyTests {
    static let schema = try! Schema(parsing: "cat:string,n:int,x:double,b:bool,tags:[string],ints:[int]")
    static let values: [String: [AttributeValue]] = [
        "cat": ["a", "b", "c", "ünï", ""], "n": [-5, 0, 1, 2, 7, .int(Int64.max)], "x": [-1.5, 0.0, 2.25, 1e10],
        "b": [true, false], "tags": ["red", "blue", "x"], "ints": [1, 2, 3],
    ]

    static func randomRow(_ id: UInt64, dim: Int, _ rng: inout SeededRandom) -> Row {
        var attrs: [String: AttributeValue] = [:]
        for f in schema.fields where rng.unit() < 0.8 {
            let pool = values[f.name]!
            switch f.type {
            case .stringList: attrs[f.name] = .stringList((0..<Int(rng.next() % 3)).map { _ in pool[Int(rng.next() % UInt64(pool.count))] }.compactMap { if case .string(let s) = $0 { s } else { nil } })
            case .intList: attrs[f.name] = .intList((0..<Int(rng.next() % 3)).map { _ in Int64(rng.next() % 4) })
            default: attrs[f.name] = pool[Int(rng.next() % UInt64(pool.count))]
            }
        }
        // Small integers make distances exact in Float, so ties are real ties.
        let v = (0..<dim).map { _ in Float(Int(rng.next() % 7) - 3) }
        return Row(id: id, vector: v.allSatisfy { $0 == 0 } ? [Float](repeating: 1, count: dim) : v, attributes: attrs)
    }

    @Test(arguments: [Metric.l2, .ip, .cosine])
    func randomSequencesAgreeWithModel(metric: Metric) throws {
        let path = temporaryStorePath("prop-\(metric)")
        var store = try Store(path: path)
        let dim = 6
        var coll = try store.createCollection("p", dimension: dim, metric: metric, schema: PropertyTests.schema)
        var model = ReferenceModel(metric: metric, schema: PropertyTests.schema)
        var rng = SeededRandom(seed: UInt64(metric.rawValue.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) }))
        for step in 0..<250 {
            switch rng.next() % 10 {
            case 0, 1, 2:
                let n = 1 + Int(rng.next() % 20)
                let rows = (0..<n).map { _ in PropertyTests.randomRow(rng.next() % 80, dim: dim, &rng) }
                try coll.upsert(rows)
                for r in rows { model.upsert(r) }
            case 3:
                // A batch with one bad row in it changes nothing.
                var rows = (0..<3).map { _ in PropertyTests.randomRow(rng.next() % 80, dim: dim, &rng) }
                rows.insert(Row(id: 1, vector: [1]), at: Int(rng.next() % 3))
                #expect(sextantError { try coll.upsert(rows) }?.code == .dimensionMismatch)
            case 4:
                let ids = (0..<(1 + Int(rng.next() % 6))).map { _ in rng.next() % 80 }
                let n = try coll.delete(ids)
                var expected = 0
                for id in Set(ids) where model.delete(id) { expected += 1 }
                #expect(n == expected, "step \(step)")
            case 5:
                let id = rng.next() % 80
                let got = try coll.get(id)
                let want = model.rows[id]
                #expect(got?.vector == want?.vector, "step \(step)")
                #expect(got?.attributes == want?.attributes.filter { !$0.value.isNull }, "step \(step)")
            case 6:
                store.close()
                store = try Store(path: path)
                coll = try store.collection("p")
            default:
                let q = PropertyTests.randomRow(0, dim: dim, &rng).vector
                let k = 1 + Int(rng.next() % 12)
                let filter: Filter? = rng.unit() < 0.7 ? FilterGenerator.random(PropertyTests.schema, values: PropertyTests.values, using: &rng) : nil
                let got = try coll.search(q, k: k, filter: filter)
                let want = try model.search(q, k: k, filter: filter)
                #expect(got.count == want.count, "step \(step) \(String(describing: filter))")
                // Ids in the same order, up to ties that differ only in rounding of the distance.
                if got.map(\.id) != want.map(\.id) {
                    for (g, w) in zip(got, want) { #expect(abs(Double(g.distance) - w.distance) < 1e-5, "step \(step)") }
                }
                for (g, w) in zip(got, want) { #expect(abs(Double(g.distance) - w.distance) < 1e-4 * max(1, abs(w.distance))) }
            }
            #expect(try coll.count() == model.rows.count, "step \(step)")
        }
        #expect(try store.check().isConsistent)
        // Batch search equals one-by-one search (exact plans are identical alone or batched).
        let qs = (0..<40).map { i in Query(vector: PropertyTests.randomRow(0, dim: dim, &rng).vector, k: 5, filter: i % 3 == 0 ? nil : FilterGenerator.random(PropertyTests.schema, values: PropertyTests.values, using: &rng)) }
        let batch = try coll.search(qs)
        for (i, q) in qs.enumerated() { #expect(try coll.search(q.vector, k: q.k, filter: q.filter) == batch[i]) }
        store.close()
    }
}
