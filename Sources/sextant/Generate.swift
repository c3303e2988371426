import ArgumentParser
import Foundation
import Sextant
import SextantFormats
import SextantDatasets

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a deterministic synthetic dataset (vectors, attributes, queries, filters).",
        discussion: """
            Files: base.fvecs, attributes.jsonl, queries.fvecs, filters.jsonl (one sample predicate per query). \
            Schema: \(SyntheticDataset.schema.spelling)
            """)

    @Argument(help: "Output directory (created).") var directory: String
    @Option(name: .long, help: "Base rows.") var rows: Int = 10_000
    @Option(name: .long, help: "Dimension.") var dim: Int = 64
    @Option(name: .long, help: "Query vectors.") var queries: Int = 100
    @Option(name: .long, help: "Gaussian clusters.") var clusters: Int = 32
    @Option(name: .long, help: "Random seed.") var seed: UInt64 = 42
    @Flag(name: .long, help: "Write a late-interaction set instead: tokens.npy, counts.npy, queries.npy, query-counts.npy, attributes.jsonl (--rows documents of --dim-d tokens).") var multiVector = false
    @Option(name: .long, help: "With --multi-vector: tokens per document, MIN,MAX.") var tokens: String = "32,128"
    @Option(name: .long, help: "With --multi-vector: tokens per query.") var queryTokens: Int = 32
    @Option(name: .long, help: "With --multi-vector: concept centroids.") var concepts: Int = 2048
    @Option(name: .long, help: "With --multi-vector: Zipf exponent of concept popularity (0: uniform).") var zipf: Double = 0.8
    @Option(name: .long, help: "With --multi-vector: write truth.ivecs, the exact Chamfer top N of each query (brute force).") var truth: Int?

    func run() throws {
        try runReporting(json: false) {
            guard rows >= 1, dim >= 1, queries >= 0 else { throw SextantError(.invalidArgument, "--rows and --dim must be positive") }
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            if multiVector { return try generateMultiVector() }
            let ds = SyntheticDataset(rows: rows, dimension: dim, queries: queries, clusters: clusters, seed: seed)
            try VectorFileWriter.write(ds.vectors, dimension: dim, to: directory + "/base.fvecs", format: .fvecs)
            if queries > 0 { try VectorFileWriter.write(ds.queries, dimension: dim, to: directory + "/queries.fvecs", format: .fvecs) }
            var out: [UInt8] = []
            for a in ds.attributes {
                var members: [(key: String, value: JSONValue)] = []
                for f in SyntheticDataset.schema.fields { if let v = a[f.name] { members.append((f.name, v.jsonValue)) } }
                JSONValue.object(JSONObject(members)).write(into: &out)
                out.append(10)
            }
            try Data(out).write(to: URL(fileURLWithPath: directory + "/attributes.jsonl"))
            out = []
            for i in 0..<queries {
                JSONValue.object(JSONObject([("where", .string(SyntheticDataset.samplePredicates[i % SyntheticDataset.samplePredicates.count]))])).write(into: &out)
                out.append(10)
            }
            try Data(out).write(to: URL(fileURLWithPath: directory + "/filters.jsonl"))
            Console.out("wrote \(rows) x \(dim) vectors, attributes and \(queries) queries to \(directory) (schema \(SyntheticDataset.schema.spelling))")
        }
    }
}

extension Generate {
    func generateMultiVector() throws {
        let range = tokens.split(separator: ",").compactMap { Int($0) }
        guard range.count == 2, range[0] >= 1, range[1] >= range[0], queryTokens >= 1, concepts >= 1 else {
            throw SextantError(.invalidArgument, "--tokens must be MIN,MAX with 1 <= MIN <= MAX; --query-tokens and --concepts at least 1")
        }
        let started = Date()
        let ds = MultiVectorDataset(documents: rows, queries: queries, dimension: dim, concepts: concepts, minTokens: range[0],
                                    maxTokens: range[1], queryTokens: queryTokens, popularity: zipf, seed: seed)
        try VectorFileWriter.write(ds.tokens, dimension: dim, to: directory + "/tokens.npy", format: .npy)
        try writeInt32Npy(ds.counts.map { Int32($0) }, to: directory + "/counts.npy")
        if queries > 0 {
            try VectorFileWriter.write(ds.queryTokens, dimension: dim, to: directory + "/queries.npy", format: .npy)
            try writeInt32Npy(ds.queryCounts.map { Int32($0) }, to: directory + "/query-counts.npy")
        }
        var out: [UInt8] = []
        for a in ds.attributes {
            var members: [(key: String, value: JSONValue)] = []
            for f in MultiVectorDataset.schema.fields { if let v = a[f.name] { members.append((f.name, v.jsonValue)) } }
            JSONValue.object(JSONObject(members)).write(into: &out)
            out.append(10)
        }
        try Data(out).write(to: URL(fileURLWithPath: directory + "/attributes.jsonl"))
        Console.err(String(format: "generated in %.1f s", Date().timeIntervalSince(started)))
        if let truth, queries > 0 {
            guard truth >= 1 else { throw SextantError(.invalidArgument, "--truth must be at least 1") }
            let t0 = Date()
            var flat: [Int32] = []
            for q in 0..<queries {
                let top = ds.exactTop(ds.query(q), k: truth)
                for i in 0..<truth { flat.append(i < top.count ? Int32(top[i].index) : -1) }
            }
            try VectorFileWriter.writeIvecs(flat, dimension: truth, to: directory + "/truth.ivecs")
            Console.err(String(format: "exact Chamfer truth for %d queries in %.1f s (brute force, %.2f queries/s)", queries,
                               Date().timeIntervalSince(t0), Double(queries) / max(Date().timeIntervalSince(t0), 1e-9)))
        }
        let total = ds.counts.reduce(0, +)
        Console.out("wrote \(rows) documents (\(total) tokens of dimension \(dim), \(String(format: "%.1f", Double(total) / Double(max(rows, 1)))) per document), \(queries) queries of \(queryTokens) tokens to \(directory) (schema \(MultiVectorDataset.schema.spelling))")
    }
}
