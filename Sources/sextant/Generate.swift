import ArgumentParser
import Foundation
import Sextant
import SextantFormats
import SextantTestSupport

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

    func run() throws {
        try runReporting(json: false) {
            guard rows >= 1, dim >= 1, queries >= 0 else { throw SextantError(.invalidArgument, "--rows and --dim must be positive") }
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
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
