import Foundation
import Sextant
import SextantFormats

/// Token sets from a tokens file (every set's tokens, in set order) and a counts file (int32
/// `.npy` or `.ivecs`: the token count of each set, in order).
struct TokenSets {
    var tokens: [Float]
    var counts: [Int]
    var offsets: [Int]
    var dimension: Int

    var count: Int { counts.count }
    func set(_ i: Int) -> [Float] { Array(tokens[offsets[i] * dimension..<offsets[i + 1] * dimension]) }

    /// Reads and checks both files: counts of at least 1 that add up to the token rows, the
    /// dimension `dimension` when given. Nothing is written before this succeeds.
    static func read(tokens path: String, counts countsPath: String, dimension: Int?) throws -> TokenSets {
        let tf = try VectorFile(path: path)
        if let dimension, tf.dimension != dimension {
            throw SextantError(.dimensionMismatch, "'\(path)' has tokens of dimension \(tf.dimension); the collection's tokens have \(dimension)",
                               context: ["file": path, "expected": String(dimension), "got": String(tf.dimension)])
        }
        let cf = try VectorFile(path: countsPath)
        let raw = try cf.int32Rows(0..<cf.count)
        var counts: [Int] = []
        var offsets = [0]
        counts.reserveCapacity(raw.count)
        for (i, c) in raw.enumerated() {
            guard c >= 1 else {
                throw SextantError(.invalidArgument, "item \(i) has \(c) tokens; every token set needs at least one",
                                   context: ["file": countsPath, "row": String(i)])
            }
            counts.append(Int(c))
            offsets.append(offsets[i] + Int(c))
        }
        guard offsets.last! == tf.count else {
            throw SextantError(.malformedFile, "the counts in '\(countsPath)' add up to \(offsets.last!) tokens; '\(path)' has \(tf.count) token rows",
                               context: ["file": countsPath, "expected": String(tf.count), "got": String(offsets.last!)])
        }
        return TokenSets(tokens: try tf.readAll(), counts: counts, offsets: offsets, dimension: tf.dimension)
    }
}

/// `sextant import` into a multi-vector collection: `--vectors` holds every document's tokens
/// in document order, `--counts` each document's token count.
func importDocuments(_ db: Store, _ coll: VectorCollection, tokens: String, counts: String, attributes: String?,
                     ids: [UInt64]?, batch: Int, json: Bool) throws -> (documents: Int, seconds: Double) {
    guard let mv = coll.info.multiVector else {
        throw SextantError(.invalidArgument, "--counts imports token sets; collection '\(coll.name)' holds single vectors")
    }
    let sets = try TokenSets.read(tokens: tokens, counts: counts, dimension: mv.tokenDimension)
    if let ids, ids.count != sets.count {
        throw SextantError(.malformedFile, "ids file has \(ids.count) lines for \(sets.count) documents")
    }
    var attrs: [[String: AttributeValue]]? = nil
    if let attributes {
        var all: [[String: AttributeValue]] = []
        let n = try LineReader(path: attributes).forEachLine { bytes, line in
            guard line < sets.count else {
                throw SextantError(.malformedFile, "'\(attributes)' has more lines than there are documents (\(sets.count))",
                                   context: ["file": attributes, "line": String(line + 1)])
            }
            let value: JSONValue
            do { value = try JSONValue(parsing: bytes) } catch let e as SextantError { throw e.adding(["file": attributes, "line": String(line + 1)]) }
            all.append(try coll.attributes(fromJSON: value, row: line))
        }
        guard n == sets.count else {
            throw SextantError(.malformedFile, "'\(attributes)' has \(n) lines for \(sets.count) documents", context: ["file": attributes])
        }
        attrs = all
    }
    let progress = Progress(total: sets.count, unit: "documents", json: json)
    let started = Date()
    var next = 0
    while next < sets.count {
        let end = min(next + batch, sets.count)
        let docs = (next..<end).map { i in
            MultiVectorRow(id: ids?[i] ?? UInt64(i), tokens: sets.set(i), attributes: attrs?[i] ?? [:])
        }
        do { try coll.upsert(documents: docs) } catch let e as SextantError {
            var e = e
            if let r = e.context["row"], let ri = Int(r) { e.context["row"] = String(ri + next) }
            e.context["file"] = tokens
            throw e
        }
        next = end
        progress.advance(to: next)
    }
    progress.finish()
    return (sets.count, Date().timeIntervalSince(started))
}

/// Multi-vector search options from the shared flags and `--candidates`.
func multiVectorOptions(_ flags: SearchFlags, candidates: Int?) throws -> MultiVectorSearchOptions {
    // The candidate stage over codes is the multi-vector layer's, not a plan of the planner.
    if flags.plan == "graph-over-codes" {
        return MultiVectorSearchOptions(candidates: candidates, exact: flags.exact, ef: flags.ef, rerank: flags.rerank, traverseCodes: true)
    }
    let plan = try flags.planKind
    return MultiVectorSearchOptions(candidates: candidates, exact: flags.exact || plan == .exact,
                                    candidatePlan: plan == .exact ? nil : plan, ef: flags.ef, rerank: flags.rerank)
}

