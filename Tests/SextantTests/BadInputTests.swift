import Foundation
import Testing
@testable import Sextant
import SextantStorage
import SextantTestSupport
import CLMDB

/// Every class of bad input gets a typed error naming what is wrong, and loses nothing.
@Suite struct BadInputTests {
    func fixture() throws -> (Store, VectorCollection, [String]) {
        let store = try Store(path: temporaryStorePath())
        let c = try store.createCollection("c", dimension: 3, metric: .cosine, schema: try Schema(parsing: "name:string,year:int!,tags:[string]"))
        try c.upsert((0..<20).map { Row(id: UInt64($0), vector: [1, Float($0), 2], attributes: ["year": .int(Int64($0)), "name": .string("n\($0)")]) })
        return (store, c, try snapshot(c))
    }

    func expectUnchanged(_ c: VectorCollection, _ before: [String]) throws {
        #expect(try snapshot(c) == before)
        #expect(try c.store.check().isConsistent)
    }

    @Test func wrongDimensionInABatchLeavesNothing() throws {
        let (store, c, before) = try fixture()
        defer { store.close() }
        let e = sextantError {
            try c.upsert([Row(id: 100, vector: [1, 1, 1], attributes: ["year": 1]), Row(id: 101, vector: [1, 1], attributes: ["year": 1])])
        }
        #expect(e?.code == .dimensionMismatch)
        #expect(e?.context["row"] == "1")
        #expect(e?.context["expected"] == "3")
        try expectUnchanged(c, before)
        #expect(sextantError { _ = try c.search([1, 2], k: 1) }?.code == .dimensionMismatch)
    }

    @Test func nonFiniteComponents() throws {
        let (store, c, before) = try fixture()
        defer { store.close() }
        for bad: Float in [.nan, .infinity, -.infinity] {
            let e = sextantError { try c.upsert([Row(id: 100, vector: [1, 1, 1], attributes: ["year": 1]), Row(id: 5, vector: [1, bad, 1], attributes: ["year": 1])]) }
            #expect(e?.code == .nonFiniteValue)
            #expect(e?.context["row"] == "1")
            #expect(e?.context["component"] == "1")
            #expect(sextantError { _ = try c.search([bad, 1, 1], k: 1) }?.code == .nonFiniteValue)
        }
        #expect(sextantError { try c.upsert(id: 1, vector: [1, 1, 1], attributes: ["year": 1, "score": .double(.nan)]) }?.code == .unknownAttribute)
        try expectUnchanged(c, before)
    }

    /// Vectors are checked eight components at a time with a scalar tail: a bad or the only
    /// non-zero component is found at every position, in a chunk and in the tail.
    @Test func everyComponentPositionIsChecked() throws {
        let store = try Store(path: temporaryStorePath())
        defer { store.close() }
        let d = 21
        let c = try store.createCollection("c", dimension: d, metric: .cosine)
        for i in 0..<d {
            for bad: Float in [.nan, .infinity, -.infinity, .signalingNaN] {
                var v = [Float](repeating: 1, count: d)
                v[i] = bad
                let e = sextantError { _ = try c.search(v, k: 1) }
                #expect(e?.code == .nonFiniteValue && e?.context["component"] == String(i))
            }
            var only = [Float](repeating: -0.0, count: d)
            only[i] = -0.5
            try c.upsert(id: UInt64(i), vector: only)
        }
        #expect(sextantError { try c.upsert(id: 99, vector: [Float](repeating: -0.0, count: d)) }?.code == .invalidArgument)
        #expect(try c.count() == d)
    }

    @Test func zeroVectorHasNoCosine() throws {
        let (store, c, before) = try fixture()
        defer { store.close() }
        #expect(sextantError { try c.upsert(id: 1, vector: [0, 0, 0], attributes: ["year": 1]) }?.code == .invalidArgument)
        #expect(sextantError { _ = try c.search([0, 0, 0], k: 1) }?.code == .invalidArgument)
        try expectUnchanged(c, before)
    }

