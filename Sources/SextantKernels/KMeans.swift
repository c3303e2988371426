// k-means for product-quantizer training: k-means++ seeding, Lloyd iterations, empty-cluster
// repair. Internal; ProductQuantizer is the public face. Single-threaded and deterministic: the
// same points and seed give the same centroids bit for bit (the C kernels give identical
// results with and without AVX2).

import CSextantSIMD

/// SplitMix64: a tiny seeded generator so training is reproducible without a dependency.
struct PQRandom {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Uniform in 0..<n (n > 0); the modulo bias is < n / 2^64, irrelevant here.
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// Sub-vectors of one sub-space, stored dimension-major ("SoA"): coordinate `i` of point `p` at
/// `i * count + p`. Seeding then scans points 16 at a time, and assignment reads each point's
/// coordinates as broadcast scalars.
struct KMeansPoints {
    var values: [Float]
    let count: Int
    let dimension: Int
}

/// Centroids of one sub-space in the two layouts the kernels want.
struct KMeansCentroids {
    /// Row-major `k x dimension` (decode, serialization).
    var rows: [Float]
    let k: Int
    let dimension: Int

    /// Dimension-major `dimension x k` (k is a multiple of 16 here: 16 or 256).
    func transposed() -> [Float] {
        var t = [Float](repeating: 0, count: rows.count)
        for c in 0..<k {
            for i in 0..<dimension { t[i * k + c] = rows[c * dimension + i] }
        }
        return t
    }

    /// `‖c‖²` per centroid.
    func squaredNorms() -> [Float] {
        (0..<k).map { c in
            var s: Float = 0
            for i in 0..<dimension { s += rows[c * dimension + i] * rows[c * dimension + i] }
            return s
        }
    }
}

enum KMeans {
    /// Runs k-means++ seeding then `iterations` Lloyd steps. `points.count >= k`.
    static func train(_ points: KMeansPoints, k: Int, iterations: Int, seed: UInt64) -> KMeansCentroids {
        var rng = PQRandom(seed: seed)
        var centroids = seedPlusPlus(points, k: k, rng: &rng)
        let n = points.count, dim = points.dimension
        var assignment = [Int32](repeating: 0, count: n)
        var sums = [Double](repeating: 0, count: k * dim)
        var counts = [Int](repeating: 0, count: k)
        for _ in 0..<iterations {
            assign(points, centroids: centroids, into: &assignment)
            accumulate(points, assignment: assignment, sums: &sums, counts: &counts)
            for c in 0..<k where counts[c] > 0 {
                let inv = 1 / Double(counts[c])
                for i in 0..<dim { centroids.rows[c * dim + i] = Float(sums[c * dim + i] * inv) }
            }
            repairEmptyClusters(&centroids, counts: &counts)
        }
        return centroids
    }

    /// Per-cluster coordinate sums (in Double, so the order of 50,000 additions hardly
    /// matters) and sizes.
    private static func accumulate(_ points: KMeansPoints, assignment: [Int32], sums: inout [Double], counts: inout [Int]) {
        let n = points.count, dim = points.dimension
        sums.withUnsafeMutableBufferPointer { s in
            counts.withUnsafeMutableBufferPointer { cnt in
                points.values.withUnsafeBufferPointer { p in
                    assignment.withUnsafeBufferPointer { a in
                        s.update(repeating: 0)
                        cnt.update(repeating: 0)
                        for q in 0..<n { cnt[Int(a[q])] &+= 1 }
                        // Coordinate-major, matching the points' layout: each pass reads one row.
                        for i in 0..<dim {
                            let row = p.baseAddress! + i * n
                            for q in 0..<n { s[Int(a[q]) &* dim &+ i] += Double(row[q]) }
                        }
                    }
                }
            }
        }
    }

    /// Gives every empty cluster half of the currently largest one: a copy of its centroid nudged
    /// apart by a relative 1/1024, alternating sign per coordinate (as FAISS does). The next
    /// assignment then splits the large cluster between the two.
    static func repairEmptyClusters(_ centroids: inout KMeansCentroids, counts: inout [Int]) {
        let k = centroids.k, dim = centroids.dimension
        let eps: Float = 1.0 / 1024
        for c in 0..<k where counts[c] == 0 {
            var big = 0
            for j in 1..<k where counts[j] > counts[big] { big = j }
            guard counts[big] > 1 else { continue }
            for i in 0..<dim {
                let v = centroids.rows[big * dim + i]
                let up = v * (1 + eps), down = v * (1 - eps)
                centroids.rows[c * dim + i] = i % 2 == 0 ? up : down
                centroids.rows[big * dim + i] = i % 2 == 0 ? down : up
            }
            counts[c] = counts[big] / 2
            counts[big] -= counts[c]
        }
    }