/// Query token sets as multi-vector queries.
func multiVectorQueries(_ coll: VectorCollection, queries: String, queryCounts: String, k: Int, filters: [Filter?]?) throws -> [MultiVectorQuery] {
    guard let mv = coll.info.multiVector else {
        throw SextantError(.invalidArgument, "--query-counts searches token sets; collection '\(coll.name)' holds single vectors")
    }
    let sets = try TokenSets.read(tokens: queries, counts: queryCounts, dimension: mv.tokenDimension)
    if let filters, filters.count != sets.count {
        throw SextantError(.malformedFile, "\(filters.count) filters for \(sets.count) queries")
    }
    return (0..<sets.count).map { MultiVectorQuery(tokens: sets.set($0), k: k, filter: filters?[$0] ?? nil) }
}

/// `sextant query --query-counts`: answers token-set queries; `explain` prints each plan on
/// stderr.
func runMultiVectorQuery(_ coll: VectorCollection, _ qs: [MultiVectorQuery], options: MultiVectorSearchOptions, k: Int,
                         out: String?, explain: Bool) throws {
    let t0 = Date()
    var results: [[SearchResult]]
    if explain {
        results = []
        for q in qs {
            let e = try coll.explainSearch(tokens: q.tokens, k: q.k, filter: q.filter, options: options)
            Console.err(e.description)
            results.append(e.results)
        }
    } else {
        results = try coll.search(qs, options: options)
    }
    let secs = Date().timeIntervalSince(t0)
    if let out { try writeResults(results, k: k, to: out) }
    let summary = "{\"queries\":\(qs.count),\"seconds\":\(String(format: "%.4f", secs)),\"qps\":\(String(format: "%.1f", Double(qs.count) / max(secs, 1e-9)))}"
    if out == "-" { Console.err(summary) } else { Console.out(summary) }
}

/// `sextant bench --query-counts`: recall@k against the truth, QPS one query at a time, and
/// the documents re-ranked per query.
func runMultiVectorBench(_ coll: VectorCollection, _ qs: [MultiVectorQuery], truth: [Int32], truthDimension: Int,
                         options: MultiVectorSearchOptions, k: Int, runs: Int, json: Bool) throws {
    var results: [[SearchResult]] = []
    var qps: [Double] = []
    var latencies: [Double] = []
    for _ in 0..<runs {
        results = []
        var lat: [Double] = []
        let t0 = Date()
        for q in qs {
            let s = Date()
            results.append(try coll.search(tokens: q.tokens, k: q.k, filter: q.filter, options: options))
            lat.append(Date().timeIntervalSince(s))
        }
        qps.append(Double(qs.count) / Date().timeIntervalSince(t0))
        latencies = lat
    }
    var hits = 0, possible = 0, short = 0
    for i in qs.indices {
        let row = truth[i * truthDimension..<(i + 1) * truthDimension].prefix(k).filter { $0 >= 0 }.map { UInt64($0) }
        let got = Set(results[i].prefix(k).map(\.id))
        hits += row.filter { got.contains($0) }.count
        possible += row.count
        if results[i].count < row.count { short += 1 }
    }
    let recall = possible == 0 ? 1.0 : Double(hits) / Double(possible)
    latencies.sort()
    func pct(_ p: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(p * Double(latencies.count)))] * 1000 }
    let median = qps.sorted()[qps.count / 2]
    let candidates = options.exact ? 0 : (options.candidates ?? MultiVectorSearchOptions.defaultCandidates(k: k))
    if json {
        Console.out(String(format: "{\"queries\":%d,\"k\":%d,\"recall\":%.4f,\"short_results\":%d,\"qps\":%.2f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"candidates\":%d,\"exact\":%@,\"runs\":%d}",
                           qs.count, k, recall, short, median, pct(0.5), pct(0.99), candidates, options.exact ? "true" : "false", runs))
    } else {
        Console.out(String(format: "queries %d  k %d  recall@%d %.4f  short results %d  candidates %d%@", qs.count, k, k, recall, short, candidates,
                           options.exact ? " (exact Chamfer)" : ""))
        Console.out(String(format: "online (one query at a time): %.2f QPS  p50 %.3f ms  p99 %.3f ms", median, pct(0.5), pct(0.99)))
    }
}