    @Test func unknownAttributeTypeMismatchAndNull() throws {
        let (store, c, before) = try fixture()
        defer { store.close() }
        var e = sextantError { try c.upsert([Row(id: 1, vector: [1, 1, 1], attributes: ["year": 1, "colour": "red"])]) }
        #expect(e?.code == .unknownAttribute)
        #expect(e?.context["field"] == "colour")
        e = sextantError { try c.upsert([Row(id: 1, vector: [1, 1, 1], attributes: ["year": "1999"])]) }
        #expect(e?.code == .typeMismatch)
        #expect(e?.context["field"] == "year")
        e = sextantError { try c.upsert([Row(id: 1, vector: [1, 1, 1], attributes: ["year": .double(1.5)])]) }
        #expect(e?.code == .typeMismatch)
        e = sextantError { try c.upsert([Row(id: 1, vector: [1, 1, 1], attributes: ["year": 1, "tags": .intList([1])])]) }
        #expect(e?.code == .typeMismatch)
        e = sextantError { try c.upsert([Row(id: 1, vector: [1, 1, 1], attributes: ["name": "x"])]) }
        #expect(e?.code == .nullViolation)
        #expect(e?.context["field"] == "year")
        // JSON attributes take the same checks.
        e = sextantError { _ = try c.attributes(fromJSON: try JSONValue(parsing: #"{"year": 1, "tags": ["a", 2]}"#), row: 7) }
        #expect(e?.code == .typeMismatch)
        #expect(e?.context["row"] == "7")
        // Integral JSON numbers are accepted for int fields.
        #expect(try c.attributes(fromJSON: try JSONValue(parsing: #"{"year": 2.0}"#))["year"] == .int(2))
        try expectUnchanged(c, before)
    }

    @Test func badFiltersAreTypedWithPositions() throws {
        let (store, c, _) = try fixture()
        defer { store.close() }
        var e = sextantError { _ = try Filter(sql: "year >= AND name = 'x'") }
        #expect(e?.code == .syntax)
        #expect(e?.context["position"] != nil)
        e = sextantError { _ = try c.search([1, 1, 1], k: 1, filter: Attr("colour") == "red") }
        #expect(e?.code == .unknownAttribute)
        e = sextantError { _ = try c.search([1, 1, 1], k: 1, filter: Attr("year") == "x") }
        #expect(e?.code == .typeMismatch)
        e = sextantError { _ = try c.search([1, 1, 1], k: 0) }
        #expect(e?.code == .invalidArgument)
        e = sextantError { _ = try Filter(jsonText: #"{"and": [{"field": "year", "op": "~", "value": 1}]}"#) }
        #expect(e?.code == .syntax)
        #expect(e?.context["path"] != nil)
    }

    @Test func corruptedRecordsAreTypedAndChecked() throws {
        let path = temporaryStorePath()
        do {
            let (store, c) = try fixture_at(path)
            _ = c
            store.close()
        }
        // Damage one row record and one vector record through the storage layer.
        do {
            let env = try Environment(StorageConfiguration(path: path))
            let rows = try #require(try env.openDatabase("sextant.rows", create: false))
            let vecs = try #require(try env.openDatabase("sextant.vectors", create: false))
            try env.write { txn in
                let key = withUnsafeBytes(of: (UInt64(1) << 32 | 3).bigEndian) { Array($0) }
                var rec = try #require(try txn.value(rows, key: key))
                rec.append(contentsOf: [0xFF, 0xFF, 0xFF])
                try txn.put(rows, key: key, value: rec)
                // Dimension 4096 puts two slots in a vector block: truncate the block of slots 4-5.
                let vkey = withUnsafeBytes(of: (UInt64(1) << 32 | 2).bigEndian) { Array($0) }
                #expect(try txn.value(vecs, key: vkey) != nil)
                try txn.put(vecs, key: vkey, value: [1, 2, 3])
            }
            env.close()
        }
        let store = try Store(path: path)
        defer { store.close() }
        let c = try store.collection("c")
        #expect(sextantError { _ = try c.get(3) }?.code == .corrupted)
        #expect(sextantError { _ = try c.get(4) }?.code == .corrupted)
        #expect(sextantError { _ = try c.search(Self.vector(1), k: 5) }?.code == .corrupted)
        let report = try store.check()
        #expect(!report.isConsistent)
        #expect(report.problems.count >= 2)
        // Other rows are still readable.
        #expect(try c.get(6) != nil)
    }

    static func vector(_ i: Int) -> [Float] {
        var v = [Float](repeating: 0, count: 4096)
        v[0] = 1; v[1] = Float(i); v[2] = 2
        return v
    }

    func fixture_at(_ path: String) throws -> (Store, VectorCollection) {
        let store = try Store(path: path)
        let c = try store.createCollection("c", dimension: 4096, metric: .cosine, schema: try Schema(parsing: "name:string,year:int!,tags:[string]"))
        try c.upsert((0..<20).map { Row(id: UInt64($0), vector: Self.vector($0), attributes: ["year": .int(Int64($0)), "name": .string("n\($0)")]) })
        return (store, c)
    }

    @Test func fullMapIsTypedAndLosesNothing() throws {
        var config = Store.Configuration()
        config.initialMapSize = 1 << 20
        config.maxMapSize = 4 << 20
        let store = try Store(path: temporaryStorePath(), configuration: config)
        defer { store.close() }
        let c = try store.createCollection("c", dimension: 256, metric: .l2)
        try c.upsert((0..<100).map { Row(id: UInt64($0), vector: [Float](repeating: Float($0), count: 256)) })
        let before = try snapshot(c)
        // 10,000 x 1 KiB cannot fit in 4 MiB.
        let e = sextantError { try c.upsert((1000..<11000).map { Row(id: UInt64($0), vector: [Float](repeating: 1, count: 256)) }) }
        #expect(e?.code == .mapFull)
        try expectUnchanged(c, before)
        // The map grew by itself up to the limit for smaller batches.
        try c.upsert((200..<1000).map { Row(id: UInt64($0), vector: [Float](repeating: 2, count: 256)) })
        #expect(try c.count() == 900)
    }
}
