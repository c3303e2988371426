import SextantTestSupport
import Testing
import SextantKernels

// The stated error bound of the kernels (see PairKernels.swift for the order):
//
//   |computed − exact| ≤ (⌈d/16⌉ + 8) · u · Σ|t_i|        (l2 and ip)
//
// with u = 2⁻²⁴ (Float's unit roundoff) and t_i the exact per-element terms ((q_i − x_i)² or
// q_i x_i). Every term passes through at most ⌈d/16⌉ accumulator adds + 4 reduction adds,
// and is itself computed with ≤ 3 roundings (subtract, square), so ⌈d/16⌉ + 7 roundings
// bound it; +1 covers second-order terms. Cosine adds the two norms
// (each within the same bound, halved by the square root), one multiply, one divide and
// the subtraction from 1, all relative to Σ|q_i x_i| / (‖q‖‖x‖) ≤ 1 (Cauchy–Schwarz):
//
//   |computed − exact| ≤ (2 (⌈d/16⌉ + 8) + 4) · u
//
// The exact value is computed in Double (53-bit products of 24-bit inputs are exact; the
// Double sum's own error is ~2⁻²⁹ of the Float bound and ignored).

private let u = 0x1p-24

private func bound(_ kind: DistanceKind, d: Int, scale: Double) -> Double {
    let m = Double((d + 15) / 16 + 8)
    switch kind {
    case .l2, .ip: return m * u * scale
    case .cosine: return (2 * m + 4) * u
    }
}

/// Exact (Double) distance and Σ|t_i|.
private func exact(_ kind: DistanceKind, _ q: [Float], _ x: [Float]) -> (value: Double, scale: Double) {
    var l2 = 0.0, dot = 0.0, absDot = 0.0, qq = 0.0, xx = 0.0
    for i in q.indices {
        let a = Double(q[i]), b = Double(x[i])
        l2 += (a - b) * (a - b)
        dot += a * b
        absDot += abs(a * b)
        qq += a * a
        xx += b * b
    }
    switch kind {
    case .l2: return (l2, l2)
    case .ip: return (-dot, absDot)
    case .cosine:
        let den = qq.squareRoot() * xx.squareRoot()
        return (den > 0 ? 1 - dot / den : 1, 1)
    }
}

/// A raw buffer holding `rows` at `byteOffset` with `strideBytes` between rows: the kernels
/// must read vectors at any alignment, including odd bytes.
private final class RawRows {
    let raw: UnsafeMutableRawBufferPointer
    let base: UnsafeRawPointer
    init(_ rows: [[Float]], byteOffset: Int, strideBytes: Int) {
        let d = rows.first?.count ?? 0
        raw = .allocate(byteCount: byteOffset + max(rows.count, 1) * strideBytes + d * 4 + 64, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0xFF)  // NaN padding: an over-read would show
        for (r, v) in rows.enumerated() {
            for (i, f) in v.enumerated() {
                raw.storeBytes(of: f, toByteOffset: byteOffset + r * strideBytes + i * 4, as: Float.self)
            }
        }
        base = UnsafeRawPointer(raw.baseAddress! + byteOffset)
    }
    deinit { raw.deallocate() }
    func row(_ r: Int, stride: Int) -> UnsafeRawPointer { base + r * stride }
}

private func vectors(_ n: Int, _ d: Int, _ rng: inout SeededRandom, nearTo: [Float]? = nil) -> [[Float]] {
    (0..<n).map { k in
        if let c = nearTo, k % 2 == 1 {
            // Nearly equal to `c`: the cancellation-heavy case for l2.
            return c.map { $0 + Float.random(in: -1e-3...1e-3, using: &rng) }
        }
        let mag = Float([1, 1e-3, 1e3][k % 3])
        return (0..<d).map { _ in Float.random(in: -2...2, using: &rng) * mag }
    }
}

