import ArgumentParser
import Foundation
import Sextant
import SextantDatasets

/// Deterministic workloads for the crash and multi-process campaigns (hidden from help).
///
/// `write`: transaction `i` (i = 0, 1, …) upserts and deletes rows chosen by a generator seeded
/// with (seed, i), and prints `ack i` on stdout after its commit returned, so a test that kills
/// the process knows which transactions were acknowledged. ``StressWorkload`` replays them.
/// `read`: queries in a loop for `--seconds`, checking that every snapshot holds a whole number
/// of `--multiple` rows; prints the operations done, exits 1 on any error or torn snapshot.
/// `hold`: opens a read transaction and keeps it (to leave a stale reader slot when killed).
struct Stress: ParsableCommand {
    static let configuration = CommandConfiguration(shouldDisplay: false)

    @Argument var db: String
    @Argument var collection: String
    @Option var mode: String = "write"
    @Option var seed: UInt64 = 1
    @Option var transactions: Int = 1_000_000
    @Option var seconds: Double = 5
    @Option var multiple: Int = 1

    func run() throws {
        try runReporting(json: false) {
            switch mode {
            case "write":
                let store = try openStore(db)
                defer { store.close() }
                let c = try store.collection(collection)
                for i in 0..<transactions {
                    let (rows, deletes) = StressWorkload.transaction(seed: seed, index: i, dimension: c.dimension)
                    // Two commits per step (upserts, then deletes); `ack i` follows both.
                    try c.upsert(rows)
                    try c.delete(deletes)
                    Console.out("ack \(i)")
                }
            case "read":
                var config = Store.Configuration()
                config.readOnly = true
                let store = try Store(path: db, configuration: config)
                defer { store.close() }
                let c = try store.collection(collection)
                let q = [Float](repeating: 0, count: c.dimension)
                let end = Date().addingTimeInterval(seconds)
                var ops = 0
                while Date() < end {
                    let n = try c.count()
                    guard n % multiple == 0 else {
                        throw SextantError(.corrupted, "a snapshot held \(n) rows, not a multiple of \(multiple)")
                    }
                    _ = try c.search(q, k: 10)
                    ops += 2
                }
                Console.out("ops \(ops)")
            case "hold":
                var config = Store.Configuration()
                config.readOnly = true
                let store = try Store(path: db, configuration: config)
                let c = try store.collection(collection)
                try c.dump { _ in
                    Console.out("holding")
                    Thread.sleep(forTimeInterval: seconds)
                    throw CancellationError()
                }
            default:
                throw SextantError(.invalidArgument, "unknown mode \(mode)")
            }
        }
    }
}
