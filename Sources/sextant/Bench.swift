import ArgumentParser
import Foundation
import Sextant
import SextantFormats

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure recall@k, QPS and latency percentiles against an .ivecs ground truth.",
        discussion: "Queries run one at a time (latency; one query may use every search thread), then as one batch (throughput). Build with -c release for figures worth quoting.")

    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .long, help: "Query vectors.") var queries: String
    @Option(name: .long, help: "Ground truth .ivecs (ids per query, -1 padding).") var truth: String
    @Option(name: .short, parsing: .unconditional, help: "Neighbours per query.") var k: Int = 10
    @Option(name: .long, help: "A SQL-WHERE predicate for every query.") var `where`: String?
    @Option(name: .long, help: "JSONL with one {\"where\": …} per query.") var filters: String?
    @Option(name: .long, parsing: .unconditional, help: "Repetitions; medians are reported.") var runs: Int = 3
    @Option(name: .long, parsing: .unconditional, help: "Only the first N queries.") var limit: Int?
    @Flag(name: .long, help: "Also time every plan forced on every query and report how often the planner's choice is within 1.5x of the fastest.") var comparePlans = false
    @OptionGroup var search: SearchFlags
    @Option(name: .long, help: "Map the whole store into memory before searching: auto (when it fits in half the memory), on, off.") var prefault: PrefaultChoice = .auto
    @Option(name: .long, help: "Multi-vector collections: token count per query (int32 .npy or .ivecs).") var queryCounts: String?
    @Option(name: .long, help: "Multi-vector collections: candidates re-ranked with exact Chamfer (default max(400, 40k); the HNSW beam --ef defaults to 4x candidates).") var candidates: Int?

    func validate() throws {
        try OptionCheck.atLeast(1, k, "-k")
        try OptionCheck.atLeast(1, runs, "--runs")
        try OptionCheck.atLeast(0, limit, "--limit")
    }

    func run() throws {
        try runReporting(json: store.json) {
            if let queryCounts {
                let db = try openStore(store.db, readOnly: true)
                defer { db.close() }
                prefault.apply(db, path: store.db, json: store.json)
                let coll = try db.collection(collection)
                let n = try VectorFile(path: queryCounts)
                let preds = try loadFilters(where: `where`, filters: filters, count: n.count * n.dimension).filters
                let qs = Array(try multiVectorQueries(coll, queries: queries, queryCounts: queryCounts, k: k, filters: preds).prefix(limit ?? Int.max))
                let tf = try VectorFile(path: truth)
                guard tf.count >= qs.count else { throw SextantError(.malformedFile, "the ground truth has \(tf.count) rows for \(qs.count) queries") }
                try runMultiVectorBench(coll, qs, truth: try tf.int32Rows(0..<qs.count), truthDimension: tf.dimension,
                                        options: try multiVectorOptions(search, candidates: candidates), k: k, runs: runs, json: store.json)
                return
            }
            let qf = try VectorFile(path: queries)
            let tf = try VectorFile(path: truth)
            let n = min(limit ?? qf.count, qf.count)
            guard tf.count >= n else { throw SextantError(.malformedFile, "the ground truth has \(tf.count) rows for \(n) queries") }
            let flat = try qf.readAll()
            let gt = try tf.int32Rows(0..<n)
            let loaded = try loadFilters(where: `where`, filters: filters, count: qf.count)
            let preds = Array(loaded.filters.prefix(n))
            var config = Store.Configuration()
            config.readOnly = true
            if let threads = search.threads { config.searchThreads = threads }
            let db = try Store(path: store.db, configuration: config)
            defer { db.close() }
            prefault.apply(db, path: store.db, json: store.json)
            let coll = try db.collection(collection)
            try loaded.bind(to: coll.schema)
            let d = qf.dimension
            let qs = (0..<n).map { i in Sextant.Query(vector: Array(flat[i * d..<(i + 1) * d]), k: k, filter: preds[i]) }

            // Online: one query at a time, one thread.
            var latencies: [Double] = []
            var onlineQPS: [Double] = []
            var results: [[SearchResult]] = []
            for _ in 0..<runs {
                var lat: [Double] = []
                lat.reserveCapacity(n)
                results = []
                let t0 = Date()
                for q in qs {
                    let s = Date()
                    results.append(try coll.search([q], options: try search.options)[0])
                    lat.append(Date().timeIntervalSince(s))
                }
                onlineQPS.append(Double(n) / Date().timeIntervalSince(t0))
                latencies = lat
            }
            // Batch: all queries at once, all threads.
            var batchQPS: [Double] = []
            for _ in 0..<runs {
                let t0 = Date()
                _ = try coll.search(qs, options: try search.options)
                batchQPS.append(Double(n) / Date().timeIntervalSince(t0))
            }
            if comparePlans { try reportPlanChoices(coll, qs) }
            // What the planner expected of its choices (the recall model), beside what they got.
            let planned = try coll.explainBatch(qs, options: try search.options)
            var expectedSum = 0.0, expectedCount = 0
            for g in planned.groups {
                guard let r = g.plan.estimates.first(where: { $0.kind == g.plan.kind })?.recall else { continue }
                expectedSum += r * Double(g.plan.queries)
                expectedCount += g.plan.queries
            }
            let expected = expectedCount == 0 ? -1 : expectedSum / Double(expectedCount)
            var hits = 0, possible = 0, short = 0, identical = 0
            for i in 0..<n {
                let truthRow = gt[i * tf.dimension..<(i + 1) * tf.dimension].prefix(k).filter { $0 >= 0 }.map { UInt64($0) }
                if results[i].prefix(k).map(\.id) == truthRow { identical += 1 }
                let got = Set(results[i].prefix(k).map(\.id))
                hits += truthRow.filter { got.contains($0) }.count
                possible += truthRow.count
                if results[i].count < truthRow.count { short += 1 }
            }
            let recall = possible == 0 ? 1.0 : Double(hits) / Double(possible)
            latencies.sort()
            func pct(_ p: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(p * Double(latencies.count)))] * 1000 }
            func median(_ a: [Double]) -> Double { a.sorted()[a.count / 2] }
            if store.json {
                Console.out(String(format: "{\"queries\":%d,\"k\":%d,\"recall\":%.4f,\"expected_recall\":%@,\"short_results\":%d,\"identical_lists\":%d,\"qps\":%.1f,\"batch_qps\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"runs\":%d}",
                                   n, k, recall, expected < 0 ? "null" : String(format: "%.4f", expected), short, identical,
                                   median(onlineQPS), median(batchQPS), pct(0.5), pct(0.99), runs))
            } else {
                Console.out(String(format: "queries %d  k %d  recall@%d %.4f (expected %@)  short results %d  lists identical to the truth %d",
                                   n, k, k, recall, expected < 0 ? "unknown" : String(format: "%.4f", expected), short, identical))
                Console.out(String(format: "online (one query at a time): %.1f QPS  p50 %.3f ms  p99 %.3f ms", median(onlineQPS), pct(0.5), pct(0.99)))
                Console.out(String(format: "batch (%d threads): %.1f QPS", db.configuration.searchThreads, median(batchQPS)))
            }
        }
    }

    /// Times every plan the collection offers, forced, on every query (best of `runs`), and
    /// compares the fastest with the planner's choice.
    private func reportPlanChoices(_ coll: VectorCollection, _ qs: [Sextant.Query]) throws {
        let base = try search.options
        var within = 0
        var chosenCount: [String: Int] = [:], fastestCount: [String: Int] = [:]
        var ratios: [Double] = []
        // Per predicate: queries, misses (beyond 1.5x), and which plan was fastest on the misses.
        var byPredicate: [String: (queries: Int, misses: Int, chosen: String, fastestOnMisses: [String: Int])] = [:]
        for q in qs {
            let auto = try coll.explainSearch(q.vector, k: q.k, filter: q.filter, options: base)
            let kinds = auto.plan.estimates.map(\.kind)
            var best: [PlanKind: Double] = [:]
            for kind in kinds {
                var options = base
                options.exact = false
                options.plan = kind
                _ = try coll.search([q], options: options)  // warm
                var t = Double.infinity
                for _ in 0..<runs {
                    let start = DispatchTime.now().uptimeNanoseconds
                    _ = try coll.search([q], options: options)
                    t = min(t, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                }
                best[kind] = t
            }
            let fastest = best.min { $0.value < $1.value }!
            let chosen = best[auto.plan.kind] ?? fastest.value
            let ratio = chosen / max(fastest.value, 1e-9)
            ratios.append(ratio)
            if ratio <= 1.5 { within += 1 }
            let key = q.filter.map { $0.toSQL() } ?? "(no predicate)"
            var entry = byPredicate[key] ?? (0, 0, auto.plan.kind.rawValue, [:])
            entry.queries += 1
            if ratio > 1.5 { entry.misses += 1; entry.fastestOnMisses[fastest.key.rawValue, default: 0] += 1 }
            byPredicate[key] = entry
            chosenCount[auto.plan.kind.rawValue, default: 0] += 1
            fastestCount[fastest.key.rawValue, default: 0] += 1
        }
        ratios.sort()
        let fraction = qs.isEmpty ? 1 : Double(within) / Double(qs.count)
        func counts(_ d: [String: Int]) -> JSONValue { .object(JSONObject(d.sorted { $0.key < $1.key }.map { ($0.key, .int(Int64($0.value))) })) }
        let line = JSONValue.object(JSONObject([
            ("planComparison", .object(JSONObject([
                ("queries", .int(Int64(qs.count))), ("withinOneAndAHalf", .int(Int64(within))), ("fraction", .double(fraction)),
                ("medianRatio", .double(ratios.isEmpty ? 1 : ratios[ratios.count / 2])), ("worstRatio", .double(ratios.last ?? 1)),
                ("chosen", counts(chosenCount)), ("fastest", counts(fastestCount)),
            ]))),
        ]))
        if store.json { Console.err(line.jsonText) } else {
            Console.out(String(format: "planner: choice within 1.5x of the fastest forced plan on %d of %d queries (%.1f %%); median ratio %.2f, worst %.2f",
                               within, qs.count, fraction * 100, ratios.isEmpty ? 1 : ratios[ratios.count / 2], ratios.last ?? 1))
            Console.out("  chosen: \(chosenCount.sorted { $0.key < $1.key })  fastest: \(fastestCount.sorted { $0.key < $1.key })")
            for (pred, e) in byPredicate.filter({ $0.value.misses > 0 }).sorted(by: { $0.value.misses > $1.value.misses }).prefix(8) {
                Console.out("  misses \(e.misses)/\(e.queries) (chose \(e.chosen); fastest \(e.fastestOnMisses.sorted { $0.key < $1.key })): \(pred)")
            }
        }
    }
}
