// Exact search (Flat collections), k = 10:
//   - "single": one query per call on one thread (online latency; QPS = 1 / latency),
//   - "batch": 100 queries in one call on all searchThreads (offline throughput),
// unfiltered and with predicates at about 50 %, 10 % and 1 % selectivity, on
//   - synthetic: SEXTANT_BENCH_ROWS (default 20,000) x 384 Gaussian clusters, l2; every
//     query of a workload shares one predicate, so a batch is scored 16 queries per data pass;
//   - pypi-50k: 50,000 x 384 MiniLM embeddings, cosine, each query with its own predicate from
//     filters.jsonl (125 per bucket; 0.1 % included as well), so a filtered batch is one pass
//     per query. Skipped, with a message, when the dataset is not found.
//
// The store is built once per benchmark process (package-benchmark runs every benchmark in
// its own process), in the setup closure, outside the measurements.

import Benchmark
import BenchSupport
import Foundation
import Sextant

let batchSize = 100

func register(_ datasetName: String, buckets: [String], fixture: @escaping @Sendable () throws -> SearchFixture) {
    // Built on first use, inside a setup closure; shared by every benchmark in this process.
    let shared = FixtureBox(fixture)
    for bucket in buckets {
        Benchmark(
            "\(datasetName) single \(bucket)",
            configuration: .rates([.queriesPerSecond, .wallClock], warmupIterations: 3,
                                 maxDuration: .seconds(3), maxIterations: 2_000)
        ) { benchmark, f in
            // One query per iteration, cycling through the workload's queries.
            let qs = f.queries(bucket, count: f.workloads[bucket]!.count)
            let q = qs[benchmark.currentIteration % qs.count]
            do {
                let (r, s) = try timed { try f.collection.search([q]) }
                blackHole(r)
                report(.queriesPerSecond, count: 1, seconds: s, in: benchmark)
            } catch { benchmark.error("search failed: \(error)") }
        } setup: {
            try shared.fixture(announce: "\(datasetName) \(bucket)", bucket: bucket)
        } teardown: {
            shared.close()
        }

        Benchmark(
            "\(datasetName) batch\(batchSize) \(bucket)",
            // A filtered pypi-50k batch takes seconds (one pass per query): allow ~5 samples.
            configuration: .rates([.queriesPerSecond, .wallClock], warmupIterations: 1,
                                 maxDuration: .seconds(10), maxIterations: 20)
        ) { benchmark, f in
            let qs = f.queries(bucket, count: batchSize)
            do {
                let (r, s) = try timed { try f.collection.search(qs) }
                blackHole(r)
                report(.queriesPerSecond, count: qs.count, seconds: s, in: benchmark)
            } catch { benchmark.error("search failed: \(error)") }
        } setup: {
            try shared.fixture(announce: "\(datasetName) \(bucket)", bucket: bucket)
        } teardown: {
            shared.close()
        }
    }
}

/// Builds the fixture lazily, once; ``close()`` deletes its scratch store.
final class FixtureBox: @unchecked Sendable {
    private let make: @Sendable () throws -> SearchFixture
    private var built: SearchFixture?
    private let lock = NSLock()

    init(_ make: @escaping @Sendable () throws -> SearchFixture) { self.make = make }

    func fixture(announce label: String, bucket: String) throws -> SearchFixture {
        lock.lock()
        defer { lock.unlock() }
        if let built { return built }
        let (f, seconds) = try timed { try make() }
        built = f
        let sel = f.selectivity[bucket].map { String(format: "%.2f %%", $0 * 100) } ?? "?"
        FileHandle.standardError.write(Data("[\(label)] built \(f.name) store in \(String(format: "%.1f", seconds)) s; selectivity \(sel), \(f.workloads[bucket]?.count ?? 0) queries\n".utf8))
        return f
    }

    /// Closes the store and deletes its directory (benchmark teardown).
    func close() {
        lock.lock()
        defer { lock.unlock() }
        built?.close()
        built = nil
    }
}

let benchmarks: @Sendable () -> Void = {
    let rows = BenchEnvironment.rows
    register("synthetic-\(rows / 1000)k", buckets: ["unfiltered", "50%", "10%", "1%"]) {
        try SearchFixture.synthetic(rows: rows)
    }
    if let dir = BenchData.pypi50k() {
        register("pypi-50k", buckets: ["unfiltered", "50%", "10%", "1%", "0.1%"]) {
            try SearchFixture.pypi(directory: dir)
        }
    } else {
        FileHandle.standardError.write(Data("SearchBenchmarks: pypi-50k not found (set SEXTANT_BENCH_DATA, or put it in ../shared/data next to the repository); skipping its benchmarks\n".utf8))
    }
}