    /// k-means++: each next centroid is a point drawn with probability proportional to its
    /// squared distance to the nearest centroid chosen so far.
    static func seedPlusPlus(_ points: KMeansPoints, k: Int, rng: inout PQRandom) -> KMeansCentroids {
        let n = points.count, dim = points.dimension
        var rows = [Float](repeating: 0, count: k * dim)
        var nearest = [Float](repeating: .infinity, count: n)
        points.values.withUnsafeBufferPointer { p in
            nearest.withUnsafeMutableBufferPointer { dist in
                var chosen = rng.below(n)
                for c in 0..<k {
                    for i in 0..<dim { rows[c * dim + i] = p[i * n + chosen] }
                    if c == k - 1 { break }
                    let total = updateNearest(p.baseAddress!, n: n, dim: dim, centroid: rows, offset: c * dim,
                                              nearest: dist.baseAddress!)
                    chosen = total > 0 ? pick(dist, total: total, r: rng.unit() * total) : rng.below(n)
                }
            }
        }
        return KMeansCentroids(rows: rows, k: k, dimension: dim)
    }

    /// `nearest[p] = min(nearest[p], ‖p − centroid‖²)` for every point (in C, vectorised);
    /// returns the sum of the updated array.
    private static func updateNearest(
        _ p: UnsafePointer<Float>, n: Int, dim: Int, centroid: [Float], offset: Int,
        nearest: UnsafeMutablePointer<Float>
    ) -> Double {
        centroid.withUnsafeBufferPointer { c in
            sextant_update_nearest(p, n, dim, c.baseAddress! + offset, nearest)
        }
        var total = 0.0
        for q in 0..<n { total += Double(nearest[q]) }
        return total
    }

    /// The first index at which the running sum of `weights` exceeds `r`; falls back to the
    /// last positive weight when rounding leaves `r` beyond the end.
    private static func pick(_ weights: UnsafeMutableBufferPointer<Float>, total: Double, r: Double) -> Int {
        var running = 0.0
        var lastPositive = 0
        for i in weights.indices where weights[i] > 0 {
            running += Double(weights[i])
            lastPositive = i
            if running > r { return i }
        }
        return lastPositive
    }

    /// Nearest centroid of every point (ties to the smaller index).
    static func assign(_ points: KMeansPoints, centroids: KMeansCentroids, into out: inout [Int32]) {
        let t = centroids.transposed(), norms = centroids.squaredNorms()
        points.values.withUnsafeBufferPointer { p in
            t.withUnsafeBufferPointer { tp in
                norms.withUnsafeBufferPointer { np in
                    out.withUnsafeMutableBufferPointer { o in
                        sextant_nearest_centroids(p.baseAddress!, points.count, points.count, points.dimension,
                                                  tp.baseAddress!, np.baseAddress!, centroids.k, o.baseAddress!)
                    }
                }
            }
        }
    }
}

extension KMeans {
    /// Which nearest-centroid kernel ``nearestCentroids(points:count:dimension:centroidsT:norms:k:path:)`` runs.
    enum NearestPath { case dispatched, baseline, portable }

    /// Direct access to the C nearest-centroid kernels (dimension-major points and centroids):
    /// tests check that the AVX2, SSE2 and scalar paths agree.
    static func nearestCentroids(
        points: [Float], count: Int, dimension: Int, centroidsT: [Float], norms: [Float], k: Int, path: NearestPath
    ) -> [Int32] {
        precondition(points.count == count * dimension && centroidsT.count == k * dimension && norms.count == k)
        precondition(k % 16 == 0, "k must be a multiple of 16")
        var out = [Int32](repeating: -1, count: count)
        out.withUnsafeMutableBufferPointer { o in
            switch path {
            case .dispatched: sextant_nearest_centroids(points, count, count, dimension, centroidsT, norms, k, o.baseAddress!)
            case .baseline: sextant_nearest_centroids_baseline(points, count, count, dimension, centroidsT, norms, k, o.baseAddress!)
            case .portable: sextant_nearest_centroids_portable(points, count, count, dimension, centroidsT, norms, k, o.baseAddress!)
            }
        }
        return out
    }
}
