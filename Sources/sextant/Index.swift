import ArgumentParser
import Foundation
import Sextant
import SextantFormats

struct Index: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build the collection's index over its rows: train PQ codebooks and encode every row, build the HNSW graph.",
        discussion: "Runs after `import --defer-index`, or again to retrain on data that has changed. Rows written after training are encoded as they are written.",
        aliases: ["reindex"]
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .long, parsing: .unconditional, help: "Threads for the graph build (default: all cores).") var threads: Int?

    func validate() throws { try OptionCheck.atLeast(1, threads, "--threads") }

    func run() throws {
        try runReporting(json: store.json) {
            let db = try openStore(store.db)
            defer { db.close() }
            let c = try db.collection(collection)
            let t0 = Date()
            let bar = ProgressBar(json: store.json)
            try c.buildIndex(threads: threads, onProgress: bar.handler)
            bar.finish()
            let s = try c.indexStatus()
            let secs = Date().timeIntervalSince(t0)
            if store.json {
                Console.out("{\"recipe\":\"\(s.recipe)\",\"rows\":\(s.codedRows),\"codeBytes\":\(s.codeBytes),\"seconds\":\(String(format: "%.3f", secs))}")
            } else {
                Console.out("indexed '\(collection)' (\(s.recipe): codes \(s.codesTrained ? "\(s.codeBytes) B/row" : "none"), graph \(s.graphBuilt ? "built" : "none")) in \(String(format: "%.2f", secs)) s")
            }
        }
    }
}

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the planner's cost model on this machine and store it with the collection.",
        discussion: "Index builds do this; run it again after moving the store to another machine. Prints the measured constants."
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .long, help: "Query vectors of the expected workload (.fvecs/.npy; up to 32 used) for the recall model.") var queries: String?

    func run() throws {
        try runReporting(json: store.json) {
            let db = try openStore(store.db)
            defer { db.close() }
            var vectors: [[Float]]? = nil
            if let queries {
                let qf = try VectorFile(path: queries)
                let flat = try qf.readAll()
                let d = qf.dimension
                vectors = (0..<qf.count).map { Array(flat[$0 * d..<($0 + 1) * d]) }
            }
            let m = try db.collection(collection).calibrate(queries: vectors)
            func us(_ x: Double?) -> String { x.map { String(format: "%.4f µs", $0 * 1e6) } ?? "—" }
            if store.json {
                var fields: [(String, JSONValue)] = [
                    ("exactPerRow", .double(m.exactPerRow)), ("tiledPerRow", .double(m.tiledPerRow)), ("tiledPerPair", .double(m.tiledPerPair)),
                    ("liveRows", .int(Int64(m.liveRows))), ("seconds", .double(m.calibrationSeconds)),
                ]
                if let p = m.passPerPair { fields.append(("passPerPair", .double(p))) }
                if let p = m.passPerEntry { fields.append(("passPerEntry", .double(p))) }
                if let c = m.codePerRow { fields.append(("codePerRow", .double(c))) }
                if let g = m.graphBySelectivity {
                    fields.append(("graph", .array(g.map { .object(JSONObject([("selectivity", .double($0.selectivity)), ("seconds", .double($0.seconds)), ("distances", .double($0.distances))])) })))
                }
                if let r = m.recall { fields.append(("recall", r.json)) }
                Console.out(JSONValue.object(JSONObject(fields)).jsonText)
            } else {
                Console.out("cost model of '\(collection)' (\(m.liveRows) live rows, measured in \(String(format: "%.1f", m.calibrationSeconds * 1000)) ms)")
                Console.out("  exact scan: \(us(m.exactPerRow)) per row; shared pass: \(us(m.tiledPerRow)) per row + \(us(m.tiledPerPair)) per query-row pair")
                Console.out("  partition-major pass: \(us(m.passPerPair)) per vector-row pair + \(us(m.passPerEntry)) per block and group")
                Console.out("  PQ codes: \(us(m.codePerRow)) per row; fast-scan block of \(m.codeSlotsPerBlock.map(String.init) ?? "—"): re-pack \(us(m.codeBlockRepack)), scan \(us(m.codeBlockScan)) per query")
                if let g = m.graphBySelectivity {
                    Console.out("  graph, ef \(m.defaultEF): unfiltered \(us(m.graphBase)) + \(us(m.graphPerEf)) per unit of ef")
                    for p in g {
                        Console.out(String(format: "    selectivity %.4f: %.1f µs, %.0f distances", p.selectivity, p.seconds * 1e6, p.distances))
                    }
                }
                if let r = m.recall {
                    Console.out("  expected recall@10 (worst of independent, correlated, anti-correlated row sets) by knob:")
                    for kind in PlanKind.allCases {
                        guard let curves = r.curves[kind] else { continue }
                        Console.out("    \(kind.rawValue) (\(kind == .codes ? "re-rank depth" : "ef")):")
                        for c in curves {
                            let points = c.points.map { "\($0.knob): \(String(format: "%.3f", $0.recall))" }.joined(separator: "  ")
                            Console.out(String(format: "      selectivity %.4f  ", c.selectivity) + points)
                        }
                    }
                }
            }
        }
    }
}

