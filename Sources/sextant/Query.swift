import ArgumentParser
import Foundation
import Sextant
import SextantFormats

/// Reads query filters: one `--where` for all queries, or one JSONL line per query.
func loadFilters(where text: String?, filters path: String?, count: Int) throws -> FilePredicates {
    if text != nil && path != nil { throw SextantError(.invalidArgument, "use --where or --filters, not both") }
    if let text { return FilePredicates(filters: Array(repeating: try Filter(sql: text), count: count), file: nil, lines: Array(repeating: 1, count: count)) }
    guard let path else { return FilePredicates(filters: Array(repeating: nil, count: count), file: nil, lines: Array(repeating: 1, count: count)) }
    var out: [Filter?] = []
    var lines: [Int] = []
    let n = try LineReader(path: path).forEachLine { bytes, line in
        lines.append(line + 1)
        let ctx = ["file": path, "line": String(line + 1)]
        let json: JSONValue
        do { json = try JSONValue(parsing: bytes) } catch let e as SextantError { throw e.adding(ctx) }
        guard case .object = json else { throw SextantError(.malformedFile, "each filters line must be a JSON object with \"where\"", context: ctx) }
        do {
            switch json["where"] {
            case nil, .null?: out.append(nil)
            case .string(let s)?: out.append(try Filter(sql: s))
            case let v?: out.append(try Filter(json: v))
            }
        } catch let e as SextantError { throw e.adding(ctx) }
    }
    guard n == count else {
        throw SextantError(.malformedFile, "'\(path)' has \(n) lines for \(count) queries", context: ["file": path])
    }
    return FilePredicates(filters: out, file: path, lines: lines)
}

/// Writes results as `.ivecs` (ids, padded with -1) or JSONL (`{"ids":[…],"distances":[…]}`).
func writeResults(_ results: [[SearchResult]], k: Int, to path: String) throws {
    if path.hasSuffix(".ivecs") {
        var flat: [Int32] = []
        flat.reserveCapacity(results.count * k)
        for r in results {
            for i in 0..<k {
                if i < r.count {
                    guard r[i].id <= UInt64(Int32.max) else {
                        throw SextantError(.invalidArgument, "id \(r[i].id) does not fit an .ivecs file (int32); write .jsonl instead")
                    }
                    flat.append(Int32(r[i].id))
                } else { flat.append(-1) }
            }
        }
        try VectorFileWriter.writeIvecs(flat, dimension: k, to: path)
    } else if path.hasSuffix(".jsonl") || path.hasSuffix(".json") || path == "-" {
        var out: [UInt8] = []
        for r in results {
            let line: JSONValue = .object(JSONObject([
                ("ids", .array(r.map { .unsigned($0.id) })),
                ("distances", .array(r.map { .double(Double($0.distance)) })),
            ]))
            line.write(into: &out)
            out.append(10)
        }
        if path == "-" { FileHandle.standardOutput.write(Data(out)) } else {
            guard FileManager.default.createFile(atPath: path, contents: Data(out)) else {
                throw SextantError(.io, "cannot write '\(path)'", context: ["file": path])
            }
        }
    } else {
        throw SextantError(.invalidArgument, "--out must end in .ivecs or .jsonl (or be - for stdout)", context: ["file": path])
    }
}

