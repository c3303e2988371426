import ArgumentParser
import Foundation
import Sextant
import SextantFormats

struct Batch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer a workload of (query vector, predicate) pairs as one batch.",
        discussion: """
            Each line of --workload is {"query": <row of the queries file>, "where": <SQL text, JSON predicate or null>}. \
            Results are written in the workload's order: JSONL ({"ids": [...], "distances": [...]}) or .ivecs. \
            A summary {"queries", "seconds", "qps"} goes to stdout; progress to stderr.
            """
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .long, help: "The workload: one JSON object per line.") var workload: String
    @Option(name: .long, help: "Query vectors (.fvecs, .bvecs or .npy) the workload's rows refer to.") var queries: String
    @Option(name: .short, help: "Neighbours per query.") var k: Int = 10
    @Option(name: .long, help: "Write results to FILE.jsonl or FILE.ivecs (- = stdout).") var out: String
    @OptionGroup var search: SearchFlags

    func run() throws {
        try runReporting(json: store.json) {
            guard k >= 1 else { throw SextantError(.invalidArgument, "-k must be at least 1") }
            let qf = try VectorFile(path: queries)
            let flat = try qf.readAll()
            let d = qf.dimension
            var items: [(row: Int, filter: Filter?)] = []
            _ = try LineReader(path: workload).forEachLine { bytes, line in
                let ctx = ["file": workload, "line": String(line + 1)]
                let json: JSONValue
                do { json = try JSONValue(parsing: bytes) } catch let e as SextantError { throw e.adding(ctx) }
                guard case .object = json, case .int(let row)? = json["query"] else {
                    throw SextantError(.malformedFile, "each workload line needs \"query\": a row number of the queries file", context: ctx)
                }
                guard row >= 0, row < qf.count else {
                    throw SextantError(.malformedFile, "query row \(row) is outside the queries file (\(qf.count) rows)", context: ctx)
                }
                do {
                    switch json["where"] {
                    case nil, .null?: items.append((Int(row), nil))
                    case .string(let s)?: items.append((Int(row), s.isEmpty ? nil : try Filter(sql: s)))
                    case let v?: items.append((Int(row), try Filter(json: v)))
                    }
                } catch let e as SextantError { throw e.adding(ctx) }
            }
            var config = Store.Configuration()
            config.readOnly = true
            if let threads = search.threads { config.searchThreads = max(1, threads) }
            let db = try Store(path: store.db, configuration: config)
            defer { db.close() }
            let coll = try db.collection(collection)
            guard d == coll.dimension else {
                throw SextantError(.dimensionMismatch, "queries have dimension \(d); collection '\(collection)' has \(coll.dimension)")
            }
            let qs = items.map { Sextant.Query(vector: Array(flat[$0.row * d..<($0.row + 1) * d]), k: k, filter: $0.filter) }
            let progress = Progress(total: qs.count, unit: "queries", json: store.json)
            let t0 = Date()
            // Chunks keep progress moving; each chunk is still one multi-query call.
            var results: [[SearchResult]] = []
            results.reserveCapacity(qs.count)
            let chunk = 1_000
            var i = 0
            while i < qs.count {
                let part = Array(qs[i..<min(i + chunk, qs.count)])
                results += try coll.search(part, options: search.options)
                i += part.count
                progress.advance(to: i)
            }
            progress.finish()
            let secs = Date().timeIntervalSince(t0)
            try writeResults(results, k: k, to: out)
            let summary = "{\"queries\":\(qs.count),\"seconds\":\(String(format: "%.4f", secs)),\"qps\":\(String(format: "%.1f", Double(qs.count) / max(secs, 1e-9)))}"
            if out == "-" { Console.err(summary) } else { Console.out(summary) }
        }
    }
}
