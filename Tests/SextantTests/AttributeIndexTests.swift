import Foundation
import Testing
@testable import Sextant
import SextantTestSupport

/// The attribute indexes against row-by-row evaluation and the reference model.
@Suite struct AttributeIndexTests {
    static let schema = try! Schema(parsing: "s:string,i:int,d:double,b:bool,tags:[string],nums:[int],note:string-")
    static let long1 = String(repeating: "λ", count: 200) + "a"
    static let long2 = String(repeating: "λ", count: 200) + "b"
    /// Values rows take and literals predicates use: nulls, empty strings, NUL bytes, unicode
    /// (composed and decomposed forms differ by bytes), strings past the key limit sharing a
    /// prefix, extreme and negative numbers, -0.0, and literals absent from the data.
    static let values: [String: [AttributeValue]] = [
        "s": ["", "a", "ab", "b", "é", "e\u{301}", "x\u{0}y", "x", "\u{10FFFF}", .string(long1), .string(long2), "zz"],
        "i": [.int(.min), .int(.max), -1, 0, 1, 2, 3, 1_000_000, .double(2.5), .double(-0.0), .double(1e19)],
        "d": [-1e300, -2.5, -0.0, 0.0, 0.5, 1, 2.5, 1e300, .int(3), .int(.max), .int(9_007_199_254_740_993)],
        "b": [true, false],
        "tags": ["red", "blue", "", "é", .string(long1), .string(long2)],
        "nums": [-3, 0, 7, .int(.max), .double(7.0), .double(7.5)],
        "note": ["n1", "n2", ""],
    ]

    static func randomAttributes(_ rng: inout SeededRandom) -> [String: AttributeValue] {
        var attrs: [String: AttributeValue] = [:]
        for f in schema.fields where rng.unit() < 0.8 {
            let pool = values[f.name]!
            func pick() -> AttributeValue { pool[Int(rng.next() % UInt64(pool.count))] }
            switch f.type {
            case .stringList:
                // Empty lists, duplicates within a list.
                attrs[f.name] = .stringList((0..<Int(rng.next() % 4)).compactMap { _ in if case .string(let s) = pick() { s } else { nil } })
            case .intList:
                attrs[f.name] = .intList((0..<Int(rng.next() % 4)).compactMap { _ in if case .int(let x) = pick() { x } else { nil } })
            case .int:
                var v = pick()
                while case .double = v { v = pick() }  // the pool's doubles are literals only
                attrs[f.name] = v
            default:
                attrs[f.name] = pick()
            }
        }
        return attrs
    }

    /// Index evaluation == row evaluation == the reference model, for random predicates, while
    /// rows are inserted, replaced (attributes change), deleted (slots reused) and batches abort.
    @Test func indexEvaluationEqualsRowEvaluation() throws {
        let path = temporaryStorePath("attr-index")
        let store = try Store(path: path)
        defer { store.close() }
        let coll = try store.createCollection("c", dimension: 2, metric: .l2, schema: Self.schema)
        var model = ReferenceModel(metric: .l2, schema: Self.schema)
        var rng = SeededRandom(seed: 7)
        var predicates = 0
        for round in 0..<12 {
            // Writes: inserts and replacements, then deletes.
            let rows = (0..<60).map { _ in Row(id: rng.next() % 200, vector: [Float(rng.unit()), 1], attributes: Self.randomAttributes(&rng)) }
            try coll.upsert(rows)
            for r in rows { model.upsert(r) }
            let gone = (0..<15).map { _ in rng.next() % 200 }
            try coll.delete(gone)
            for id in gone { _ = model.delete(id) }
            // An aborted batch (one bad row) changes no index.
            var bad = (0..<5).map { _ in Row(id: rng.next() % 200, vector: [1, 1], attributes: Self.randomAttributes(&rng)) }
            bad.append(Row(id: 1, vector: [1, 1], attributes: ["i": "not a number"]))
            #expect(sextantError { try coll.upsert(bad) }?.code == .typeMismatch)

            for _ in 0..<40 {
                let filter = FilterGenerator.random(Self.schema, values: Self.values, depth: 3, using: &rng)
                guard (try? filter.bind(to: Self.schema)) != nil else { continue }
                predicates += 1
                let want = try model.matching(filter).count
                let byIndex = try coll.count(where: filter)
                let byScan = try coll.countByScan(where: filter)
                #expect(byIndex == want, "round \(round): \(filter.toSQL()) index \(byIndex) model \(want)")
                #expect(byScan == want, "round \(round): \(filter.toSQL()) scan \(byScan) model \(want)")
                let e = try coll.explain(filter)
                #expect(e.matchCount == want)
                // Exact search reads only the matching rows and agrees with the model.
                let got = try coll.search([0.5, 1], k: 7, filter: filter)
                let exp = try model.search([0.5, 1], k: 7, filter: filter)
                #expect(got.count == exp.count, "\(filter.toSQL())")
            }
            let report = try store.check(deep: true)
            #expect(report.isConsistent, "round \(round): \(report.problems.prefix(5))")
        }
        #expect(predicates > 300)
    }

