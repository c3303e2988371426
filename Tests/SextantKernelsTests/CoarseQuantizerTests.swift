import Testing
import SextantKernels
import SextantTestSupport

/// The coarse quantizer: deterministic training, cells that are nearest centroids, nearest-first
/// probes, a byte-exact round trip, and typed errors for bad input.
@Suite struct CoarseQuantizerTests {
    static func data(_ n: Int, d: Int, seed: UInt64) -> [Float] {
        var rng = SeededRandom(seed: seed)
        let centers = (0..<20).map { _ in (0..<d).map { _ in Float(rng.gaussian() * 3) } }
        return (0..<n).flatMap { _ in
            let c = centers[Int(rng.next() % 20)]
            return c.map { $0 + Float(rng.gaussian() * 0.5) }
        }
    }

    @Test func trainingIsDeterministicAndCellsAreNearestCentroids() throws {
        let d = 12
        let x = Self.data(2000, d: d, seed: 3)
        let a = try CoarseQuantizer(training: x, dimension: d, cells: 32, seed: 9)
        let b = try CoarseQuantizer(training: x, dimension: d, cells: 32, seed: 9)
        #expect(a == b && a.cells == 32 && a.centroids.count == 32 * d)
        for p in stride(from: 0, to: 2000, by: 37) {
            let v = Array(x[p * d..<(p + 1) * d])
            let dist = (0..<32).map { c in zip(v, a.centroids[c * d..<(c + 1) * d]).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }
            let cell = a.cell(of: v)
            #expect(dist[cell] <= dist.min()! * (1 + 1e-4) + 1e-4)
            let order = a.nearest(v, count: 32)
            #expect(order.first == cell && Set(order).count == 32)
            #expect(zip(order, order.dropFirst()).allSatisfy { dist[$0] <= dist[$1] * (1 + 1e-4) + 1e-4 })
            #expect(a.nearest(v, count: 5) == Array(order.prefix(5)))
        }
        let bytes = a.serialized()
        #expect(try bytes.withUnsafeBytes { try CoarseQuantizer(serialized: $0) } == a)
    }

    @Test func nearestCellsSelectLikeASortWithTiesToTheSmallerNumber() {
        var rng = SeededRandom(seed: 5)
        // Few distinct values, so ties are everywhere; the heap path (count < cells / 4) and the
        // sort path must both give the sorted prefix.
        let d = (0..<256).map { _ in Float(rng.next() % 7) }
        let sorted = d.indices.sorted { d[$0] < d[$1] || (d[$0] == d[$1] && $0 < $1) }
        for count in [0, 1, 3, 17, 63, 64, 65, 200, 256, 300] {
            #expect(CoarseQuantizer.nearest(d, count: count) == Array(sorted.prefix(count)), "count \(count)")
        }
    }

    @Test func badInputIsTyped() {
        let x = Self.data(100, d: 4, seed: 1)
        #expect(throws: PQError.self) { try CoarseQuantizer(training: x, dimension: 4, cells: 20, seed: 1) }
        #expect(throws: PQError.notEnoughTrainingVectors(have: 100, need: 112)) { try CoarseQuantizer(training: x, dimension: 4, cells: 112, seed: 1) }
        var bad = x
        bad[7] = .nan
        #expect(throws: PQError.nonFiniteValue) { try CoarseQuantizer(training: bad, dimension: 4, cells: 16, seed: 1) }
        #expect(throws: PQError.self) { try CoarseQuantizer(training: Array(x.dropLast()), dimension: 4, cells: 16, seed: 1) }
        let good = try? CoarseQuantizer(training: x, dimension: 4, cells: 16, seed: 1)
        var bytes = good?.serialized() ?? []
        bytes.removeLast()
        #expect(throws: PQError.self) { try bytes.withUnsafeBytes { try CoarseQuantizer(serialized: $0) } }
        #expect(throws: PQError.self) { try [UInt8](repeating: 0, count: 40).withUnsafeBytes { try CoarseQuantizer(serialized: $0) } }
    }
}
