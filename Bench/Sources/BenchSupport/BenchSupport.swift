// Helpers shared by the benchmark targets: sizes from the environment, scratch directories,
// dataset location, the custom metrics, and the synthetic / pypi-50k fixtures.

import Benchmark
import Foundation
import Sextant
import SextantTestSupport
import SextantFormats

#if canImport(Glibc)
import Glibc
#endif

// MARK: Environment

public enum BenchEnvironment {
    /// An integer from the environment, or `fallback` when unset or not a positive integer.
    public static func int(_ name: String, default fallback: Int) -> Int {
        guard let text = ProcessInfo.processInfo.environment[name],
              let value = Int(text.replacingOccurrences(of: "_", with: "")), value > 0 else { return fallback }
        return value
    }

    /// Rows of the synthetic datasets (import and synthetic search): `SEXTANT_BENCH_ROWS`, default 20,000.
    public static var rows: Int { int("SEXTANT_BENCH_ROWS", default: 20_000) }

    /// Rows per import transaction: `SEXTANT_BENCH_BATCH`, default 10,000.
    public static var batch: Int { int("SEXTANT_BENCH_BATCH", default: 10_000) }

    /// The dimension of the synthetic data (the pypi-50k embeddings have 384 too).
    public static let dimension = 384
}

// MARK: Metrics

extension BenchmarkMetric {
    /// Rows written per second of the measured region (exact, not rounded to whole iterations).
    public static let rowsPerSecond = BenchmarkMetric.custom("rows/s", polarity: .prefersLarger, useScalingFactor: false)
    /// Queries answered per second of the measured region.
    public static let queriesPerSecond = BenchmarkMetric.custom("queries/s", polarity: .prefersLarger, useScalingFactor: false)
    /// Megabytes (10^6 bytes) of vector data read per second.
    public static let megabytesPerSecond = BenchmarkMetric.custom("MB/s", polarity: .prefersLarger, useScalingFactor: false)
    /// Millions of floating-point operations per second (a squared-L2 term is 3 flops).
    public static let megaflopsPerSecond = BenchmarkMetric.custom("MFLOP/s", polarity: .prefersLarger, useScalingFactor: false)
}

extension Benchmark.Configuration {
    /// A configuration whose custom rate metrics print as plain numbers (not auto-scaled to K/M).
    public static func rates(
        _ metrics: [BenchmarkMetric], warmupIterations: Int, maxDuration: Duration, maxIterations: Int
    ) -> Benchmark.Configuration {
        var units: [BenchmarkMetric: BenchmarkUnits] = [:]
        for m in metrics { if case .custom = m { units[m] = .count } }
        return .init(metrics: metrics, units: units, warmupIterations: warmupIterations,
                     maxDuration: maxDuration, maxIterations: maxIterations)
    }
}

/// Times `body` with the monotonic clock; returns its result and the elapsed seconds.
@inline(__always)
public func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let clock = ContinuousClock()
    var result: T?
    let elapsed = try clock.measure { result = try body() }
    let c = elapsed.components
    return (result!, Double(c.seconds) + Double(c.attoseconds) * 1e-18)
}

/// Reports `count / seconds` (rounded) for a custom rate metric.
public func report(_ metric: BenchmarkMetric, count: Double, seconds: Double, in benchmark: Benchmark) {
    guard seconds > 0 else { return }
    benchmark.measurement(metric, Int((count / seconds).rounded()))
}

public func report(_ metric: BenchmarkMetric, count: Int, seconds: Double, in benchmark: Benchmark) {
    report(metric, count: Double(count), seconds: seconds, in: benchmark)
}

// MARK: Scratch directories

/// A fresh directory under the system temporary directory, removed by ``remove()``.
public struct ScratchDirectory: Sendable {
    public let path: String