    @Test func explainNamesTheIndexOfEachPart() throws {
        let path = temporaryStorePath("attr-explain")
        let store = try Store(path: path)
        defer { store.close() }
        let coll = try store.createCollection("c", dimension: 2, metric: .l2, schema: Self.schema)
        var rows: [Row] = []
        for i in 0..<100 {
            var a: [String: AttributeValue] = [:]
            a["s"] = .string("v\(i % 10)")
            a["i"] = .int(Int64(i))
            a["d"] = i % 7 == 0 ? .null : .double(Double(i) / 2)
            a["tags"] = .stringList(i % 2 == 0 ? ["even"] : [])
            a["note"] = .string("n\(i % 3)")
            rows.append(Row(id: UInt64(i), vector: [1, Float(i)], attributes: a))
        }
        try coll.upsert(rows)
        func plan(_ sql: String) throws -> FilterExplanation { try coll.explain(try Filter(sql: sql)) }

        let eq = try plan("s = 'v3'")
        #expect(eq.root.access == "posting lookup" && eq.matchCount == 10 && eq.rowsChecked == 0)
        let range = try plan("i BETWEEN 10 AND 19")
        #expect(range.root.access == "range scan" && range.matchCount == 10 && range.root.keysRead >= 10)
        let nulls = try plan("d IS NULL")
        #expect(nulls.root.access == "null list" && nulls.matchCount == 15)
        let not = try plan("NOT (tags CONTAINS 'even')")
        #expect(not.root.access == "complement" && not.matchCount == 50 && not.root.children.first?.access == "posting lookup")
        // An unindexed field is answered by checking rows, restricted by its indexed siblings.
        let mixed = try plan("note = 'n1' AND s = 'v1'")
        let mixedCount = try coll.countByScan(where: try Filter(sql: "note = 'n1' AND s = 'v1'"))
        #expect(mixed.root.access == "intersection" && mixed.matchCount == mixedCount)
        #expect(mixed.root.children.contains { $0.access == FilterEvaluator.unindexed })
        #expect(mixed.rowsChecked == 10)
        #expect(mixed.description.contains("row check (field not indexed)"))
        let gt = try plan("d > 20.25 OR i < 3")
        let gtCount = try coll.countByScan(where: try Filter(sql: "d > 20.25 OR i < 3"))
        #expect(gt.root.access == "union" && gt.matchCount == gtCount)
    }

    /// Replacing a row's attributes moves it between postings; deleting frees its slot, and a
    /// new row in the reused slot is indexed only under its own values.
    @Test func maintenanceFollowsReplaceDeleteAndSlotReuse() throws {
        let path = temporaryStorePath("attr-maint")
        let store = try Store(path: path)
        defer { store.close() }
        let coll = try store.createCollection("c", dimension: 1, metric: .l2, schema: Self.schema)
        try coll.upsert([Row(id: 1, vector: [1], attributes: ["s": "old", "tags": .stringList(["a", "a", "b"])]),
                         Row(id: 2, vector: [2], attributes: ["s": "keep"])])
        #expect(try coll.count(where: try Filter(sql: "tags CONTAINS 'a'")) == 1)
        // The same id twice in one batch: the last version is indexed, once.
        try coll.upsert([Row(id: 1, vector: [1], attributes: ["s": "mid"]), Row(id: 1, vector: [1], attributes: ["s": "new", "tags": .stringList(["c"])])])
        #expect(try coll.count(where: try Filter(sql: "s = 'old'")) == 0)
        #expect(try coll.count(where: try Filter(sql: "s = 'mid'")) == 0)
        #expect(try coll.count(where: try Filter(sql: "s = 'new'")) == 1)
        #expect(try coll.count(where: try Filter(sql: "tags CONTAINS 'a'")) == 0)
        #expect(try coll.count(where: try Filter(sql: "tags IS NULL")) == 1)
        try coll.delete(1)
        #expect(try coll.count(where: try Filter(sql: "s = 'new'")) == 0)
        #expect(try coll.count(where: try Filter(sql: "s IS NULL")) == 0)
        try coll.upsert(Row(id: 3, vector: [3], attributes: [:]))  // reuses slot 0
        #expect(try coll.count(where: try Filter(sql: "s IS NULL")) == 1)
        #expect(try coll.count(where: try Filter(sql: "tags CONTAINS 'c'")) == 0)
        #expect(try coll.count(where: nil) == 2)
        #expect(try store.check(deep: true).isConsistent)
    }

