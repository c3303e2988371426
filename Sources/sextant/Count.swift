import ArgumentParser
import Foundation
import Sextant
import SextantFormats

/// Parses `--where` as SQL, or as the JSON predicate form when it starts with `{`.
func parsePredicate(_ text: String) throws -> Filter {
    let trimmed = text.drop(while: { $0 == " " })
    if trimmed.first == "{" { return try Filter(json: try JSONValue(parsing: Array(text.utf8))) }
    return try Filter(sql: text)
}

struct Count: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the exact number of rows matching a predicate, and the time taken.",
        discussion: "The count comes from the attribute indexes; --scan evaluates every row instead (for comparison)."
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .customLong("where"), help: "Predicate (SQL WHERE syntax, or the JSON form). Omit to count every row.") var predicate: String?
    @Flag(name: .long, help: "Evaluate row by row instead of using the indexes.") var scan = false

    func run() throws {
        try runReporting(json: store.json) {
            let db = try openStore(store.db, readOnly: true)
            defer { db.close() }
            let c = try db.collection(collection)
            let filter = try predicate.map(parsePredicate)
            let start = DispatchTime.now().uptimeNanoseconds
            let n = try scan ? c.countByScan(where: filter) : c.count(where: filter)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if store.json {
                Console.out(JSONValue.object(JSONObject([
                    ("count", .int(Int64(n))), ("seconds", .double(seconds)), ("method", .string(scan ? "scan" : "index")),
                ])).jsonText)
            } else {
                Console.out("\(n)")
                Console.err(String(format: "%.3f ms (%@)", seconds * 1000, scan ? "row scan" : "indexes"))
            }
        }
    }
}

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show how a predicate, or a whole search, is answered.",
        discussion: """
            With --where only: which index serves each part of the predicate, with row counts and time. \
            With a query (--vector, or --queries FILE --row N): the plan the planner chooses (or --plan forces), \
            its estimates for every plan, rows actually scored, partitions touched and time per stage; then the results.
            """
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .customLong("where"), help: "Predicate (SQL WHERE syntax, or the JSON form).") var predicate: String?
    @Option(name: .long, help: "A query vector as a JSON array.") var vector: String?
    @Option(name: .long, help: "Query vectors (.fvecs, .bvecs or .npy); with --row.") var queries: String?
    @Option(name: .long, parsing: .unconditional, help: "The row of --queries to explain.") var row: Int = 0
    @Option(name: .short, parsing: .unconditional, help: "Neighbours.") var k: Int = 10
    @OptionGroup var search: SearchFlags

    func validate() throws {
        try OptionCheck.atLeast(1, k, "-k")
        try OptionCheck.atLeast(0, row, "--row")
    }

    func run() throws {
        try runReporting(json: store.json) {
            var config = Store.Configuration()
            config.readOnly = true
            if let threads = search.threads { config.searchThreads = threads }
            let db = try Store(path: store.db, configuration: config)
            defer { db.close() }
            let c = try db.collection(collection)
            let filter = try predicate.map(parsePredicate)
            var query: [Float]?
            if let vector {
                guard case .array(let xs) = try JSONValue(parsing: Array(vector.utf8)) else {
                    throw SextantError(.invalidArgument, "--vector must be a JSON array of numbers")
                }
                query = try xs.map { x -> Float in
                    switch x {
                    case .int(let i): return Float(i)
                    case .double(let d): return Float(d)
                    default: throw SextantError(.invalidArgument, "--vector must be a JSON array of numbers")
                    }
                }
            } else if let queries {
                let qf = try VectorFile(path: queries)
                guard row >= 0, row < qf.count else {
                    throw SextantError(.invalidArgument, "--row \(row) is outside the queries file (\(qf.count) rows)")
                }
                query = try qf.readAll().withUnsafeBufferPointer { Array($0[row * qf.dimension..<(row + 1) * qf.dimension]) }
            }
            guard let query else {
                guard let filter else { throw SextantError(.invalidArgument, "give --where, a query (--vector or --queries), or both") }
                try explainFilter(c, filter)
                return
            }
            guard k >= 1 else { throw SextantError(.invalidArgument, "-k must be at least 1") }
            let e = try c.explainSearch(query, k: k, filter: filter, options: try search.options)
            if store.json {
                let estimates = e.plan.estimates.map { x in
                    JSONValue.object(JSONObject([("plan", .string(x.kind.rawValue)), ("seconds", .double(x.seconds)), ("rows", .int(Int64(x.rows))),
                                                 ("recall", x.recall.map { .double($0) } ?? .null), ("knob", x.knob.map { .int(Int64($0)) } ?? .null)]))
                }
                let stages = e.stages.map { JSONValue.object(JSONObject([("stage", .string($0.name)), ("seconds", .double($0.seconds))])) }
                let results = e.results.map { r in JSONValue.object(JSONObject([("id", .unsigned(r.id)), ("distance", .double(Double(r.distance)))])) }
                Console.out(JSONValue.object(JSONObject([
                    ("plan", .string(e.plan.kind.rawValue)), ("forced", .bool(e.plan.forced)), ("matches", .int(Int64(e.plan.matches))),
                    ("liveRows", .int(Int64(e.plan.liveRows))), ("estimatedRows", .int(Int64(e.plan.estimatedRows))),
                    ("rowsScored", .int(Int64(e.rowsScored))), ("partitionsTouched", .int(Int64(e.partitionsTouched))),
                    ("detail", .string(e.detail)), ("estimates", .array(estimates)), ("stages", .array(stages)),
                    ("seconds", .double(e.totalSeconds)), ("results", .array(results)),
                ])).jsonText)
            } else {
                Console.out(e.description, terminator: "")
                for r in e.results { Console.out("  \(r.id)\t\(r.distance)") }
            }
        }
    }

    private func explainFilter(_ c: VectorCollection, _ filter: Filter) throws {
        let e = try c.explain(filter)
        if store.json {
            func node(_ n: FilterExplanation.Node) -> JSONValue {
                .object(JSONObject([
                    ("expression", .string(n.expression)), ("access", .string(n.access)), ("matches", .int(Int64(n.matches))),
                    ("undecided", .int(Int64(n.undecided))), ("keysRead", .int(Int64(n.keysRead))), ("children", .array(n.children.map(node))),
                ]))
            }
            Console.out(JSONValue.object(JSONObject([
                ("matches", .int(Int64(e.matchCount))), ("liveRows", .int(Int64(e.liveRows))), ("rowsChecked", .int(Int64(e.rowsChecked))),
                ("indexKeysRead", .int(Int64(e.indexKeysRead))), ("seconds", .double(e.seconds)), ("estimatedCost", .double(e.estimatedCost)),
                ("plan", node(e.root)),
            ])).jsonText)
        } else {
            Console.out(e.description, terminator: "")
        }
    }
}