    public init(prefix: String) {
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/\(prefix).XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { p in mkdtemp(p.baseAddress!) }
        precondition(made != nil, "mkdtemp failed under \(base): errno \(errno)")
        path = String(cString: made!)
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

// MARK: Datasets

public enum BenchData {
    /// The pypi-50k directory, or nil: `SEXTANT_BENCH_DATA/pypi-50k` when that variable is set,
    /// else `../shared/data/pypi-50k` relative to the repository root, else `/work/shared/data/pypi-50k`.
    public static func pypi50k(filePath: String = #filePath) -> String? {
        var candidates: [String] = []
        if let dir = ProcessInfo.processInfo.environment["SEXTANT_BENCH_DATA"], !dir.isEmpty {
            candidates.append(dir + "/pypi-50k")
        }
        // This file is <repo>/Bench/Sources/BenchSupport/BenchSupport.swift.
        let repo = URL(fileURLWithPath: filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(repo.deletingLastPathComponent().appendingPathComponent("shared/data/pypi-50k").path)
        candidates.append("/work/shared/data/pypi-50k")
        let fm = FileManager.default
        return candidates.first { dir in
            ["base.npy", "attributes.jsonl", "queries.fvecs", "filters.jsonl"].allSatisfy { fm.fileExists(atPath: dir + "/" + $0) }
        }
    }
}

/// Synthetic rows (``SyntheticDataset``: Gaussian clusters with correlated attributes) cut into
/// import batches.
public struct SyntheticRows: Sendable {
    public let dataset: SyntheticDataset
    public let batches: [[Row]]
    public var count: Int { dataset.count }

    public init(rows: Int, dimension: Int = BenchEnvironment.dimension, batch: Int = BenchEnvironment.batch, queries: Int = 100, seed: UInt64 = 42) {
        let ds = SyntheticDataset(rows: rows, dimension: dimension, queries: queries, seed: seed)
        var batches: [[Row]] = []
        var start = 0
        while start < rows {
            let end = min(start + batch, rows)
            batches.append((start..<end).map { i in Row(id: UInt64(i), vector: ds.vector(i), attributes: ds.attributes[i]) })
            start = end
        }
        dataset = ds
        self.batches = batches
    }
}

/// A store in a scratch directory holding one collection, built once per benchmark process.
public final class SearchFixture: Sendable {
    public let name: String
    public let scratch: ScratchDirectory
    public let store: Store
    public let collection: VectorCollection
    /// Query vectors, one array each.
    public let queries: [[Float]]
    /// Named query sets: the query indexes and the filter of each.
    public let workloads: [String: [(index: Int, filter: Filter?)]]
    /// Measured fraction of rows matching each workload's filters (mean over its queries).
    public let selectivity: [String: Double]

    init(name: String, scratch: ScratchDirectory, store: Store, collection: VectorCollection, queries: [[Float]],
         workloads: [String: [(index: Int, filter: Filter?)]], selectivity: [String: Double]) {
        self.name = name
        self.scratch = scratch
        self.store = store
        self.collection = collection
        self.queries = queries
        self.workloads = workloads
        self.selectivity = selectivity
    }

    /// The queries of `workload`, cycled to `count` entries, each asking for `k` neighbours.
    public func queries(_ workload: String, count: Int, k: Int = 10) -> [Query] {
        guard let w = workloads[workload], !w.isEmpty else { return [] }
        return (0..<count).map { i in
            let (qi, f) = w[i % w.count]
            return Query(vector: queries[qi], k: k, filter: f)
        }
    }

    public func close() {
        store.close()
        scratch.remove()
    }

    static func openStore(prefix: String) throws -> (ScratchDirectory, Store) {
        let scratch = ScratchDirectory(prefix: prefix)
        var config = Store.Configuration()
        // Building the fixture is not what is measured; one sync at the end suffices.
        config.syncMode = .noSync
        return (scratch, try Store(path: scratch.path, configuration: config))
    }

    /// Predicates over ``SyntheticDataset/schema`` at about 50 %, 10 % and 1 % of the rows
    /// (measured and printed when the fixture is built).
    public static let syntheticPredicates: [(String, String)] = [
        ("50%", "date >= 20200601"),
        ("10%", "price >= 60 AND in_stock = TRUE"),
        ("1%", "category = 'cat3' AND date >= 20180101"),
    ]

    /// `rows` synthetic rows (l2, dimension 384) and 100 queries drawn from the same clusters.
    public static func synthetic(rows: Int) throws -> SearchFixture {
        let data = SyntheticRows(rows: rows)
        let (scratch, store) = try openStore(prefix: "sextant-bench-synthetic")
        let coll = try store.createCollection("synthetic", dimension: data.dataset.dimension, metric: .l2, schema: SyntheticDataset.schema)
        for b in data.batches { try coll.upsert(b) }
        try store.sync()
        let queries = (0..<data.dataset.queryCount).map { data.dataset.query($0) }
        var workloads: [String: [(index: Int, filter: Filter?)]] = ["unfiltered": queries.indices.map { ($0, nil) }]
        var selectivity: [String: Double] = ["unfiltered": 1]
        for (bucket, sql) in syntheticPredicates {
            let f = try Filter(sql: sql)
            workloads[bucket] = queries.indices.map { ($0, f) }
            selectivity[bucket] = try matchFraction(coll, f, total: rows, probe: queries[0])
        }
        return SearchFixture(name: "synthetic-\(rows)", scratch: scratch, store: store, collection: coll, queries: queries,
                             workloads: workloads, selectivity: selectivity)
    }

    /// pypi-50k: 50,000 real MiniLM embeddings (cosine, float16 on disk) with package attributes,
    /// 500 queries and one predicate per query in buckets 50 %, 10 %, 1 %, 0.1 %.
    public static func pypi(directory dir: String) throws -> SearchFixture {
        let base = try VectorFile(path: dir + "/base.npy")
        let schema = try Schema(parsing: "name:string,month:int,year:int,rank:int,major_version:int,summary_len:int,tags:[string]")
        let (scratch, store) = try openStore(prefix: "sextant-bench-pypi")
        let coll = try store.createCollection("pypi", dimension: base.dimension, metric: .cosine, schema: schema)
        let batch = 10_000
        var pending: [[String: AttributeValue]] = []
        var next = 0
        func flush(upTo end: Int) throws {
            guard end > next else { return }
            let flat = try base.rows(next..<end)
            let d = base.dimension
            let rows = (next..<end).map { i in
                Row(id: UInt64(i), vector: Array(flat[(i - next) * d..<(i - next + 1) * d]), attributes: pending[i - next])
            }
            try coll.upsert(rows)
            pending.removeAll(keepingCapacity: true)
            next = end
        }
        let lines = try LineReader(path: dir + "/attributes.jsonl").forEachLine { bytes, line in
            pending.append(try coll.attributes(fromJSON: try JSONValue(parsing: bytes), row: line))
            if pending.count == batch { try flush(upTo: line + 1) }
        }
        try flush(upTo: lines)
        guard lines == base.count else {
            throw SextantError(.malformedFile, "attributes.jsonl has \(lines) lines for \(base.count) vectors")
        }
        try store.sync()

        let qf = try VectorFile(path: dir + "/queries.fvecs")
        let flat = try qf.readAll()
        let queries = (0..<qf.count).map { i in Array(flat[i * qf.dimension..<(i + 1) * qf.dimension]) }
        var workloads: [String: [(index: Int, filter: Filter?)]] = ["unfiltered": queries.indices.map { ($0, nil) }]
        var declared: [String: [Double]] = [:]
        try LineReader(path: dir + "/filters.jsonl").forEachLine { bytes, line in
            let json = try JSONValue(parsing: bytes)
            guard case .string(let sql)? = json["where"], case .string(let bucket)? = json["bucket"] else {
                throw SextantError(.malformedFile, "filters.jsonl line \(line + 1) lacks where/bucket")
            }
            workloads[bucket, default: []].append((line, try Filter(sql: sql)))
            if case .double(let s)? = json["selectivity"] { declared[bucket, default: []].append(s) }
        }
        var selectivity: [String: Double] = ["unfiltered": 1]
        for (bucket, s) in declared { selectivity[bucket] = s.reduce(0, +) / Double(s.count) }
        return SearchFixture(name: "pypi-50k", scratch: scratch, store: store, collection: coll, queries: queries,
                             workloads: workloads, selectivity: selectivity)
    }

    /// The fraction of rows matching `filter`, from an exact search with k = all rows.
    static func matchFraction(_ coll: VectorCollection, _ filter: Filter, total: Int, probe: [Float]) throws -> Double {
        Double(try coll.search(probe, k: total, filter: filter).count) / Double(total)
    }
}
