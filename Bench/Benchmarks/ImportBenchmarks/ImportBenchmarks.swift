// Import throughput: synthetic rows with attributes (dimension 384) upserted in transactions of
// 10,000 rows into a fresh store, with durable commits (fsync per transaction, the default)
// and with .noSync (one sync at the end, included in the time).
//
// One iteration = one complete import of SEXTANT_BENCH_ROWS rows (default 20,000) into a new
// store; creating the store and deleting it afterwards are outside the measured region.

import Benchmark
import BenchSupport
import Foundation
import Sextant
import SextantTestSupport

let benchmarks: @Sendable () -> Void = {
    let rows = BenchEnvironment.rows
    let batch = BenchEnvironment.batch
    let dimension = BenchEnvironment.dimension

    let modes: [(String, SyncMode)] = [("durable", .durable), ("noSync", .noSync)]
    for (label, mode) in modes {
        Benchmark(
            "Import \(rows) x \(dimension), \(batch)/txn, \(label)",
            configuration: .rates(
                [.rowsPerSecond, .wallClock, .cpuTotal, .peakMemoryResident],
                warmupIterations: 1,
                maxDuration: .seconds(rows > 50_000 ? 60 : 15),
                maxIterations: rows > 50_000 ? 3 : 5
            )
        ) { benchmark, data in
            let scratch = ScratchDirectory(prefix: "sextant-bench-import")
            defer { scratch.remove() }
            do {
                var config = Store.Configuration()
                config.syncMode = mode
                let store = try Store(path: scratch.path, configuration: config)
                defer { store.close() }
                let coll = try store.createCollection("items", dimension: dimension, metric: .l2, schema: SyntheticDataset.schema)
                let ((), seconds) = try timed {
                    benchmark.startMeasurement()
                    for b in data.batches { try coll.upsert(b) }
                    if mode == .noSync { try store.sync() }
                    benchmark.stopMeasurement()
                }
                report(.rowsPerSecond, count: data.count, seconds: seconds, in: benchmark)
                let stored = try coll.count()
                if stored != data.count { benchmark.error("imported \(stored) rows, expected \(data.count)") }
            } catch {
                benchmark.error("import failed: \(error)")
            }
        } setup: {
            SyntheticRows(rows: rows, dimension: dimension, batch: batch, queries: 0)
        }
    }
}