@Suite struct KernelAccuracy {
    /// Every dimension 1…300, random alignments (0–3 floats, odd bytes), every kind: the
    /// one-to-one, one-to-many (packed and strided), gathered (pointer list and closure)
    /// and tile forms all meet the stated bound, and all give the same bits.
    @Test(arguments: DistanceKind.allCases)
    func everyDimensionEveryEntryPoint(kind: DistanceKind) {
        var rng = SeededRandom(seed: 1234 &+ UInt64(kind.rawValue))
        let byteOffsets = [0, 4, 8, 12, 1, 3, 5, 7, 13]
        for d in 1...300 {
            let nq = 5, nv = 7  // 4-query group + 1 leftover; 2-vector pairs + 1 leftover
            let qs = vectors(nq, d, &rng)
            let xs = vectors(nv, d, &rng, nearTo: qs[0])
            let qOff = byteOffsets[Int.random(in: 0..<byteOffsets.count, using: &rng)]
            let xOff = byteOffsets[Int.random(in: 0..<byteOffsets.count, using: &rng)]
            let padFloats = Int.random(in: 0...3, using: &rng)
            let xStride = (d + padFloats) * 4 + (xOff & 1)  // odd strides too
            let Q = RawRows(qs, byteOffset: qOff, strideBytes: d * 4)
            let X = RawRows(xs, byteOffset: xOff, strideBytes: xStride)

            var tile = [Float](repeating: .nan, count: nq * nv)
            tile.withUnsafeMutableBufferPointer { o in
                Distance.tile(kind, queries: Q.base, queryCount: nq, vectors: X.base, vectorCount: nv,
                              dimension: d, vectorStrideBytes: xStride, into: o.baseAddress!)
            }
            for i in 0..<nq {
                let q = Q.row(i, stride: d * 4)
                var row = [Float](repeating: .nan, count: nv)
                row.withUnsafeMutableBufferPointer { o in
                    Distance.oneToMany(kind, query: q, vectors: X.base, count: nv, dimension: d,
                                       strideBytes: xStride, into: o.baseAddress!)
                }
                var gatheredList = [Float](repeating: .nan, count: nv)
                let pointers = (0..<nv).map { X.row($0, stride: xStride) }
                pointers.withUnsafeBufferPointer { p in
                    gatheredList.withUnsafeMutableBufferPointer { o in
                        Distance.gathered(kind, query: q, vectors: p, dimension: d, into: o.baseAddress!)
                    }
                }
                var gatheredClosure = [Float](repeating: .nan, count: nv)
                gatheredClosure.withUnsafeMutableBufferPointer { o in
                    Distance.gathered(kind, query: q, count: nv, dimension: d, into: o.baseAddress!) {
                        X.row($0, stride: xStride)
                    }
                }
                for j in 0..<nv {
                    let one = Distance.distance(kind, query: q, vector: X.row(j, stride: xStride), dimension: d)
                    let (ref, scale) = exact(kind, qs[i], xs[j])
                    let tol = bound(kind, d: d, scale: scale)
                    #expect(abs(Double(one) - ref) <= tol,
                            "\(kind) d \(d) q \(i) x \(j) offsets \(qOff)/\(xOff): \(one) vs \(ref), tolerance \(tol)")
                    #expect(row[j].bitPattern == one.bitPattern, "\(kind) d \(d): oneToMany")
                    #expect(gatheredList[j].bitPattern == one.bitPattern, "\(kind) d \(d): gathered list")
                    #expect(gatheredClosure[j].bitPattern == one.bitPattern, "\(kind) d \(d): gathered closure")
                    #expect(tile[i * nv + j].bitPattern == one.bitPattern, "\(kind) d \(d): tile")
                }
            }
        }
    }

    /// Tiles equal one-to-many exactly across the shapes that exercise every edge of the
    /// blocking: query counts around the 4-query group, odd vector counts, cache blocks.
    @Test(arguments: DistanceKind.allCases)
    func tilesEqualOneToManyAcrossShapes(kind: DistanceKind) {
        var rng = SeededRandom(seed: 77)
        for (d, nq, nv) in [(384, 9, 131), (16, 4, 5000), (17, 7, 3001), (1, 6, 9), (31, 3, 33), (128, 8, 400)] {
            let qs = vectors(nq, d, &rng), xs = vectors(nv, d, &rng)
            let queries = qs.flatMap { $0 }, flat = xs.flatMap { $0 }
            let m = Distance.tile(kind, queries: queries, vectors: flat, dimension: d)
            for i in 0..<nq {
                let row = Distance.oneToMany(kind, query: qs[i], vectors: flat)
                #expect(row.map(\.bitPattern) == m[i * nv..<(i + 1) * nv].map(\.bitPattern),
                        "\(kind) d \(d) nq \(nq) nv \(nv) query \(i)")
            }
        }
    }

    /// The bound is not vacuous: at d = 300 it is about 27 · 2⁻²⁴ ≈ 1.6e-6 of Σ|t_i|, and a
    /// dropped element (an off-by-one in a tail) errs by ~1/d ≈ 3e-3 of it.
    @Test func boundIsTight() {
        #expect(bound(.l2, d: 300, scale: 1) < 2e-6)
        #expect(bound(.cosine, d: 300, scale: 1) < 4e-6)
    }
}

@Suite struct PartialSortSelection {
    /// `TopK.select` returns exactly the heap's list — ties by id, NaN dropped — for k
    /// below, at and above the candidate count.
    @Test func selectEqualsHeap() {
        var rng = SeededRandom(seed: 3)
        for n in [0, 1, 2, 17, 1000, 5000] {
            // Few distinct values: ties everywhere; some NaN.
            let ds: [Float] = (0..<n).map { j in j % 97 == 5 ? .nan : Float(Int.random(in: 0..<20, using: &rng)) }
            let ids: [UInt64] = (0..<n).map { UInt64($0 * 7 + 3) }.shuffled(using: &rng)
            for k in [0, 1, 3, 10, n / 2, n, n + 5] {
                var heap = TopK(k: k)
                ds.withUnsafeBufferPointer { heap.insert(distances: $0, firstID: 100) }
                let sel = ds.withUnsafeBufferPointer { TopK.select(k: k, distances: $0, firstID: 100) }
                #expect(sel == heap.sortedResults(), "n \(n) k \(k)")
                var heap2 = TopK(k: k)
                ds.withUnsafeBufferPointer { d in ids.withUnsafeBufferPointer { heap2.insert(distances: d, ids: $0) } }
                let sel2 = ds.withUnsafeBufferPointer { d in ids.withUnsafeBufferPointer { TopK.select(k: k, distances: d, ids: $0) } }
                #expect(sel2 == heap2.sortedResults(), "ids, n \(n) k \(k)")
            }
        }
    }
}