/// Writes int32 values as a 1-D `.npy` (`<i4`).
func writeInt32Npy(_ values: [Int32], to path: String) throws {
    var header = "{'descr': '<i4', 'fortran_order': False, 'shape': (\(values.count),), }"
    while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
    let n = UInt16(header.utf8.count)
    out += [UInt8(n & 0xFF), UInt8(n >> 8)]
    out += Array(header.utf8)
    values.withUnsafeBytes { out += $0 }
    guard FileManager.default.createFile(atPath: path, contents: Data(out)) else {
        throw SextantError(.io, "cannot write '\(path)'", context: ["file": path])
    }
}

/// After an import: a recipe whose codebooks or graph are not built yet is built now.
func buildIndexAfterImport(_ coll: VectorCollection) throws {
    let status = try coll.indexStatus()
    guard (status.wantsCodes && !status.codesTrained) || (status.wantsGraph && !status.graphBuilt) else { return }
    let t0 = Date()
    try coll.buildIndex()
    Console.err("index built in \(String(format: "%.2f", Date().timeIntervalSince(t0))) s")
}

/// The multi-vector branch of `sextant import`.
func importMultiVectorCommand(_ db: Store, _ coll: VectorCollection, tokens: String, counts: String, attributes: String?, idsFile: String?,
                              batch: Int, noSync: Bool, deferIndex: Bool, json: Bool) throws {
    var ids: [UInt64]? = nil
    if let idsFile {
        var out: [UInt64] = []
        _ = try LineReader(path: idsFile).forEachLine { bytes, line in
            let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            guard let v = UInt64(text) else {
                throw SextantError(.malformedFile, "ids file line \(line + 1) is not an unsigned integer: '\(text.prefix(40))'",
                                   context: ["file": idsFile, "line": String(line + 1)])
            }
            out.append(v)
        }
        ids = out
    }
    let r = try importDocuments(db, coll, tokens: tokens, counts: counts, attributes: attributes, ids: ids, batch: batch, json: json)
    if noSync { try db.sync() }
    if !deferIndex { try buildIndexAfterImport(coll) }
    let total = try coll.count()
    if json {
        Console.out("{\"imported\":\(r.documents),\"rows\":\(total),\"seconds\":\(String(format: "%.3f", r.seconds)),\"documents_per_second\":\(String(format: "%.1f", Double(r.documents) / max(r.seconds, 1e-9)))}")
    } else {
        Console.out("imported \(r.documents) documents into '\(coll.name)' in \(String(format: "%.2f", r.seconds)) s (\(Int(Double(r.documents) / max(r.seconds, 1e-9))) documents/s); it now holds \(total) rows")
    }
}

/// The multi-vector branch of `sextant batch`: workload rows number the query token sets.
func runMultiVectorBatch(_ coll: VectorCollection, _ items: [(row: Int, filter: Filter?)], queries: String, queryCounts: String, k: Int,
                         out: String, truth: String?, oneByOne: Bool, options: MultiVectorSearchOptions, json: Bool) throws {
    let sets = try multiVectorQueries(coll, queries: queries, queryCounts: queryCounts, k: k, filters: nil)
    let qs = try items.enumerated().map { i, item -> MultiVectorQuery in
        guard item.row < sets.count else {
            throw SextantError(.malformedFile, "workload line \(i + 1) names query \(item.row); there are \(sets.count) token sets")
        }
        return MultiVectorQuery(tokens: sets[item.row].tokens, k: k, filter: item.filter)
    }
    let t0 = Date()
    let results = oneByOne ? try qs.map { try coll.search(tokens: $0.tokens, k: $0.k, filter: $0.filter, options: options) }
                           : try coll.search(qs, options: options)
    let secs = Date().timeIntervalSince(t0)
    try writeResults(results, k: k, to: out)
    var summary = "{\"queries\":\(qs.count),\"seconds\":\(String(format: "%.4f", secs)),\"qps\":\(String(format: "%.1f", Double(qs.count) / max(secs, 1e-9))),\"mode\":\"\(oneByOne ? "one-by-one" : "batch")\""
    if let truth {
        let tf = try VectorFile(path: truth)
        guard tf.count >= qs.count else { throw SextantError(.malformedFile, "the ground truth has \(tf.count) rows for \(qs.count) queries") }
        let gt = try tf.int32Rows(0..<qs.count)
        var hits = 0, possible = 0, short = 0
        for i in qs.indices {
            let row = gt[i * tf.dimension..<(i + 1) * tf.dimension].prefix(k).filter { $0 >= 0 }.map { UInt64($0) }
            let got = Set(results[i].prefix(k).map(\.id))
            hits += row.filter { got.contains($0) }.count
            possible += row.count
            if results[i].count < row.count { short += 1 }
        }
        summary += String(format: ",\"recall\":%.4f,\"short_results\":%d", possible == 0 ? 1.0 : Double(hits) / Double(possible), short)
    }
    if out == "-" { Console.err(summary + "}") } else { Console.out(summary + "}") }
}
