// k-means for product-quantizer training: k-means++ seeding, Lloyd iterations, empty-cluster
// repair. Internal; ProductQuantizer is the public face. Single-threaded and deterministic: the
// same points and seed give the same centroids bit for bit.

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
            for i in sums.indices { sums[i] = 0 }
            for c in 0..<k { counts[c] = 0 }
            points.values.withUnsafeBufferPointer { p in
                for q in 0..<n {
                    let c = Int(assignment[q])
                    counts[c] += 1
                    for i in 0..<dim { sums[c * dim + i] += Double(p[i * n + q]) }
                }
            }
            for c in 0..<k where counts[c] > 0 {
                let inv = 1 / Double(counts[c])
                for i in 0..<dim { centroids.rows[c * dim + i] = Float(sums[c * dim + i] * inv) }
            }
            repairEmptyClusters(&centroids, counts: &counts)
        }
        return centroids
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

    /// `nearest[p] = min(nearest[p], ‖p − centroid‖²)` for every point, 16 points at a time;
    /// returns the sum of the updated array.
    private static func updateNearest(
        _ p: UnsafePointer<Float>, n: Int, dim: Int, centroid: [Float], offset: Int,
        nearest: UnsafeMutablePointer<Float>
    ) -> Double {
        var total = 0.0
        var q = 0
        let raw = UnsafeRawPointer(p)
        while q + 16 <= n {
            var acc = SIMD16<Float>()
            for i in 0..<dim {
                let x = raw.loadUnaligned(fromByteOffset: (i * n + q) * 4, as: SIMD16<Float>.self)
                let d = x - SIMD16(repeating: centroid[offset + i])
                acc += d * d
            }
            let old = UnsafeRawPointer(nearest).loadUnaligned(fromByteOffset: q * 4, as: SIMD16<Float>.self)
            let new = pointwiseMin(old, acc)
            UnsafeMutableRawPointer(nearest).storeBytes(of: new, toByteOffset: q * 4, as: SIMD16<Float>.self)
            total += Double(new.sum())
            q += 16
        }
        while q < n {
            var acc: Float = 0
            for i in 0..<dim {
                let d = p[i * n + q] - centroid[offset + i]
                acc += d * d
            }
            nearest[q] = Swift.min(nearest[q], acc)
            total += Double(nearest[q])
            q += 1
        }
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
                        NearestCentroid.assign(points: p.baseAddress!, count: points.count, stride: points.count,
                                               dimension: points.dimension, centroidsT: tp.baseAddress!,
                                               norms: np.baseAddress!, k: centroids.k) { q, c in o[q] = Int32(c) }
                    }
                }
            }
        }
    }
}

/// Batched nearest-centroid search by `‖c‖² − 2 x·c` (the `‖x‖²` term does not change the argmin),
/// computed 16 centroids at a time with two points sharing every centroid load.
enum NearestCentroid {
    /// - Parameters:
    ///   - points: dimension-major; coordinate `i` of point `p` at `points[i * stride + p]`.
    ///   - centroidsT: dimension-major centroids, `dimension x k`, `k` a multiple of 16.
    ///   - norms: `‖c‖²` per centroid.
    ///   - result: called once per point, in order, with (point, centroid index).
    @inline(__always)
    static func assign(
        points: UnsafePointer<Float>, count: Int, stride: Int, dimension dim: Int,
        centroidsT: UnsafePointer<Float>, norms: UnsafePointer<Float>, k: Int,
        result: (Int, Int) -> Void
    ) {
        let blocks = k / 16
        let scratch = UnsafeMutablePointer<SIMD16<Float>>.allocate(capacity: 2 * blocks)
        defer { scratch.deallocate() }
        let ct = UnsafeRawPointer(centroidsT), nr = UnsafeRawPointer(norms)
        var q = 0
        while q < count {
            let pair = q + 1 < count
            let q1 = pair ? q + 1 : q
            for b in 0..<blocks {
                let base = nr.loadUnaligned(fromByteOffset: b * 64, as: SIMD16<Float>.self)
                var a0 = base, a1 = base
                for i in 0..<dim {
                    let c = ct.loadUnaligned(fromByteOffset: (i * k + b * 16) * 4, as: SIMD16<Float>.self)
                    a0 += SIMD16(repeating: -2 * points[i * stride + q]) * c
                    a1 += SIMD16(repeating: -2 * points[i * stride + q1]) * c
                }
                scratch[b] = a0
                scratch[blocks + b] = a1
            }
            result(q, argmin(scratch, blocks: blocks))
            if pair { result(q1, argmin(scratch + blocks, blocks: blocks)) }
            q += pair ? 2 : 1
        }
    }

    /// Index of the smallest of `16 * blocks` floats, the first one on ties; 0 if all are NaN.
    @inline(__always)
    static func argmin(_ v: UnsafePointer<SIMD16<Float>>, blocks: Int) -> Int {
        var m = v[0]
        for b in 1..<blocks { m = pointwiseMin(m, v[b]) }
        let best = m.min()
        for b in 0..<blocks {
            let hits = v[b] .== SIMD16(repeating: best)
            if any(hits) {
                for lane in 0..<16 where hits[lane] { return b * 16 + lane }
            }
        }
        return 0
    }
}
