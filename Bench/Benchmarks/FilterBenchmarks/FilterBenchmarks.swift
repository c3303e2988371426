// Filter evaluation on 1,000,000 synthetic rows (SEXTANT_BENCH_FILTER_ROWS to change): a
// Zipfian `category` over 100 values, a lognormal `price`, a `date`, a `tags` list, an
// `in_stock` bool — SyntheticDataset, seed 42, so every run sees the same data.
//
// For each selectivity (50 %, 10 %, 1 %, 0.1 %) an equality predicate (the category whose
// share is closest) and a range predicate (`price BETWEEN` two quantiles) are counted two
// ways in the same process: through the attribute indexes (bitmap + count) and by reading
// and evaluating every row. The figure to compare is the wall-clock time per count.
//
// The store is built once and kept in the temporary directory (it takes ~30 s); later runs
// and the per-benchmark processes reopen it.

import Benchmark
import BenchSupport
import Foundation
import Sextant
import SextantTestSupport

let rows = BenchEnvironment.int("SEXTANT_BENCH_FILTER_ROWS", default: 1_000_000)
let targets: [(String, Double)] = [("50%", 0.5), ("10%", 0.1), ("1%", 0.01), ("0.1%", 0.001)]

final class FilterFixture: @unchecked Sendable {
    let store: Store
    let collection: VectorCollection
    /// (label, predicate, matching rows)
    let predicates: [(String, Filter, Int)]

    init() throws {
        let path = NSTemporaryDirectory() + "/sextant-bench-filters-\(rows)-v2"
        let complete = path + ".complete"
        let data = SyntheticDataset(rows: rows, dimension: 2, queries: 0, seed: 42)
        if !FileManager.default.fileExists(atPath: complete) {
            try? FileManager.default.removeItem(atPath: path)
            let s = try Store(path: path)
            let c = try s.createCollection("items", dimension: 2, metric: .l2, schema: SyntheticDataset.schema)
            var i = 0
            while i < rows {
                let end = min(i + 50_000, rows)
                try c.upsert((i..<end).map { Row(id: UInt64($0), vector: data.vector($0), attributes: data.attributes[$0]) })
                i = end
            }
            s.close()
            FileManager.default.createFile(atPath: complete, contents: Data())
        }
        store = try Store(path: path)
        collection = try store.collection("items")
        // Predicates of the target selectivities, chosen from the data itself.
        var categories: [(String, Int)] = []
        for k in 0..<100 {
            let name = "cat\(k)"
            categories.append((name, try collection.count(where: .compare("category", .equal, .string(name)))))
        }
        var prices: [Double] = data.attributes.compactMap { if case .double(let p)? = $0["price"] { p } else { nil } }
        prices.sort()
        var out: [(String, Filter, Int)] = []
        for (label, t) in targets {
            // One category when one comes within 30 % of the target share, else an IN list
            // of the most frequent categories that reaches it.
            let target = Double(rows) * t
            let eq: Filter
            if let (cat, _) = categories.min(by: { abs(Double($0.1) - target) < abs(Double($1.1) - target) }),
               let n = categories.first(where: { $0.0 == cat })?.1, abs(Double(n) - target) <= 0.3 * target {
                eq = .compare("category", .equal, .string(cat))
            } else {
                var chosen: [AttributeValue] = []
                var sum = 0
                for (cat, n) in categories.sorted(by: { $0.1 > $1.1 }) where Double(sum) < target {
                    if Double(sum + n) <= target * 1.15 || chosen.isEmpty { chosen.append(.string(cat)); sum += n }
                }
                eq = .in("category", chosen)
            }
            out.append(("\(label) equality", eq, try collection.count(where: eq)))
            let lo = prices[Int(Double(prices.count) * 0.3)]
            let hi = prices[min(prices.count - 1, Int(Double(prices.count) * 0.3) + Int(Double(rows) * t))]
            let range = Filter.between("price", .double(lo), .double(hi))
            out.append(("\(label) range", range, try collection.count(where: range)))
        }
        predicates = out
        // The benchmark tool keeps the processes' output to itself: leave the predicates in a file.
        let text = out.map { "\($0.0): \($0.1.toSQL()) matches \($0.2) rows (\(String(format: "%.3f", 100 * Double($0.2) / Double(rows))) %)" }.joined(separator: "\n")
        FileManager.default.createFile(atPath: path + ".predicates.txt", contents: Data((text + "\n").utf8))
    }
}

let box = FixtureBox<FilterFixture>()

let benchmarks: @Sendable () -> Void = {
    for (label, _) in targets {
        for kind in ["equality", "range"] {
            let name = "\(label) \(kind)"
            Benchmark("index \(name)", configuration: .init(metrics: [.wallClock], warmupIterations: 3, maxDuration: .seconds(3), maxIterations: 1_000)) { benchmark in
                let f = try box.get { try FilterFixture() }
                let (_, filter, n) = f.predicates.first { $0.0 == name }!
                for _ in benchmark.scaledIterations {
                    let c = try f.collection.count(where: filter)
                    precondition(c == n)
                    blackHole(c)
                }
            }
            Benchmark("scan \(name)", configuration: .init(metrics: [.wallClock], warmupIterations: 1, maxDuration: .seconds(5), maxIterations: 10)) { benchmark in
                let f = try box.get { try FilterFixture() }
                let (_, filter, n) = f.predicates.first { $0.0 == name }!
                for _ in benchmark.scaledIterations {
                    let c = try f.collection.countByScan(where: filter)
                    precondition(c == n)
                    blackHole(c)
                }
            }
        }
    }
}

/// Builds the fixture on first use (inside a measured closure's first, warm-up iteration).
final class FixtureBox<T>: @unchecked Sendable {
    private var value: T?
    private let lock = NSLock()
    func get(_ make: () throws -> T) throws -> T {
        lock.lock(); defer { lock.unlock() }
        if let value { return value }
        let v = try make()
        value = v
        return v
    }
}
