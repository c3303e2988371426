import Foundation
import Testing
import Sextant
import SextantTestSupport

@Suite struct DumpLoadTests {
    @Test func dumpLoadDumpIsByteIdentical() throws {
        let a = try Store(path: temporaryStorePath("a"))
        defer { a.close() }
        let c = try a.createCollection("items", dimension: 5, metric: .ip, schema: testSchema, indexRecipe: "HNSW16,PQ5x8,Refine")
        var rng = SeededRandom(seed: 9)
        var rows: [Row] = []
        for i in 0..<500 {
            var attrs: [String: AttributeValue] = [:]
            if rng.unit() < 0.8 { attrs["name"] = .string(["plain", "ünïcødé ✓", "quote's \"double\"", "tab\there\nnewline", ""][i % 5]) }
            if rng.unit() < 0.8 { attrs["year"] = .int(Int64(rng.next() % 4000) - 2000) }
            if rng.unit() < 0.8 { attrs["score"] = .double([0.1, -1e-300, 1e300, 3.0, -0.0][i % 5]) }
            if rng.unit() < 0.5 { attrs["ok"] = .bool(rng.unit() < 0.5) }
            if rng.unit() < 0.7 { attrs["tags"] = .stringList((0..<Int(rng.next() % 4)).map { "t\($0)" }) }
            if rng.unit() < 0.5 { attrs["nums"] = .intList([Int64.min, Int64.max, 0].shuffled(using: &rng)) }
            let vec = (0..<5).map { _ in Float(rng.gaussian()) * [1, 1e-30, 1e30][i % 3] }
            rows.append(Row(id: rng.next() >> 1, vector: vec, attributes: attrs))
        }
        try c.upsert(rows)
        var first: [UInt8] = []
        try c.dump { first.append(contentsOf: $0) }
        let b = try Store(path: temporaryStorePath("b"))
        defer { b.close() }
        let lines = first.split(separator: 10, omittingEmptySubsequences: false)
        let loaded = try b.load { body in
            for (i, l) in lines.enumerated() { try Array(l).withUnsafeBytes { try body($0, i) } }
        }
        var second: [UInt8] = []
        try loaded.dump { second.append(contentsOf: $0) }
        #expect(first == second)
        #expect(loaded.info.indexRecipe == "HNSW16,PQ5x8,Refine")
        for r in rows.prefix(50) { #expect(try loaded.get(r.id)?.vector == r.vector) }
    }

    @Test func badDumpsLoadNothing() throws {
        let s = try Store(path: temporaryStorePath())
        defer { s.close() }
        func load(_ text: String) -> SextantError? {
            sextantError {
                _ = try s.load { body in
                    for (i, l) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                        try Array(l.utf8).withUnsafeBytes { try body($0, i) }
                    }
                }
            }
        }
        let header = #"{"sextant_dump":1,"format":1,"collection":"x","dimension":2,"metric":"l2","schema":"a:int","index":"Flat","rows":2}"#
        #expect(load("")?.code == .malformedFile)
        #expect(load(#"{"hello":1}"#)?.code == .malformedFile)
        #expect(load(header + "\n" + #"{"id":1,"vector":[1,2]}"#)?.code == .malformedFile)  // one row short
        #expect(load(header + "\n" + #"{"id":1,"vector":[1,2]}"# + "\n" + #"{"id":2,"vector":[1]}"#)?.code == .dimensionMismatch)
        #expect(load(header + "\n" + #"{"id":1,"vector":[1,2],"attributes":{"b":1}}"# + "\n")?.code == .unknownAttribute)
        #expect(load(header + "\n" + "{not json")?.code == .syntax)
        #expect(load(header.replacingOccurrences(of: #""format":1"#, with: #""format":7"#))?.code == .formatVersion)
        #expect(try s.collections().isEmpty)
    }
}
