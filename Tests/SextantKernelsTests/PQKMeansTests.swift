import SextantTestSupport
import Testing
@testable import SextantKernels

@Suite struct PQKMeansTests {
    /// The AVX2, SSE2 and portable nearest-centroid kernels return the same indices as a
    /// reference computing the same expression in the same order, ties to the smaller index.
    @Test(arguments: [16, 256, 1024])
    func nearestCentroidPathsAgree(k: Int) {
        var rng = SeededRandom(seed: UInt64(k))
        // Above 32 coordinates the broadcast table is on the heap (a coarse quantizer's vectors).
        for dim in [1, 2, 3, 4, 8, 9, 32, 33, 128] {
            let count = 37  // groups of 8 plus a partial one
            // Coarse values so that ties between centroids really happen.
            var rows = (0..<(k * dim)).map { _ in Float(Int.random(in: -3...3, using: &rng)) / 2 }
            for c in stride(from: 1, to: k, by: 5) {
                for i in 0..<dim { rows[c * dim + i] = rows[(c - 1) * dim + i] }  // exact duplicates
            }
            let points = (0..<(count * dim)).map { _ in Float(Int.random(in: -4...4, using: &rng)) / 2 }
            var t = [Float](repeating: 0, count: k * dim)
            for c in 0..<k { for i in 0..<dim { t[i * k + c] = rows[c * dim + i] } }
            let norms = (0..<k).map { c in (0..<dim).reduce(Float(0)) { $0 + rows[c * dim + $1] * rows[c * dim + $1] } }
            var expected = [Int32]()
            for p in 0..<count {
                var best = Float.infinity, arg: Int32 = 0
                for c in 0..<k {
                    var a = norms[c]
                    for i in 0..<dim { a = a + (-2 * points[i * count + p]) * t[i * k + c] }
                    if a < best { best = a; arg = Int32(c) }
                }
                expected.append(arg)
            }
            for path in [KMeans.NearestPath.dispatched, .baseline, .portable] {
                let got = KMeans.nearestCentroids(points: points, count: count, dimension: dim, centroidsT: t,
                                                  norms: norms, k: k, path: path)
                #expect(got == expected, "dim \(dim), \(path)")
            }
        }
    }
}