struct Partition: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Lay a collection out for a workload: a qd-tree of the workload's predicates, each partition in consecutive slots.",
        discussion: """
            Each line of --workload is a JSON object with "where" (SQL text, JSON predicate or null) and, with \
            --queries, "query" (its row in the queries file). --cells N trains N k-means cells over the vectors \
            (vector locality: rows of a partition in cell order, and `cell < t` cuts); with --queries each workload \
            query counts as probing its --probes nearest cells, which searches with --probes then read alone. The rows \
            are rewritten in one transaction and the graph keeps its edges under the new slots; exact results do not \
            change. The store is then compacted (unless --no-compact, or another process has it open), so the file \
            does not keep the old layout's pages. `stat` shows the partitions and how far later writes have drifted \
            from them.
            """
    )
    @OptionGroup var store: StoreOptions
    @Argument(help: "The collection name.") var collection: String
    @Option(name: .long, help: "The workload: one JSON object per line.") var workload: String
    @Option(name: .long, parsing: .unconditional, help: "At most this many partitions.") var maxPartitions: Int = 64
    @Option(name: .long, parsing: .unconditional, help: "No partition smaller than this (default: live rows / (4 · max partitions), at least 64).") var minRows: Int?
    @Option(name: .long, parsing: .unconditional, help: "Accepted for older scripts; unused (the graph is renamed, not rebuilt).") var threads: Int?
    @Option(name: .long, parsing: .unconditional, help: "k-means cells over the vectors (0: none; else a multiple of 16).") var cells: Int = 0
    @Option(name: .long, help: "Query vectors (.fvecs/.npy) the workload's \"query\" rows refer to.") var queries: String?
    @Option(name: .long, parsing: .unconditional, help: "Cells each workload query probes (with --cells and --queries).") var probes: Int = 1
    @Flag(name: .long, help: "Leave the old layout's pages in the file's free list (later writes reuse them) instead of compacting.") var noCompact = false

    func validate() throws {
        try OptionCheck.atLeast(1, maxPartitions, "--max-partitions")
        try OptionCheck.atLeast(1, minRows, "--min-rows")
        try OptionCheck.atLeast(1, threads, "--threads")
        try OptionCheck.atLeast(0, cells, "--cells")
        try OptionCheck.atLeast(1, probes, "--probes")
    }

    func run() throws {
        try runReporting(json: store.json) {
            var filters: [Filter?] = []
            var rows: [Int] = []
            var lines: [Int] = []
            let qf = try queries.map { try VectorFile(path: $0) }
            _ = try LineReader(path: workload).forEachLine { bytes, line in
                let ctx = ["file": workload, "line": String(line + 1)]
                lines.append(line + 1)
                do {
                    let json = try JSONValue(parsing: bytes)
                    guard case .object = json else { throw SextantError(.malformedFile, "each workload line must be a JSON object") }
                    if let qf {
                        guard case .int(let row)? = json["query"], row >= 0, row < qf.count else {
                            throw SextantError(.malformedFile, "with --queries each workload line needs \"query\": a row of the queries file (\(qf.count) rows)")
                        }
                        rows.append(Int(row))
                    }
                    switch json["where"] {
                    case nil, .null?: filters.append(nil)
                    case .string(let s)?: filters.append(s.isEmpty ? nil : try Filter(sql: s))
                    case let v?: filters.append(try Filter(json: v))
                    }
                } catch let e as SextantError { throw e.adding(ctx) }
            }
            let t0 = Date()
            let layout = try partition(filters: filters, lines: lines, rows: rows, queryFile: qf)
            // The rewrite freed the old layout's pages; a compacting copy gives the disk back
            // (it needs the store to itself, so it runs after this process closed it).
            var compacted: (before: Int, after: Int)? = nil
            var compactNote: String? = nil
            if !noCompact {
                do {
                    compacted = try Store.compact(path: store.db)
                } catch let e as SextantError where e.code == .locked {
                    compactNote = "not compacted: the store is open elsewhere; later writes reuse the freed pages, or run `sextant compact`"
                }
            }
            let secs = Date().timeIntervalSince(t0)
            if store.json {
                Console.out(JSONValue.object(JSONObject([
                    ("partitions", .int(Int64(layout.leaves.count))), ("rowsTouchedUnpartitioned", .double(layout.rowsTouchedUnpartitioned)),
                    ("rowsTouchedPartitioned", .double(layout.rowsTouchedPartitioned)), ("seconds", .double(secs)),
                    ("fileBytesBefore", compacted.map { .int(Int64($0.before)) } ?? .null),
                    ("fileBytesAfter", compacted.map { .int(Int64($0.after)) } ?? .null),
                    ("leaves", .array(layout.leaves.map { l in .object(JSONObject([
                        ("id", .int(Int64(l.id))), ("condition", .string(layout.describe(l))), ("rows", .int(Int64(l.rows))),
                        ("start", .int(Int64(l.slots.lowerBound))), ("end", .int(Int64(l.slots.upperBound))),
                    ])) })),
                ])).jsonText)
            } else {
                let ratio = layout.rowsTouchedPartitioned / max(layout.rowsTouchedUnpartitioned, 1)
                Console.out("partitioned '\(collection)' into \(layout.leaves.count) partitions in \(String(format: "%.2f", secs)) s; rows the workload touches: \(String(format: "%.0f", layout.rowsTouchedPartitioned)) of \(String(format: "%.0f", layout.rowsTouchedUnpartitioned)) (\(String(format: "%.1f", ratio * 100)) %)")
                for l in layout.leaves {
                    Console.out("  \(l.id): \(l.rows) rows, slots \(l.slots.lowerBound)..<\(l.slots.upperBound)  \(layout.describe(l))")
                }
                if let compacted {
                    Console.out("compacted: data file \(formatBytes(compacted.before)) → \(formatBytes(compacted.after))")
                }
            }
            if let compactNote { Console.err(compactNote) }
        }
    }

    /// Opens the store, partitions the collection and closes the store again.
    private func partition(filters: [Filter?], lines: [Int], rows: [Int], queryFile qf: VectorFile?) throws -> PartitionLayout {
        let db = try openStore(store.db)
        defer { db.close() }
        let c = try db.collection(collection)
        try FilePredicates(filters: filters, file: workload, lines: lines).bind(to: c.schema)
        var vectors: [[Float]]? = nil
        if let qf {
            let flat = try qf.readAll()
            let d = qf.dimension
            vectors = rows.map { Array(flat[$0 * d..<($0 + 1) * d]) }
        }
        let bar = ProgressBar(json: store.json)
        defer { bar.finish() }
        return try c.partition(workload: filters, maxPartitions: maxPartitions, minRows: minRows, cells: cells,
                               queryVectors: vectors, probes: probes, threads: threads, onProgress: bar.handler)
    }
}
