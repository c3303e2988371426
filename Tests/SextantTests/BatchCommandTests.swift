import Foundation
import Testing
@testable import Sextant
import SextantFormats
import SextantTestSupport

/// `sextant batch`: a workload file answered in order, equal to the API's answers.
@Suite struct BatchCommandTests {
    @Test func workloadAnswersEqualTheAPIsInOrder() throws {
        guard CrashTests.sextantBinary != nil else { print("batch command: no sextant binary; skipped"); return }
        let dir = temporaryStorePath("batch-cmd")
        let db = dir + "/db"
        let data = SyntheticDataset(rows: 800, dimension: 8, queries: 12, seed: 3)
        do {
            let store = try Store(path: db)
            let c = try store.createCollection("c", dimension: 8, metric: .l2, schema: SyntheticDataset.schema)
            try c.upsert((0..<800).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
            store.close()
        }
        try VectorFileWriter.write(data.queries, dimension: 8, to: dir + "/q.fvecs", format: .fvecs)
        let predicates: [String?] = ["category = 'cat0'", nil, "price < 20 AND in_stock = TRUE", "tags CONTAINS 'red'", "category = 'none'"]
        var lines: [String] = []
        var expected: [(Int, Filter?)] = []
        for i in 0..<30 {
            let row = (i * 7) % data.queryCount
            let p = predicates[i % predicates.count]
            lines.append(p.map { "{\"query\": \(row), \"where\": \"\($0)\"}" } ?? "{\"query\": \(row), \"where\": null}")
            expected.append((row, try p.map { try Filter(sql: $0) }))
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: dir + "/w.jsonl", atomically: true, encoding: .utf8)
        #expect(try CrashTests.run(["batch", db, "c", "--workload", dir + "/w.jsonl", "--queries", dir + "/q.fvecs", "-k", "5", "--out", dir + "/out.jsonl"]) == 0)
        let out = try String(contentsOfFile: dir + "/out.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(out.count == 30)
        let store = try Store(path: db)
        defer { store.close() }
        let c = try store.collection("c")
        for (i, (row, filter)) in expected.enumerated() where i < out.count {
            let want = try c.search(data.query(row), k: 5, filter: filter).map(\.id)
            let json = try JSONValue(parsing: Array(out[i].utf8))
            guard case .array(let ids)? = json["ids"] else { Issue.record("line \(i) has no ids"); continue }
            #expect(ids.compactMap { if case .int(let x) = $0 { UInt64(x) } else { nil } } == want, "line \(i)")
        }
        // A row outside the queries file is a typed error, not a crash.
        try "{\"query\": 99, \"where\": null}\n".write(toFile: dir + "/bad.jsonl", atomically: true, encoding: .utf8)
        #expect(try CrashTests.run(["batch", db, "c", "--workload", dir + "/bad.jsonl", "--queries", dir + "/q.fvecs", "--out", dir + "/o2.jsonl"]) == 1)
    }
}