    @Test func checkDetectsAStaleOrMissingPosting() throws {
        let path = temporaryStorePath("attr-corrupt")
        let store = try Store(path: path)
        let coll = try store.createCollection("c", dimension: 1, metric: .l2, schema: Self.schema)
        try coll.upsert((0..<20).map { Row(id: UInt64($0), vector: [1], attributes: ["i": .int(Int64($0 % 4))]) })
        // Drop one posting chunk behind the engine's back.
        try store.env.write { txn throws in
            var key = AttributeIndex.fieldPrefix(coll.info.id, 1, AttributeIndex.tagValue)
            AttributeIndex.encodeInt(2, &key)
            AttributeIndex.appendBE(UInt16(0), &key)
            #expect(try txn.delete(store.db.postings, key: key))
        }
        let report = try store.check(deep: true)
        #expect(!report.isConsistent)
        #expect(report.problems.contains { $0.contains("index entry i =") })
        store.close()
    }

    @Test func keyEncodingsPreserveOrder() {
        var rng = SeededRandom(seed: 3)
        let ints: [Int64] = [.min, -1_000_000, -1, 0, 1, 255, 256, .max] + (0..<100).map { _ in Int64(bitPattern: rng.next()) }
        let doubles: [Double] = [-.greatestFiniteMagnitude, -1e300, -1, -.leastNonzeroMagnitude, 0, .leastNonzeroMagnitude, 1, 1e300, .greatestFiniteMagnitude] + (0..<100).map { _ in (rng.unit() - 0.5) * 1e6 }
        func enc(_ f: (inout [UInt8]) -> Void) -> [UInt8] { var o = [UInt8](); f(&o); return o }
        for a in ints { for b in ints.prefix(20) {
            #expect((a < b) == enc { AttributeIndex.encodeInt(a, &$0) }.lexicographicallyPrecedes(enc { AttributeIndex.encodeInt(b, &$0) }))
        } }
        for a in doubles { for b in doubles.prefix(20) {
            #expect((a < b) == enc { AttributeIndex.encodeDouble(a, &$0) }.lexicographicallyPrecedes(enc { AttributeIndex.encodeDouble(b, &$0) }))
            let u = enc { AttributeIndex.encodeDouble(a, &$0) }.withUnsafeBytes { AttributeIndex.decodeOrdered64($0, 0) }
            #expect(AttributeIndex.decodeDouble(u) == a)
        } }
        #expect(enc { AttributeIndex.encodeDouble(-0.0, &$0) } == enc { AttributeIndex.encodeDouble(0.0, &$0) })
        let strings = ["", "\u{0}", "\u{0}\u{0}", "a", "a\u{0}", "a\u{0}b", "ab", "b", "é", "\u{10FFFF}"]
        for a in strings { for b in strings {
            let ea = enc { AttributeIndex.encodeString(a, &$0) }, eb = enc { AttributeIndex.encodeString(b, &$0) }
            #expect(Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8)) == ea.lexicographicallyPrecedes(eb), "\(a.debugDescription) \(b.debugDescription)")
            let decoded = ea.withUnsafeBytes { AttributeIndex.decodeString($0, 0) }
            #expect(decoded?.bytes == Array(a.utf8) && decoded?.end == ea.count)
        } }
    }
}
