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
            A summary {"queries", "seconds", "qps", "mode", "threads"[, "recall", "short_results"]} goes to stdout; progress to stderr.
            """
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .long, help: "The workload: one JSON object per line.") var workload: String
    @Option(name: .long, help: "Query vectors (.fvecs, .bvecs or .npy) the workload's rows refer to.") var queries: String
    @Option(name: .short, parsing: .unconditional, help: "Neighbours per query.") var k: Int = 10
    @Option(name: .long, help: "Write results to FILE.jsonl or FILE.ivecs (- = stdout).") var out: String
    @Option(name: .long, help: "Ground truth .ivecs in the workload's order: adds recall@k to the summary.") var truth: String?
    @Flag(name: .long, help: "Answer each line with its own search call (the baseline a batch is compared with).") var oneByOne = false
    @Flag(name: .long, help: "Print each predicate group's plan, matches and rows scored on stderr.") var explain = false
    @OptionGroup var search: SearchFlags
    @Option(name: .long, help: "Map the whole store into memory before searching: auto (when it fits in half the memory), on, off.") var prefault: PrefaultChoice = .auto
    @Option(name: .long, help: "Multi-vector collections: token count per query (int32 .npy or .ivecs); --queries then holds every query's tokens in order and workload rows number the queries.") var queryCounts: String?
    @Option(name: .long, help: "Multi-vector collections: candidates re-ranked with exact Chamfer (default max(400, 40k); the HNSW beam --ef defaults to 4x candidates).") var candidates: Int?

    func validate() throws { try OptionCheck.atLeast(1, k, "-k") }

    func run() throws {
        try runReporting(json: store.json) {
            let qf = try VectorFile(path: queries)
            let flat = try qf.readAll()
            let d = qf.dimension
            let (items, lines) = try readWorkload(rows: qf.count)
            var config = Store.Configuration()
            config.readOnly = true
            if let threads = search.threads { config.searchThreads = threads }
            let db = try Store(path: store.db, configuration: config)
            defer { db.close() }
            prefault.apply(db, path: store.db, json: store.json)
            let coll = try db.collection(collection)
            try FilePredicates(filters: items.map(\.filter), file: workload, lines: lines).bind(to: coll.schema)
            if let queryCounts {
                try runMultiVectorBatch(coll, items, queries: queries, queryCounts: queryCounts, k: k, out: out, truth: truth,
                                        oneByOne: oneByOne, options: try multiVectorOptions(search, candidates: candidates), json: store.json)
                return
            }
            guard d == coll.dimension else {
                throw SextantError(.dimensionMismatch, "queries have dimension \(d); collection '\(collection)' has \(coll.dimension)")
            }
            // Lines naming the same row share one array (as an application reusing its vectors
            // would): less memory, and the engine recognises them without hashing.
            var rowVectors: [Int: [Float]] = [:]
            let qs = items.map { item -> Sextant.Query in
                let v = rowVectors[item.row] ?? Array(flat[item.row * d..<(item.row + 1) * d])
                rowVectors[item.row] = v
                return Sextant.Query(vector: v, k: k, filter: item.filter)
            }
            let progress = Progress(total: qs.count, unit: "queries", json: store.json)
            let options = try search.options
            let t0 = Date()
            var results: [[SearchResult]] = []
            results.reserveCapacity(qs.count)
            var groups: [BatchExplanation.Group] = []
            var stages: [String: Double] = [:]
            var stageOrder: [String] = []
            if oneByOne {
                // The baseline: every line its own search call.
                for (i, q) in qs.enumerated() {
                    results.append(try coll.search([q], options: options)[0])
                    if i % 100 == 99 { progress.advance(to: i + 1) }
                }
            } else {
                // Chunks keep progress moving on long workloads; each chunk is one multi-query call.
                let chunk = 10_000
                var i = 0
                while i < qs.count {
                    let part = Array(qs[i..<min(i + chunk, qs.count)])
                    if explain {
                        let e = try coll.explainBatch(part, options: options)
                        results += e.results
                        groups += e.groups
                        for st in e.stages {
                            if stages[st.name] == nil { stageOrder.append(st.name) }
                            stages[st.name, default: 0] += st.seconds
                        }
                    } else {
                        results += try coll.search(part, options: options)
                    }
                    i += part.count
                    progress.advance(to: i)
                }
            }
            progress.finish()
            let secs = Date().timeIntervalSince(t0)
            Self.printExplanation(groups, stages: stageOrder.map { ($0, stages[$0]!) })
            try writeResults(results, k: k, to: out)
            var summary = "{\"queries\":\(qs.count),\"seconds\":\(String(format: "%.4f", secs)),\"qps\":\(String(format: "%.1f", Double(qs.count) / max(secs, 1e-9)))"
            summary += ",\"mode\":\"\(oneByOne ? "one-by-one" : "batch")\",\"threads\":\(db.configuration.searchThreads)"
            if let truth { summary += try Self.recallFields(results, k: k, truth: truth) }
            summary += "}"
            if out == "-" { Console.err(summary) } else { Console.out(summary) }
        }
    }

    /// The workload's lines: each a query row (below `rows`) and its predicate, with line numbers.
    private func readWorkload(rows: Int) throws -> (items: [(row: Int, filter: Filter?)], lines: [Int]) {
        var items: [(row: Int, filter: Filter?)] = []
        var lines: [Int] = []
        _ = try LineReader(path: workload).forEachLine { bytes, line in
            let ctx = ["file": workload, "line": String(line + 1)]
            lines.append(line + 1)
            let json: JSONValue
            do { json = try JSONValue(parsing: bytes) } catch let e as SextantError { throw e.adding(ctx) }
            guard case .object = json, case .int(let row)? = json["query"] else {
                throw SextantError(.malformedFile, "each workload line needs \"query\": a row number of the queries file", context: ctx)
            }
            guard row >= 0, row < rows else {
                throw SextantError(.malformedFile, "query row \(row) is outside the queries file (\(rows) rows)", context: ctx)
            }
            do {
                switch json["where"] {
                case nil, .null?: items.append((Int(row), nil))
                case .string(let s)?: items.append((Int(row), s.isEmpty ? nil : try Filter(sql: s)))
                case let v?: items.append((Int(row), try Filter(json: v)))
                }
            } catch let e as SextantError { throw e.adding(ctx) }
        }
        return (items, lines)
    }

    /// `--explain`: each predicate group's plan and the time of each stage, on stderr.
    private static func printExplanation(_ groups: [BatchExplanation.Group], stages: [(name: String, seconds: Double)]) {
        for g in groups {
            let p = g.plan
            let kind = p.kind.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0)
            Console.err(String(format: "%5d queries  ", p.queries) + kind
                        + String(format: " matches %6d (%.4f)  rows scored %9d  ", p.matches, p.selectivity, g.rowsScored)
                        + (g.predicate.isEmpty ? "(no predicate)" : g.predicate) + "  [\(g.detail)]"
                        + (g.duplicates > 0 ? " +\(g.duplicates) identical queries" : ""))
        }
        for st in stages { Console.err("stage " + st.name.padding(toLength: 8, withPad: " ", startingAt: 0) + String(format: "%10.3f ms", st.seconds * 1000)) }
    }

    /// `,"recall":…,"short_results":…` of `results` against the first k ids of each row of `truth`.
    private static func recallFields(_ results: [[SearchResult]], k: Int, truth: String) throws -> String {
        let tf = try VectorFile(path: truth)
        guard tf.count >= results.count else { throw SextantError(.malformedFile, "the ground truth has \(tf.count) rows for \(results.count) queries") }
        let gt = try tf.int32Rows(0..<results.count)
        var hits = 0, possible = 0, short = 0
        for i in 0..<results.count {
            let row = gt[i * tf.dimension..<(i + 1) * tf.dimension].prefix(k).filter { $0 >= 0 }.map { UInt64($0) }
            let got = Set(results[i].prefix(k).map(\.id))
            hits += row.filter { got.contains($0) }.count
            possible += row.count
            if results[i].count < row.count { short += 1 }
        }
        return String(format: ",\"recall\":%.4f,\"short_results\":%d", possible == 0 ? 1.0 : Double(hits) / Double(possible), short)
    }
}