struct Query: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer k-nearest-neighbour queries, optionally filtered.",
        discussion: "Prints a JSON summary on stdout ({\"queries\", \"seconds\", \"qps\"}); results go to --out.")

    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .long, help: "Query vectors: .fvecs, .bvecs or .npy.") var queries: String
    @Option(name: .short, parsing: .unconditional, help: "Neighbours per query.") var k: Int = 10
    @Option(name: .long, help: "A SQL-WHERE predicate applied to every query.") var `where`: String?
    @Option(name: .long, help: "JSONL with one {\"where\": …} per query (SQL text, JSON form or null).") var filters: String?
    @Option(name: .long, help: "Write results to FILE.ivecs or FILE.jsonl (- = stdout as JSONL).") var out: String?
    @OptionGroup var search: SearchFlags
    @Option(name: .long, help: "Multi-vector collections: token count per query (int32 .npy or .ivecs); --queries then holds every query's tokens in order.") var queryCounts: String?
    @Option(name: .long, help: "Multi-vector collections: candidates re-ranked with exact Chamfer (default max(400, 40k); the HNSW beam --ef defaults to 4x candidates).") var candidates: Int?
    @Flag(name: .long, help: "Multi-vector collections: print each query's plan on stderr.") var explain = false

    func validate() throws { try OptionCheck.atLeast(1, k, "-k") }

    func run() throws {
        try runReporting(json: store.json) {
            if let queryCounts {
                let db = try openStore(store.db, readOnly: true)
                defer { db.close() }
                let coll = try db.collection(collection)
                let n = try VectorFile(path: queryCounts)
                let preds = try loadFilters(where: `where`, filters: filters, count: n.count * n.dimension).filters
                let qs = try multiVectorQueries(coll, queries: queries, queryCounts: queryCounts, k: k, filters: preds)
                try runMultiVectorQuery(coll, qs, options: try multiVectorOptions(search, candidates: candidates), k: k, out: out, explain: explain)
                return
            }
            let qf = try VectorFile(path: queries)
            let flat = try qf.readAll()
            let loaded = try loadFilters(where: `where`, filters: filters, count: qf.count)
            let preds = loaded.filters
            var config = Store.Configuration()
            config.readOnly = true
            if let threads = search.threads { config.searchThreads = threads }
            let db = try Store(path: store.db, configuration: config)
            defer { db.close() }
            let coll = try db.collection(collection)
            guard qf.dimension == coll.dimension else {
                throw SextantError(.dimensionMismatch, "queries have dimension \(qf.dimension); collection '\(collection)' has \(coll.dimension)")
            }
            try loaded.bind(to: coll.schema)
            let d = qf.dimension
            let qs = (0..<qf.count).map { i in Sextant.Query(vector: Array(flat[i * d..<(i + 1) * d]), k: k, filter: preds[i]) }
            let t0 = Date()
            let results = try coll.search(qs, options: try search.options)
            let secs = Date().timeIntervalSince(t0)
            if let out { try writeResults(results, k: k, to: out) }
            let summary = "{\"queries\":\(qs.count),\"seconds\":\(String(format: "%.4f", secs)),\"qps\":\(String(format: "%.1f", Double(qs.count) / max(secs, 1e-9)))}"
            if out == "-" { Console.err(summary) } else { Console.out(summary) }
        }
    }
}

/// The plan options `query`, `batch` and `bench` share.
struct SearchFlags: ParsableArguments {
    @Flag(name: .long, help: "Score with full vectors (exact search), whatever the index.") var exact = false
    @Option(name: .long, parsing: .unconditional, help: "With PQ codes: re-score this many best candidates with full vectors (default: the recipe's; 0 = none).") var rerank: Int?
    @Option(name: .long, parsing: .unconditional, help: "With an HNSW graph: beam width (default 64; at least k).") var ef: Int?
    @Option(name: .long, parsing: .unconditional, help: "Search threads (default: all cores; 1 for single-thread figures).") var threads: Int?
    @Option(name: .long, help: "Plan: auto (the planner chooses), exact, codes, filtered-graph, post-filter or partition-major (batches); multi-vector candidates also graph-over-codes (graph traversed with PQ code distances).") var plan: String = "auto"
    @Option(name: .long, parsing: .unconditional, help: "On a collection partitioned with cells: search only each query's N nearest cells (approximate).") var probes: Int?
    @Option(name: .long, parsing: .unconditional, help: "Recall@k the planner must expect of its plan (0…1, default 0.95; 0: by time alone, default ef and re-rank).") var recall: Double = 0.95

    func validate() throws {
        try OptionCheck.atLeast(0, rerank, "--rerank")
        try OptionCheck.atLeast(1, ef, "--ef")
        try OptionCheck.atLeast(1, threads, "--threads")
        try OptionCheck.atLeast(1, probes, "--probes")
        if !(0...1).contains(recall) { throw ValidationError("--recall must be between 0 and 1, got \(recall)") }
    }

    var planKind: PlanKind? {
        get throws {
            if plan == "auto" { return nil }
            guard let p = PlanKind(rawValue: plan) else {
                throw SextantError(.invalidArgument, "unknown plan '\(plan)'; expected auto, \(PlanKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return p
        }
    }

    var options: SearchOptions {
        get throws { SearchOptions(exact: exact, rerank: rerank, ef: ef, plan: try planKind, probes: probes, recall: recall) }
    }
}
